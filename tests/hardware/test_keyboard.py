"""Keyboard-wedge readers: the burst detector as a table of cases, the reader on a real pty."""

from __future__ import annotations

import string
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware import ReaderError, connect
from hardware.base import Backoff
from hardware.keyboard import BurstDetector, KeyboardReader

from .conftest import wait_until


def typed(text: str, gap: float, start: float = 100.0) -> list[tuple[str, float]]:
    return [(char, start + i * gap) for i, char in enumerate(text)]


def run(detector: BurstDetector, keys: list[tuple[str, float]]) -> list[str]:
    return [found for char, t in keys if (found := detector.feed(char, t)) is not None]


@pytest.mark.parametrize(
    ("keys", "found"),
    [
        (typed("0077705923\r", 0.01), ["0077705923"]),  # a reader: 10 ms a key
        (typed("0077705923\n", 0.045), ["0077705923"]),  # near the limit
        (typed("0077705923\r\n", 0.01), ["0077705923"]),  # CRLF counts once
        (typed("0077705923\r", 0.15), []),  # a person typing
        (typed("0077705923", 0.01) + [("\r", 100.5)], []),  # Enter pressed by hand afterwards
        (typed("1234567\r", 0.01), []),  # too short for a card number
        (typed("1" * 11 + "\r", 0.01), []),  # too long
        (typed("00777a5923\r", 0.01), []),  # a letter breaks a decimal number
        (typed("\r", 0.01), []),
        # a person's stray key just before the reader types is dropped, the card still counts
        (typed("7", 0.01) + typed("0077705923\r", 0.01, start=101.0), ["0077705923"]),
        # two cards in a row
        (typed("0077705923\r", 0.01) + typed("3283263748\r", 0.01, start=102.0), ["0077705923", "3283263748"]),
        # a burst cut in two by a pause leaves only fragments
        (typed("00777", 0.01) + typed("05923\r", 0.01, start=100.5), []),
        # a person typing at the console just before the reader: the reader's number still counts
        (typed("abc", 0.2) + typed("0077705923\r", 0.01, start=101.0), ["0077705923"]),
    ],
)
def test_bursts(keys: list[tuple[str, float]], found: list[str]) -> None:
    assert run(BurstDetector(min_length=8, max_length=10), keys) == found


def test_alphabet_and_lengths_are_settings() -> None:
    detector = BurstDetector(alphabet=string.hexdigits, min_length=8, max_length=8, max_gap=0.2)
    assert run(detector, typed("04a1B2c3\r", 0.15)) == ["04a1B2c3"]
    assert run(detector, typed("04a1B2c3D4\r", 0.01)) == []


@given(st.lists(st.tuples(st.characters(), st.floats(0, 1)), max_size=60))
def test_whatever_is_typed_only_bursts_of_the_alphabet_come_out(keys) -> None:
    detector = BurstDetector()
    t = 0.0
    for char, step in keys:
        t += step
        found = detector.feed(char, t)
        assert found is None or (set(found) <= set(string.digits) and 4 <= len(found) <= 20)


def test_bad_detector_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        BurstDetector(max_gap=0)
    with pytest.raises(ValueError):
        BurstDetector(min_length=5, max_length=4)


# --- the reader on a pseudo-terminal -----------------------------------------------------


def test_a_burst_on_the_terminal_is_a_tap(pty) -> None:
    term = pty()
    with connect(f"keyboard:{term.path}") as reader:
        term.write(b"0077705923\r")
        tap = reader.read(timeout=2)
    assert tap is not None
    assert (tap.uid, tap.tech, tap.reader) == ("04A1B2C3", "keyboard", f"keyboard:{term.path}")


def test_slow_typing_on_the_terminal_is_not(pty) -> None:
    term = pty()
    with connect(f"keyboard:{term.path}") as reader:
        for char in b"0077705923\r":
            term.write(bytes([char]))
            time.sleep(0.08)
        assert reader.read(timeout=0.3) is None
        term.write(b"3283263748\n")  # a reader typing right after still counts
        tap = reader.read(timeout=2)
    assert tap is not None and tap.uid == "C3B2A104"
    assert tap.read_at.tzinfo is not None


def test_the_card_format_is_an_option(pty) -> None:
    term = pty()
    with connect(f"keyboard:{term.path}?format=decimal-reversed&gap=0.1") as reader:
        term.write(b"3283263748\r")
        assert reader.read(timeout=2).uid == "04A1B2C3"
    with connect(f"keyboard:{term.path}?format=wiegand26") as reader:
        term.write(b"161,45763\r")
        assert reader.read(timeout=2).uid == "A1B2C3"


def test_the_terminal_is_unbuffered_and_unechoed_while_open_and_restored_after(pty) -> None:
    import termios

    term = pty()
    before = termios.tcgetattr(term._slave)
    reader = KeyboardReader(term.path)
    during = termios.tcgetattr(term._slave)
    assert not during[3] & (termios.ICANON | termios.ECHO)
    reader.close()
    assert termios.tcgetattr(term._slave) == before


def test_a_terminal_that_goes_away_is_reopened(pty, tmp_path) -> None:
    first = pty()
    link = tmp_path / "kbd"
    link.symlink_to(first.path)
    reader = KeyboardReader(str(link), backoff=Backoff(first=0.05, most=0.2))
    try:
        first.close()
        assert wait_until(lambda: reader.state.startswith("reconnecting:"), 3), reader.state
        second = pty()
        link.unlink()
        link.symlink_to(second.path)
        assert wait_until(lambda: reader.state == "ok", 3), reader.state
        second.write(b"0077705923\r")
        tap = reader.read(timeout=2)
        assert tap is not None and tap.uid == "04A1B2C3"
    finally:
        reader.close()
    assert reader.state == "closed"


def test_close_wakes_a_blocked_read(pty) -> None:
    import threading

    reader = connect(f"keyboard:{pty().path}")
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(reader.read()))
    thread.start()
    time.sleep(0.1)
    reader.close()
    thread.join(timeout=2)
    assert not thread.is_alive() and result == [None]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("keyboard:/dev/SCHOOLGATE_NO_SUCH_TTY", "SCHOOLGATE_NO_SUCH_TTY"),
        ("keyboard?format=roman", "card format must be one of"),
        ("keyboard?gap=-1", "bad value '-1' for gap"),
        ("keyboard?speed=1", "unknown option 'speed'"),
    ],
)
def test_bad_keyboard_specs_are_refused_clearly(spec: str, says: str) -> None:
    with pytest.raises(ReaderError) as refused:
        connect(spec)
    assert says in refused.value.text("en")
