"""Serial readers against real pseudo-terminals and pyserial's ``loop://`` port."""

from __future__ import annotations

import logging
import time
from functools import reduce
from operator import xor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware import ReaderError, connect
from hardware.base import Backoff
from hardware.serial import FrameParser, LineParser, SerialReader

from .conftest import wait_until


def frame(card: str, checksum: int | None = None) -> bytes:
    """An RDM6300 frame as the module sends it; ``checksum`` forces a wrong one."""
    good = reduce(xor, bytes.fromhex(card))
    return b"\x02" + card.encode() + b"%02X" % (good if checksum is None else checksum) + b"\x03"


# --- the frame parser, pure --------------------------------------------------------------


def test_frames_are_read_whole_or_in_pieces() -> None:
    stream = frame("1A00452D92") + frame("0102030405")
    assert FrameParser().feed(stream) == ["1A00452D92", "0102030405"]
    parser = FrameParser()
    assert [card for byte in stream for card in parser.feed(bytes([byte]))] == ["1A00452D92", "0102030405"]


def test_bad_checksum_is_refused_and_counted() -> None:
    parser = FrameParser()
    good = reduce(xor, bytes.fromhex("1A00452D92"))
    assert parser.feed(frame("1A00452D92", checksum=good ^ 1) + frame("0102030405")) == ["0102030405"]
    assert parser.bad_checksums == 1


def test_garbage_between_frames_is_skipped() -> None:
    parser = FrameParser()
    noise = b"\x00\xff\x03\x02\x0212AB\x02" + frame("1A00452D92")[:7] + b"\r\n"
    assert parser.feed(noise + frame("1A00452D92") + noise + noise + frame("0A0B0C0D0E")) == ["1A00452D92", "0A0B0C0D0E"]
    assert parser.skipped > 0


def test_lower_case_hex_from_clones_is_accepted() -> None:
    assert FrameParser().feed(frame("1a00452d92")) == ["1A00452D92"]


@given(st.binary(max_size=400), st.lists(st.integers(1, 20), max_size=40))
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    parser = FrameParser()
    at = 0
    for size in [*cuts, len(data)]:
        for card in parser.feed(data[at : at + size]):
            assert len(card) == 10
        at += size


cards = st.binary(min_size=5, max_size=5).map(lambda b: b.hex().upper())
noise = st.binary(max_size=30).map(lambda b: b.replace(b"\x03", b""))


@given(st.lists(st.tuples(noise, cards), max_size=8), noise, st.integers(1, 16))
def test_every_frame_is_found_in_any_noise_without_etx(pieces, tail: bytes, chunk: int) -> None:
    # Noise holding no ETX can never complete a frame of its own, so exactly the frames come out.
    stream = b"".join(junk + frame(card) for junk, card in pieces) + tail
    parser = FrameParser()
    found = [card for i in range(0, len(stream), chunk) for card in parser.feed(stream[i : i + chunk])]
    assert found == [card for _, card in pieces]


@pytest.mark.parametrize("ending", [b"\r", b"\n", b"\r\n"])
def test_line_parser_takes_any_line_ending(ending: bytes) -> None:
    parser = LineParser()
    assert parser.feed(b"0077705923" + ending + b"04A1" + ending[:1]) == ["0077705923", "04A1"]
    assert parser.feed(ending + ending) == []


def test_line_parser_drops_overlong_lines() -> None:
    parser = LineParser()
    assert parser.feed(b"9" * 500 + b"\n0077705923\n") == ["0077705923"]


# --- RDM6300 on a pseudo-terminal --------------------------------------------------------


def test_valid_frames_from_a_pty_are_read(pty, collect) -> None:
    port = pty()
    reader = connect(f"serial:{port.path}?protocol=rdm6300&baud=9600")
    taps = collect(reader)
    port.write(frame("1A00452D92"))
    port.write(frame("0102030405"))
    assert wait_until(lambda: len(taps.taps) == 2, 3)

    assert [(t.uid, t.tech, t.reader) for t in taps.stop()] == [
        ("1A00452D92", "em4100", f"serial:{port.path}?protocol=rdm6300&baud=9600"),
        ("0102030405", "em4100", f"serial:{port.path}?protocol=rdm6300&baud=9600"),
    ]


def test_bad_checksum_and_garbage_from_a_pty(pty, collect) -> None:
    port = pty()
    taps = collect(connect(f"serial:{port.path}?protocol=rdm6300"))
    port.write(b"\xff\x00garbage\x02\x02" + frame("1A00452D92", checksum=0) + b"\x03\x03")
    port.write(frame("0A0B0C0D0E") + b"\x00\x00")
    port.write(frame("0F0E0D0C0B"))  # the marker: once it is read, nothing before it is still on its way
    assert wait_until(lambda: "0F0E0D0C0B" in taps.uids, 3)
    assert taps.stop() == taps.taps and taps.uids == ["0A0B0C0D0E", "0F0E0D0C0B"]


