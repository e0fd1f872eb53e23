"""Readers driven by nfcpy: USB (PN533, RC-S380, ACR122U...), serial (PN532...) and nfcpy's
simulated ``udp`` radio, opened with any nfcpy device path.

nfcpy's ``ContactlessFrontend.connect`` polls three technologies every 0.5 s; a queue of children
tapping in needs faster, so each poll senses only the configured technologies (ISO 14443A by
default) and polls follow each other every ``interval`` seconds.

How long one poll takes is up to the driver: a few tens of milliseconds on USB readers, but
nfcpy's ``udp`` driver waits a fixed 1.0 s for an answer when no card is there (0.5 s more for
each missing anticollision answer). A ``read`` timeout and a ``close`` from another thread are
therefore honoured between polls, so on ``udp`` they take up to about a second.

A reader that fails or is unplugged after it was opened is closed and opened again at the same
path with backoff; ``state`` says ``reconnecting: <reason>`` meanwhile. ``signal`` blinks and
beeps an ACR122U through its LED and buzzer command, and rings the terminal bell on readers
without them (RC-S380, PN532 boards, the ``udp`` radio).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import nfc
import nfc.clf
import nfc.clf.acr122

from .base import Backoff, CardTap, Pattern, Reader, ReaderError, pattern_for

log = logging.getLogger(__name__)

TECH_NAMES = {"A": "iso14443a", "B": "iso14443b", "F": "felica"}
BITRATES = ("106A", "212A", "424A", "106B", "212B", "424B", "848B", "212F", "424F")

try:
    from usb1 import USBError
except ImportError:  # pragma: no cover - libusb1 comes with nfcpy
    USBError = OSError

# nfcpy reports device trouble as IOError (OSError) almost everywhere, but a few libusb
# failures while opening escape untranslated.
DRIVER_ERRORS = (OSError, USBError, nfc.clf.Error)


class NfcReader(Reader):
    def __init__(
        self,
        path: str,
        spec: str | None = None,
        *,
        targets: str | Sequence[str] = ("106A",),
        interval: float = 0.05,
        release_after: float = 0.5,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.spec = spec or f"nfc:{path}"
        self.clock = clock or (lambda: datetime.now(UTC))  # stamps taps; a test passes its own, as to SimulatedReader
        self.path = path
        self.interval = interval
        self.release_after = release_after
        self.targets = (targets,) if isinstance(targets, str) else tuple(targets)
        if not self.targets or not set(self.targets) <= set(BITRATES):
            raise ValueError(f"targets must be some of {', '.join(BITRATES)}, got {targets!r}")
        self._targets = [nfc.clf.RemoteTarget(brty) for brty in self.targets]

        # The card on the reader, so that a card left lying there counts once; it is forgotten
        # only after it has been missing for release_after seconds, because a card at the edge
        # of the field drops out of single polls.
        self._present_uid: str | None = None
        self._absent_since: float | None = None

        self._closed = threading.Event()
        # Held while a read is polling; whoever finds it free after close() closes the device,
        # so close() never waits for a poll and never pulls the device out from under one.
        self._busy = threading.Lock()
        # Held for each single use of the device (a poll, a reopen, a signal), so that signal()
        # from the kiosk's thread slips in between two polls.
        self._device_lock = threading.Lock()
        self._backoff = backoff or Backoff(first=0.5, most=10.0)
        self._retry_at = 0.0

        try:
            self._clf: nfc.ContactlessFrontend | None = nfc.ContactlessFrontend(path)
        except DRIVER_ERRORS as error:
            raise ReaderError("hardware.cannot_open_nfc", path=path, spec=self.spec, problem=str(error)) from error
        log.info("%s: using %s", self.spec, self._clf.device)

    def read(self, timeout: float | None = None) -> CardTap | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._busy.acquire(timeout=-1 if timeout is None else timeout):
            return None  # another thread is reading
        try:
            while not self._closed.is_set():
                started = time.monotonic()
                if self._clf is None:
                    self._reopen()
                tap = self._poll() if self._clf is not None else None
                if tap is not None:
                    return tap
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return None
                pause = self.interval - (now - started)
                if self._clf is None:
                    pause = min(self._retry_at - now, 1.0)
                if deadline is not None:
                    pause = min(pause, deadline - now)
                self._closed.wait(max(0.0, pause))
            return None
        finally:
            self._busy.release()
            if self._closed.is_set():
                self._release_device()

    def close(self) -> None:
        self._closed.set()
        self._release_device()
        self._set_state("closed")

    def signal(self, tone: str) -> None:
        pattern = pattern_for(tone)
        if pattern is None:
            return
        # No lock here: a poll on the udp radio holds the device for a second, and the caller
        # must not wait; _signal_acr122 checks again under the lock.
        clf = self._clf
        device = clf.device if clf is not None else None
        if isinstance(device, nfc.clf.acr122.Device):
            # The command blocks for the whole pattern; the kiosk must not wait for it.
            threading.Thread(target=self._signal_acr122, args=(pattern,), name="acr122-signal", daemon=True).start()
        else:
            self.bell.play(pattern)

    def _signal_acr122(self, pattern: Pattern) -> None:
        with self._device_lock:
            device = self._clf.device if self._clf is not None else None
            if not isinstance(device, nfc.clf.acr122.Device):
                return  # closed or reconnecting meanwhile
            apdu, timeout = acr122_led_buzzer(pattern)
            try:
                device.chipset.ccid_xfr_block(apdu, timeout=timeout)
            except DRIVER_ERRORS as error:
                # The next poll finds a device that really failed; a lost signal is no failure.
                log.debug("%s: signal not given: %s", self.spec, error)

    def _release_device(self) -> None:
        if not self._busy.acquire(blocking=False):
            return
        try:
            self._drop_device()
        finally:
            self._busy.release()

    def _drop_device(self) -> None:
        with self._device_lock:
            clf, self._clf = self._clf, None
        if clf is not None:
            try:
                clf.close()
            except DRIVER_ERRORS as error:
                log.debug("%s: error while closing: %s", self.spec, error)

    def _reopen(self) -> None:
        if time.monotonic() < self._retry_at:
            return
        try:
            clf = nfc.ContactlessFrontend(self.path)
        except DRIVER_ERRORS as error:
            self._retry_at = time.monotonic() + self._backoff.next()
            self._set_state(f"reconnecting: {error or type(error).__name__}")
            return
        with self._device_lock:
            self._clf = clf
        self._backoff.reset()
        # A card on the reader while it was away is counted again: it may be a new tap.
        self._present_uid = self._absent_since = None
        self._set_state("ok")
        log.info("%s: using %s again", self.spec, clf.device)

    def _poll(self) -> CardTap | None:
        started = time.monotonic()
        try:
            with self._device_lock:
                target = self._clf.sense(*self._targets, iterations=1)
        except nfc.clf.UnsupportedTargetError as error:
            raise ReaderError(
                "hardware.cannot_sense", spec=self.spec, device=str(self._clf.device), target=self.targets[0], problem=str(error)
            ) from error
        except DRIVER_ERRORS as error:
            # nfcpy raises IOError(ENODEV) for an unplugged USB reader, EIO for a confused one.
            self._drop_device()
            self._retry_at = time.monotonic() + self._backoff.next()
            self._set_state(f"reconnecting: {error or type(error).__name__}")
            return None
        card = _identify(target) if target is not None else None

        if card is None:
            if self._present_uid is not None:
                if self._absent_since is None:
                    self._absent_since = started
                if time.monotonic() - self._absent_since >= self.release_after:
                    log.debug("%s: card %s taken away", self.spec, self._present_uid)
                    self._present_uid = self._absent_since = None
            return None

        uid, tech = card
        self._absent_since = None
        if uid == self._present_uid:
            return None
        self._present_uid = uid
        log.debug("%s: card %s (%s) %s", self.spec, uid, tech, target)
        return CardTap(uid=uid, tech=tech, reader=self.spec, read_at=self.clock())


# ACR122U "Bi-Color LED and Buzzer Control" (API manual 6.2): FF 00 40 P2 04 T1 T2 REP BUZ.
# P2 sets the final LED state and which LEDs blink; the final state is the reader's default
# green, so each pattern ends where it began.
_ACR122_BLINK = {"green": 0xAE, "amber": 0xFE, "red": 0x5E}


def acr122_led_buzzer(pattern: Pattern) -> tuple[bytearray, float]:
    """The ACR122U command that plays ``pattern``, and how long to wait for its answer."""
    on, off = (max(1, min(255, round(seconds * 10))) for seconds in (pattern.on, pattern.off))
    apdu = bytearray([0xFF, 0x00, 0x40, _ACR122_BLINK[pattern.colour], 0x04, on, off, pattern.count, 0x01])
    # The reader answers only once the pattern has played (nfcpy's own buzzer call waits likewise).
    return apdu, pattern.count * (on + off) / 10 + 0.2


def _identify(target: nfc.clf.RemoteTarget) -> tuple[str, str] | None:
    tech = TECH_NAMES[target.brty[-1]]
    if target.sdd_res:
        return target.sdd_res.hex().upper(), tech
    if target.sensf_res and len(target.sensf_res) >= 9:
        return target.sensf_res[1:9].hex().upper(), tech  # IDm
    if target.sensb_res and len(target.sensb_res) >= 5:
        return target.sensb_res[1:5].hex().upper(), tech  # NFCID0
    # Type 1 (Topaz) tags answer without an SDD_RES; their UID needs a full RALL command.
    log.debug("ignoring %s: no UID in the activation response", target)
    return None
