"""UdpCard, the card side other packages' integration tests tap cards with."""

from __future__ import annotations

import time

import pytest

from hardware.nfc import NfcReader
from hardware.udpcard import UdpCard


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_many_taps_in_a_row_are_each_read_once(udp_port: int, collect) -> None:
    taps = collect(NfcReader(f"udp:localhost:{udp_port}"))
    card = UdpCard(udp_port)
    uids = ["01020304", "04A1B2C3D4E5F6", "DEADBEEF", "04A1B2C3D4E5F6"]
    for uid in uids:
        card.present(uid, hold=0.1)
        # present() returns only once the reader has activated the card
        assert wait_until(lambda: taps.uids[-1:] == [uid], 0.5)

    assert [tap.uid for tap in taps.until_marker(card)] == uids


def test_no_reader_polling_is_a_timeout(udp_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=f"udp:localhost:{udp_port}"):
        UdpCard(udp_port, wait=0.1).present("01020304")
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("uid", "tech"),
    [
        ("0102030405060708090A", "106A"),  # nfcpy 1.0.4's udp card side cannot do cascade level 3
        ("0102030405", "106A"),
        ("01020304", "212F"),
        ("0102030405060708", "106B"),
        ("01020304", "424B"),
        ("xyz", "106A"),
    ],
)
def test_uids_the_udp_radio_cannot_carry_are_refused(udp_port: int, uid: str, tech: str) -> None:
    with pytest.raises(ValueError):
        UdpCard(udp_port).present(uid, tech)


def test_a_closed_card_refuses_taps(udp_port: int) -> None:
    with UdpCard(udp_port) as card:
        pass
    with pytest.raises(RuntimeError):
        card.present("01020304")