def test_a_held_card_counts_once_until_taken_away(pty, collect) -> None:
    port = pty()
    taps = collect(connect(f"serial:{port.path}?protocol=rdm6300"))
    for _ in range(15):  # an RDM6300 repeats the frame while the card lies on it
        port.write(frame("1A00452D92"))
        time.sleep(0.06)
    time.sleep(0.7)  # taken away for longer than release_after
    port.write(frame("1A00452D92"))
    port.write(frame("0F0E0D0C0B"))  # the marker, as above
    assert wait_until(lambda: "0F0E0D0C0B" in taps.uids, 3)
    assert taps.stop() and taps.uids == ["1A00452D92", "1A00452D92", "0F0E0D0C0B"]


def test_version_byte_can_be_dropped_to_match_printed_numbers(pty) -> None:
    port = pty()
    with connect(f"serial:{port.path}?protocol=rdm6300&version_byte=drop") as reader:
        port.write(frame("1A00452D92"))
        tap = reader.read(timeout=3)
    assert tap is not None and tap.uid == "00452D92"  # the printed 0004533650, --card-format decimal


class CountedBackoff(Backoff):
    """A Backoff that counts the delays asked of it: one per lost port and per failed reopen."""

    def __init__(self, first: float, most: float) -> None:
        super().__init__(first, most)
        self.asked = 0

    def next(self) -> float:
        self.asked += 1
        return super().next()


def test_a_new_port_at_the_same_path_is_picked_up(pty, collect, tmp_path) -> None:
    first = pty()
    link = tmp_path / "ttyRFID"  # like a udev symlink that follows the USB adapter
    link.symlink_to(first.path)
    backoff = CountedBackoff(first=0.05, most=0.2)
    reader = SerialReader(str(link), protocol="rdm6300", backoff=backoff)
    taps = collect(reader)
    first.write(frame("1A00452D92"))
    assert wait_until(lambda: taps.uids == ["1A00452D92"], 3)
    assert reader.state == "ok"

    first.close()  # unplugged
    assert wait_until(lambda: reader.state.startswith("reconnecting"), 3), reader.state
    # The loss, then two failed attempts at the dead path, before the new port appears.
    assert wait_until(lambda: backoff.asked >= 3, 3), backoff.asked
    assert reader.state.startswith("reconnecting:")

    second = pty()  # plugged back in: the same path now leads to a new terminal
    link.unlink()
    link.symlink_to(second.path)
    assert wait_until(lambda: reader.state == "ok", 3), reader.state
    second.write(frame("0102030405"))
    assert wait_until(lambda: len(taps.uids) == 2, 3)
    assert [t.uid for t in taps.stop()] == ["1A00452D92", "0102030405"]
    assert reader.state == "closed"


def test_close_unblocks_a_read_and_releases_the_port(pty) -> None:
    port = pty()
    reader = connect(f"serial:{port.path}")
    started = time.monotonic()
    assert reader.read(timeout=0.2) is None
    assert 0.15 < time.monotonic() - started < 1
    reader.close()
    assert reader.device is None
    assert reader.read() is None


# --- line readers on loop:// -------------------------------------------------------------


def test_line_reader_on_loop(caplog: pytest.LogCaptureFixture) -> None:
    with connect("serial:loop://?protocol=line&format=decimal") as reader:
        reader.device.write(b"0077705923\r\n3283263748\rnot a number\n\n0000000001\n")
        taps = [reader.read(timeout=1) for _ in range(3)]
        assert reader.read(timeout=0.2) is None
    assert [(t.uid, t.tech) for t in taps] == [("04A1B2C3", "serial"), ("C3B2A104", "serial"), ("00000001", "serial")]
    assert "not a number" in caplog.text


def test_line_reader_defaults_to_hex() -> None:
    with connect("serial:loop://?protocol=line") as reader:
        reader.device.write(b"04a1b2c3d4e5f6\n")
        assert reader.read(timeout=1).uid == "04A1B2C3D4E5F6"


def test_a_pyserial_urls_own_options_are_passed_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with connect("serial:loop://?logging=debug&protocol=line") as reader:
        assert reader.port == "loop://?logging=debug"
        assert reader.protocol == "line"


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("serial:", "valid forms"),
        ("serial:?protocol=line", "valid forms"),
        ("serial:loop://?protocol=wiegand", "protocol must be one of rdm6300, line"),
        ("serial:loop://?baud=fast", "bad value 'fast' for baud"),
        ("serial:loop://?baud=0", "positive"),
        ("serial:loop://?protocol=line&format=octal", "card format must be one of"),
        ("serial:loop://?format=decimal", "format applies to line readers"),
        ("serial:loop://?version_byte=maybe", "keep or drop"),
        ("serial:/dev/SCHOOLGATE_NO_SUCH_PORT?protocl=line", "unknown option 'protocl'"),
        ("serial:/dev/SCHOOLGATE_NO_SUCH_PORT?protocol=line", "/dev/SCHOOLGATE_NO_SUCH_PORT"),
    ],
)
def test_bad_serial_specs_are_refused_clearly(spec: str, says: str) -> None:
    with pytest.raises(ReaderError) as refused:
        connect(spec)
    assert says in refused.value.text("en")
