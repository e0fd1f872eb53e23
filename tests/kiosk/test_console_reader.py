"""A reader that fails is shown to the guard on the banner, in red and in the kiosk's language, and
cleared when it reads again. The reader is hardware's own serial driver on a real pseudo-terminal:
closing the terminal is a USB adapter pulled out, a new terminal at the same path is it plugged back."""

from __future__ import annotations

import os
from functools import reduce
from operator import xor

import pytest
from gateworld import KEY, Clock, snapshot
from sgtest import pilot_until as until

from gateway import protocol
from hardware import ReaderError, SimulatedReader
from hardware.base import Backoff
from hardware.serial import SerialReader
from kiosk.config import KioskSettings
from kiosk.console import GateConsole
from kiosk.runtime import Kiosk


class Pty:
    """A pseudo-terminal: what the reader module sends goes in at ``master``; the driver opens ``path``."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        self.path = os.ttyname(self._slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def frame(card: str) -> bytes:
    """An RDM6300 frame: STX, 10 hex digits, their XOR, ETX."""
    return b"\x02" + card.encode() + b"%02X" % reduce(xor, bytes.fromhex(card)) + b"\x03"


@pytest.fixture(params=["zh_CN", "en"])
def gate(request, tmp_path):
    gate = Kiosk(KioskSettings(school="s1", kiosk="k1", data_dir=tmp_path / "kiosk", mqtt_url=None, secret=KEY.hex(),
                               locale=request.param), sync=False, clock=Clock())
    gate.store.apply_snapshot(protocol.RosterSnapshot.model_validate(snapshot()))
    yield gate
    gate.close()


def banner(app: GateConsole) -> tuple[set[str], str]:
    widget = app.main["banner"]
    return set(widget.classes), str(widget.render())


async def test_a_reader_pulled_out_is_red_on_the_banner_until_it_is_back(gate, tmp_path):
    words = {"zh_CN": ("读卡器故障", "读卡器已恢复"), "en": ("Card reader failed", "Card reader back")}[gate.settings.locale]
    first, second = Pty(), Pty()
    link = tmp_path / "ttyRFID"  # like a udev symlink that follows the USB adapter
    link.symlink_to(first.path)
    reader = SerialReader(str(link), protocol="rdm6300", backoff=Backoff(first=0.05, most=0.2))
    app = GateConsole(gate, reader=reader, confirm_arm=0.0, alert_every=3600)
    try:
        async with app.run_test() as pilot:
            first.write(frame("1A00452D92"))
            await until(pilot, lambda: app.recent and app.recent[0].card == "1A00452D92", "the first tap shown")
            assert app.reader_fault is None

            first.close()  # pulled out
            await until(pilot, lambda: words[0] in banner(app)[1], "the reader failure on the banner")
            assert banner(app)[0] == {"refused"} and app.reader_fault
            assert gate._reader_state().startswith("reconnecting:")  # what the kiosk's status reports

            link.unlink()  # plugged back in: the same path leads to a new terminal
            link.symlink_to(second.path)
            await until(pilot, lambda: words[1] in banner(app)[1], "the banner cleared")
            assert banner(app)[0] == {"ignored"} and app.reader_fault is None
            second.write(frame("0102030405"))
            await until(pilot, lambda: app.recent[0].card == "0102030405", "a tap read after the reader came back")
    finally:
        reader.close()
        first.close()
        second.close()


class ConfusedReader(SimulatedReader):
    """A fake only for what no driver here can be made to do on demand: a read that raises the
    driver's one error (nfcpy's reader raises it when the device cannot sense the configured cards)."""

    def __init__(self, failures: int, clock) -> None:
        super().__init__("nfc:usb", clock=clock)
        self.failures = failures

    def read(self, timeout=None):
        if self.failures:
            self.failures -= 1
            raise ReaderError("hardware.cannot_sense", spec=self.spec, device="ACR122U", target="212F",
                              problem="unsupported")
        return super().read(timeout)


async def test_a_reader_error_is_shown_in_the_kiosk_language_and_cleared_by_the_next_good_read(gate):
    said = {"zh_CN": "读卡器故障：nfc:usb：ACR122U 无法感应 212F 卡：unsupported",
            "en": "Card reader failed: nfc:usb: ACR122U cannot sense 212F cards: unsupported"}[gate.settings.locale]
    reader = ConfusedReader(1, gate.clock)
    app = GateConsole(gate, reader=reader, confirm_arm=0.0, alert_every=3600)
    async with app.run_test() as pilot:
        await until(pilot, lambda: said in banner(app)[1], "the reader's own error on the banner")
        assert banner(app)[0] == {"refused"}
        await until(pilot, lambda: app.reader_fault is None, "the next good read")
        reader.present("04A1B2C3")
        await until(pilot, lambda: app.recent and app.recent[0].student == "S1", "the tap after it")
        assert banner(app)[0] == {"allowed"}
    reader.close()
