"""Reader.signal: distinct patterns for each outcome, on the terminal bell or an ACR122U's LED
and buzzer. The ACR122U is a USB device that cannot run here, so it alone is a fake object
standing in for nfcpy's driver; everything else is real (a pty, nfcpy's udp radio)."""

from __future__ import annotations

import os
import threading
import time

import nfc.clf.acr122
import pytest

from hardware import PATTERNS, SimulatedReader
from hardware.base import TerminalBell
from hardware.nfc import NfcReader, acr122_led_buzzer

from .conftest import wait_until


def test_each_outcome_sounds_different() -> None:
    heard = {(p.count, p.on, p.colour) for p in PATTERNS.values()}
    assert len(heard) == len(PATTERNS) == 3
    assert PATTERNS["allowed"].count == 1 and PATTERNS["refused"].count == 3


def bells(master: int, wait: float) -> tuple[int, float]:
    """How many BELs arrive on the pty within ``wait`` seconds, and when the last one came."""
    os.set_blocking(master, False)
    count, last, started = 0, 0.0, time.monotonic()
    while time.monotonic() - started < wait:
        try:
            data = os.read(master, 64)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        count += data.count(b"\a")
        last = time.monotonic() - started
    return count, last


@pytest.mark.parametrize(("tone", "count"), [("allowed", 1), ("attention", 2), ("refused", 3), ("ignored", 0)])
def test_signal_rings_the_terminal_bell(pty, tone: str, count: int) -> None:
    term = pty()
    reader = SimulatedReader()
    reader.bell = TerminalBell(os.fdopen(os.dup(term._slave), "w"))

    reader.signal(tone)

    heard, last = bells(term.master, 0.2 + 0.3 * count)
    assert heard == count
    if tone == "refused":
        assert last >= 2 * (0.3 + 0.1) - 0.05  # spaced out, not one burst of noise


class StuckTerminal:
    """A terminal whose writes hang until the test lets them go (``release``)."""

    def __init__(self) -> None:
        self.writing, self.release = threading.Event(), threading.Event()
        self.waited_out = False

    def write(self, text: str) -> int:
        self.writing.set()
        if not self.release.wait(2):
            self.waited_out = True  # signal() itself was held up by the bell
        return len(text)

    def flush(self) -> None:
        pass


def test_signal_returns_while_the_pattern_still_plays() -> None:
    # The kiosk never waits for a pattern: signal() is back while the bell's first write still
    # hangs. No timing: a signal() that played the pattern itself would hang in that write.
    terminal = StuckTerminal()
    reader = SimulatedReader()
    reader.bell = TerminalBell(terminal)
    reader.signal("refused")
    assert wait_until(terminal.writing.is_set, 5)
    terminal.release.set()
    assert not terminal.waited_out


def test_unknown_tone_is_refused() -> None:
    with pytest.raises(ValueError, match="allowed, attention, refused, ignored"):
        SimulatedReader().signal("happy")


def test_no_terminal_no_bell() -> None:
    bell = TerminalBell()  # pytest captures stderr, so it is no terminal here
    assert bell.stream is None
    assert bell.play(PATTERNS["refused"]) is None


class FakeAcr122Chipset:
    """Records what nfcpy's ACR122U chipset would send over USB; a transfer, like the real
    reader's answer after playing, comes back only when the test lets it (``release``)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, float]] = []
        self.release = threading.Event()

    def ccid_xfr_block(self, data: bytearray, timeout: float = 0.1) -> bytearray:
        self.release.wait(2)
        self.sent.append((bytes(data), timeout))
        return bytearray(b"\x90\x00")


@pytest.mark.parametrize(
    ("tone", "apdu"),
    [
        ("allowed", "FF0040AE0401010101"),  # green blink, one short beep
        ("attention", "FF0040FE0401010201"),  # both LEDs (amber), two short beeps
        ("refused", "FF00405E0403010301"),  # red blink, three long beeps
    ],
)
def test_acr122u_plays_the_pattern_on_its_led_and_buzzer(udp_port: int, tone: str, apdu: str) -> None:
    reader = NfcReader(f"udp:localhost:{udp_port}")
    real = reader._clf.device
    fake = nfc.clf.acr122.Device.__new__(nfc.clf.acr122.Device)
    fake.chipset = FakeAcr122Chipset()
    reader._clf.device = fake
    try:
        reader.signal(tone)
        # Back before the reader has answered: a signal() that waited would be back only after.
        assert fake.chipset.sent == []
        fake.chipset.release.set()
        assert wait_until(lambda: fake.chipset.sent, 2)
    finally:
        reader._clf.device = real
        reader.close()
    [(sent, timeout)] = fake.chipset.sent
    assert sent.hex().upper() == apdu
    pattern = PATTERNS[tone]
    assert timeout > pattern.count * (pattern.on + pattern.off)  # the reader answers after playing


def test_readers_without_a_buzzer_ring_the_bell_even_mid_poll(udp_port: int, pty, collect) -> None:
    term = pty()
    reader = NfcReader(f"udp:localhost:{udp_port}")
    reader.bell = TerminalBell(os.fdopen(os.dup(term._slave), "w"))
    collect(reader)  # polling: each poll on the udp radio holds the device for a second
    assert wait_until(reader._busy.locked, 5), "the reader never began a poll"  # mid poll, not before it
    started = time.monotonic()
    reader.signal("attention")
    # Not held up by the poll, which keeps the device for a second (0.5 s leaves room for a
    # slow thread start: under faketime one takes up to 0.2 s).
    assert time.monotonic() - started < 0.5
    assert bells(term.master, 0.5)[0] == 2


def test_acr122u_command_bytes_are_bounded() -> None:
    from hardware.base import Pattern

    apdu, timeout = acr122_led_buzzer(Pattern(2, 0.0, 100.0, "red"))
    assert apdu[5:8] == bytes([1, 255, 2])  # at least 100 ms, at most 25.5 s per step
