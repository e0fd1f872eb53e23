"""NfcReader against nfcpy's real ``udp`` radio: the card side is nfcpy's own card emulation
(``ContactlessFrontend.listen``), directly or through ``hardware.udpcard.UdpCard``."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import nfc
import nfc.clf
import pytest

from hardware import ReaderError
from hardware.nfc import NfcReader
from hardware.udpcard import UdpCard

from .conftest import wait_until


@pytest.fixture
def reader(udp_port: int):
    with NfcReader(f"udp:localhost:{udp_port}") as reader:
        yield reader


def test_reads_a_4_byte_uid_from_nfcpy_card_emulation(udp_port: int, reader: NfcReader) -> None:
    card = nfc.clf.LocalTarget("106A")
    card.sens_res = bytearray.fromhex("0400")
    card.sdd_res = bytearray.fromhex("0a1b2c3d")
    card.sel_res = bytearray.fromhex("08")

    def listen() -> None:
        clf = nfc.ContactlessFrontend(f"udp:localhost:{udp_port}")
        try:
            clf.listen(card, 1.5)
        finally:
            clf.close()

    with ThreadPoolExecutor(1) as pool:
        listening = pool.submit(listen)
        before = datetime.now(UTC)
        tap = reader.read(timeout=3)
        after = datetime.now(UTC)
        listening.result(timeout=5)

    assert tap is not None
    assert (tap.uid, tap.tech) == ("0A1B2C3D", "iso14443a")
    assert tap.reader == f"nfc:udp:localhost:{udp_port}"
    assert tap.read_at.utcoffset().total_seconds() == 0
    assert before <= tap.read_at <= after


def test_reads_a_7_byte_uid_as_upper_case_hex(udp_port: int, reader: NfcReader) -> None:
    with ThreadPoolExecutor(1) as pool:
        presenting = pool.submit(UdpCard(udp_port).present, "04a1b2c3d4e5f6")
        tap = reader.read(timeout=4)
        presenting.result(timeout=5)

    assert tap is not None
    assert (tap.uid, tap.tech) == ("04A1B2C3D4E5F6", "iso14443a")


def test_a_card_held_on_the_reader_counts_once(udp_port: int, reader: NfcReader, collect) -> None:
    taps = collect(reader)
    card = UdpCard(udp_port)
    card.present("04a1b2c3d4e5f6", hold=3.0)

    assert [tap.uid for tap in taps.until_marker(card)] == ["04A1B2C3D4E5F6"]


def test_a_card_taken_away_and_put_back_counts_twice(
    udp_port: int, reader: NfcReader, collect
) -> None:
    taps = collect(reader)
    card = UdpCard(udp_port)
    card.present("01020304")
    card.present("01020304")

    assert [tap.uid for tap in taps.until_marker(card)] == ["01020304", "01020304"]


def test_type_f_idm(udp_port: int, collect) -> None:
    reader = NfcReader(f"udp:localhost:{udp_port}", targets="212F")
    taps = collect(reader)
    card = UdpCard(udp_port)
    card.present("01fe0a0b0c0d0e0f", tech="212F")

    assert [(tap.uid, tap.tech) for tap in taps.until_marker(card, "01FE000000000001", "212F")] == [("01FE0A0B0C0D0E0F", "felica")]


def test_type_f_card_found_when_both_technologies_are_polled(udp_port: int) -> None:
    with NfcReader(f"udp:localhost:{udp_port}", targets=("106A", "212F")) as reader:
        with ThreadPoolExecutor(1) as pool:
            presenting = pool.submit(UdpCard(udp_port).present, "0102030405060708", "212F")
            tap = reader.read(timeout=5)
            presenting.result(timeout=8)

    assert tap is not None
    assert (tap.uid, tap.tech) == ("0102030405060708", "felica")


def test_type_b_nfcid0(udp_port: int, collect) -> None:
    reader = NfcReader(f"udp:localhost:{udp_port}", targets="106B")
    taps = collect(reader)
    card = UdpCard(udp_port)
    card.present("1a2b3c4d", tech="106B")

    assert [(tap.uid, tap.tech) for tap in taps.until_marker(card, "0F0E0D0C", "106B")] == [("1A2B3C4D", "iso14443b")]


def test_close_unblocks_a_blocked_read(reader: NfcReader) -> None:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(reader.read()))
    thread.start()
    time.sleep(0.2)

    started = time.monotonic()
    reader.close()
    thread.join(timeout=3)

    assert not thread.is_alive()
    assert result == [None]
    # nfcpy's udp driver waits 1.0 s for an answer to each poll; USB readers return in ms.
    assert time.monotonic() - started < 1.5


def test_read_times_out_with_none(reader: NfcReader) -> None:
    started = time.monotonic()
    assert reader.read(timeout=0.2) is None
    assert time.monotonic() - started < 1.5


def test_a_closed_reader_reads_none_at_once(reader: NfcReader) -> None:
    reader.close()
    started = time.monotonic()
    assert reader.read() is None
    assert time.monotonic() - started < 0.1
    reader.close()


def test_unknown_technology_is_refused(udp_port: int) -> None:
    with pytest.raises(ValueError, match="106A"):
        NfcReader(f"udp:localhost:{udp_port}", targets=("106A", "999Z"))


def test_no_such_device_is_a_reader_error_naming_the_path() -> None:
    with pytest.raises(ReaderError, match="tty:SCHOOLGATE_NO_SUCH_PORT:pn532"):
        NfcReader("tty:SCHOOLGATE_NO_SUCH_PORT:pn532")


class TripleSizeUidCard:
    """An ISO 14443A card with a 10-byte UID on nfcpy's udp radio.

    nfcpy 1.0.4's own card side cannot answer the third cascade level (see hardware.udpcard), so
    this one speaks the udp radio's frames ("106A <hex>") itself; the reader under test is
    nfcpy's unchanged anticollision code.
    """

    def __init__(self, port: int, uid: str) -> None:
        import socket

        self.uid = bytes.fromhex(uid)
        self.polls = 0  # SENS_REQ/ALL_REQ answered: the reader looked for it again while it stayed
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", port))
        self.sock.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _answer(self, request: bytes) -> bytes | None:
        u = self.uid
        levels = {0x93: b"\x88" + u[0:3], 0x95: b"\x88" + u[3:6], 0x97: u[6:10]}
        if request in (b"\x26", b"\x52"):
            self.polls += 1
            return bytes.fromhex("8400")  # SENS_RES: triple-size UID
        if len(request) == 2 and request[1] == 0x20 and request[0] in levels:
            part = levels[request[0]]
            return part + bytes([part[0] ^ part[1] ^ part[2] ^ part[3]])  # with its BCC
        if len(request) == 7 and request[1] == 0x70 and request[0] in levels:
            return b"\x00" if request[0] == 0x97 else b"\x04"  # SAK: cascade bit until the last level
        return None

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                frame, reader = self.sock.recvfrom(1024)
                brty, data = frame.decode().split()
            except (TimeoutError, ValueError):
                continue
            answer = self._answer(bytes.fromhex(data))
            if answer is not None:
                self.sock.sendto(f"{brty} {answer.hex()}".encode(), reader)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=1)
        self.sock.close()


def test_reads_a_10_byte_uid_and_counts_it_once_while_held(udp_port: int, reader: NfcReader, collect) -> None:
    card = TripleSizeUidCard(udp_port, "04A1B2C3D4E5F6071829")
    try:
        taps = collect(reader)
        assert wait_until(lambda: taps.taps, 3)
        polls = card.polls
        assert wait_until(lambda: card.polls >= polls + 2, 10)  # still on the reader, answering two more polls
    finally:
        card.close()
    assert [(t.uid, t.tech) for t in taps.until_marker(UdpCard(udp_port))] == [("04A1B2C3D4E5F6071829", "iso14443a")]


def test_an_unplugged_reader_is_reopened_with_backoff(udp_port: int, monkeypatch, collect) -> None:
    from hardware.base import Backoff

    reader = NfcReader(f"udp:localhost:{udp_port}", backoff=Backoff(first=0.05, most=0.2))
    unplugged = threading.Event()
    attempts: list[float] = []
    real_frontend = nfc.ContactlessFrontend

    def frontend(path: str):
        if unplugged.is_set():
            attempts.append(time.monotonic())
            raise OSError(19, "No such device")  # what nfcpy raises when no reader is at the path
        return real_frontend(path)

    def sense_of_a_pulled_reader(*targets, **options):
        raise OSError(19, "No such device")

    monkeypatch.setattr(nfc, "ContactlessFrontend", frontend)
    taps = collect(reader)
    unplugged.set()
    monkeypatch.setattr(reader._clf, "sense", sense_of_a_pulled_reader)
    assert wait_until(lambda: len(attempts) >= 3, 5), attempts
    assert reader.state.startswith("reconnecting:") and "No such device" in reader.state
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps[-1] >= gaps[0]  # backing off, not spinning

    unplugged.clear()  # plugged back in
    assert wait_until(lambda: reader.state == "ok", 3), reader.state
    UdpCard(udp_port).present("01020304")
    assert wait_until(lambda: taps.uids == ["01020304"], 1)
    taps.stop()


def test_a_reader_that_cannot_sense_the_configured_type_is_an_error(udp_port: int) -> None:
    with NfcReader(f"udp:localhost:{udp_port}", targets="848B") as reader:
        with pytest.raises(ReaderError) as refused:
            reader.read(timeout=1)
        assert "cannot sense 848B cards" in refused.value.text("en") and "无法感应 848B 卡" in str(refused.value)
