from __future__ import annotations

import io
import threading
import time
from datetime import UTC, datetime

import pytest

from hardware import ReaderError, SimulatedReader, canonical_uid


def test_present_then_read_gives_canonical_tap() -> None:
    reader = SimulatedReader()
    reader.present("04a1b2c3d4e5f6")
    before = datetime.now(UTC)
    tap = reader.read(timeout=1)
    after = datetime.now(UTC)

    assert tap is not None
    assert (tap.uid, tap.tech, tap.reader) == ("04A1B2C3D4E5F6", "sim", "sim")
    assert tap.read_at.tzinfo is not None and tap.read_at.utcoffset().total_seconds() == 0
    assert before <= tap.read_at <= after


def test_taps_come_out_in_order_with_their_tech_and_reader_name() -> None:
    reader = SimulatedReader("sim:front-door")
    reader.present("01020304")
    reader.present("0102030405060708", tech="felica")

    first, second = reader.read(0), reader.read(0)

    assert (first.uid, first.tech) == ("01020304", "sim")
    assert (second.uid, second.tech) == ("0102030405060708", "felica")
    assert first.reader == second.reader == "sim:front-door"
    assert reader.read(timeout=0) is None


def test_read_times_out_with_none() -> None:
    reader = SimulatedReader()
    started = time.monotonic()
    assert reader.read(timeout=0.1) is None
    assert 0.09 <= time.monotonic() - started < 1


@pytest.mark.parametrize(
    "uid", ["", "123", "0102030g", "010203", "01" * 11, "01 02 03", "0x01020304", "-1020304"]
)
def test_present_rejects_uids_that_are_not_4_to_10_hex_bytes(uid: str) -> None:
    with pytest.raises(ValueError):
        SimulatedReader().present(uid)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("01020304", "01020304"),
        ("deadbeef", "DEADBEEF"),
        (" 04:a1:b2:c3:d4:e5:f6\n", "04A1B2C3D4E5F6"),
        ("04 A1 B2 C3 D4", "04A1B2C3D4"),
        ("0123456789abcdef0123", "0123456789ABCDEF0123"),
    ],
)
def test_canonical_uid(given: str, canonical: str) -> None:
    assert canonical_uid(given) == canonical


def test_close_wakes_a_blocked_read() -> None:
    reader = SimulatedReader()
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(reader.read()))
    thread.start()
    time.sleep(0.1)

    started = time.monotonic()
    reader.close()
    thread.join(timeout=1)

    assert not thread.is_alive()
    assert result == [None]
    assert time.monotonic() - started < 0.5


def test_closed_reader_reads_none_and_refuses_taps() -> None:
    reader = SimulatedReader()
    reader.present("01020304")
    reader.close()

    assert reader.read(timeout=1) is None
    with pytest.raises(ReaderError):
        reader.present("01020304")


def test_context_manager_closes() -> None:
    with SimulatedReader() as reader:
        pass
    assert reader.read(timeout=1) is None


def test_taps_presented_from_many_threads_are_all_read() -> None:
    reader = SimulatedReader()
    uids = [f"{n:08X}" for n in range(200)]

    def present(chunk: list[str]) -> None:
        for uid in chunk:
            reader.present(uid)

    threads = [threading.Thread(target=present, args=(uids[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    read = [reader.read(timeout=2).uid for _ in uids]
    for thread in threads:
        thread.join()

    assert sorted(read) == uids
    assert reader.read(timeout=0) is None


def test_feed_queues_one_tap_per_line_and_skips_junk(caplog: pytest.LogCaptureFixture) -> None:
    reader = SimulatedReader()
    stream = io.StringIO(
        "# demo taps\n"
        "04a1b2c3d4e5f6\n"
        "\n"
        "not-a-uid\n"
        "0102030405060708 felica   # a FeliCa card\n"
        "01020304\n"
    )

    assert reader.feed(stream) == 3
    taps = [reader.read(0) for _ in range(3)]
    assert [(tap.uid, tap.tech) for tap in taps] == [
        ("04A1B2C3D4E5F6", "sim"),
        ("0102030405060708", "felica"),
        ("01020304", "sim"),
    ]
    assert "not-a-uid" in caplog.text


def test_feed_from_a_background_thread_reaches_a_blocked_read() -> None:
    reader = SimulatedReader()
    thread = threading.Thread(target=reader.feed, args=(iter(["01020304\n"]),))
    thread.start()
    tap = reader.read(timeout=2)
    thread.join()
    assert tap is not None and tap.uid == "01020304"


def test_feed_stops_when_the_reader_is_closed() -> None:
    reader = SimulatedReader()
    reader.close()
    assert reader.feed(["01020304", "05060708"]) == 0
