"""Readers driven by nfcpy: USB (PN533, RC-S380, ACR122U...), serial (PN532...) and nfcpy's
simulated ``udp`` radio, opened with any nfcpy device path.

nfcpy's ``ContactlessFrontend.connect`` polls three technologies every 0.5 s; a queue of children
tapping in needs faster, so each poll senses only the configured technologies (ISO 14443A by
default) and polls follow each other every ``interval`` seconds.

How long one poll takes is up to the driver: a few tens of milliseconds on USB readers, but
nfcpy's ``udp`` driver waits a fixed 1.0 s for an answer when no card is there (0.5 s more for
each missing anticollision answer). A ``read`` timeout and a ``close`` from another thread are
therefore honoured between polls, so on ``udp`` they take up to about a second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import nfc
import nfc.clf

from .base import CardTap, Reader, ReaderError

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
    ) -> None:
        self.spec = spec or f"nfc:{path}"
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

        try:
            self._clf: nfc.ContactlessFrontend | None = nfc.ContactlessFrontend(path)
        except DRIVER_ERRORS as error:
            raise ReaderError(f"cannot open NFC reader {path!r} ({self.spec}): {error}") from error
        log.info("%s: using %s", self.spec, self._clf.device)

    def read(self, timeout: float | None = None) -> CardTap | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._busy.acquire(timeout=-1 if timeout is None else timeout):
            return None  # another thread is reading
        try:
            while not self._closed.is_set():
                started = time.monotonic()
                tap = self._poll()
                if tap is not None:
                    return tap
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return None
                pause = self.interval - (now - started)
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

    def _release_device(self) -> None:
        if not self._busy.acquire(blocking=False):
            return
        try:
            if self._clf is not None:
                clf, self._clf = self._clf, None
                try:
                    clf.close()
                except DRIVER_ERRORS as error:
                    log.debug("%s: error while closing: %s", self.spec, error)
        finally:
            self._busy.release()

    def _poll(self) -> CardTap | None:
        started = time.monotonic()
        try:
            target = self._clf.sense(*self._targets, iterations=1)
        except nfc.clf.UnsupportedTargetError as error:
            raise ReaderError(
                f"{self.spec}: {self._clf.device} cannot sense {self.targets[0]} cards: {error}"
            ) from error
        except DRIVER_ERRORS as error:
            raise ReaderError(f"{self.spec}: reader failed: {error}") from error
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
        return CardTap(uid=uid, tech=tech, reader=self.spec, read_at=datetime.now(UTC))


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
