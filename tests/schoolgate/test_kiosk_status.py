"""`schoolgate kiosk status`: an installer reads a kiosk's store while the kiosk writes it (issue 13)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
from gateworld import snapshot
from typer.testing import CliRunner

import schoolgate.cli as cli
from gateway import protocol
from kiosk.store import KioskStore

AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)  # the roster below was made 2 h 5 min before


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_now", lambda: NOW)
    store = KioskStore(tmp_path / "s1-k1.sqlite3", school="s1", kiosk="k1")
    store.apply_snapshot(protocol.RosterSnapshot.model_validate(snapshot(generated_at="2026-12-01T08:00:00+00:00", version=4)))
    for i in range(3):
        store.record("unknown_card", AT, card=f"0A0B0C{i:02X}")
    store.ack(1)
    yield store
    store.close()


def status(tmp_path, *extra: str):
    return CliRunner().invoke(cli.app, ["kiosk", "status", "--data-dir", str(tmp_path), *extra], catch_exceptions=False)


def test_it_prints_the_outbox_and_the_roster_in_each_language(store, tmp_path):
    # The kiosk's connection is open with its writes in the write-ahead log: the status sees them.
    assert list(tmp_path.glob("*-wal"))
    english = status(tmp_path, "--lang", "en")
    assert english.exit_code == 0, english.output
    assert english.output.splitlines() == [
        "Kiosk k1 (school s1)",
        "Events waiting: 2",
        "Last seq written: 3",
        "Last seq acknowledged: 1",
        "Roster version: 4 (made 2 h 5 min ago)",
    ]
    chinese = status(tmp_path, "--lang", "zh_CN")
    assert chinese.output.splitlines() == [
        "终端 k1（学校 s1）", "待发送事件：2", "最后写入序号：3", "中心已确认序号：1", "名单版本：4（2 小时 5 分钟前生成）",
    ]


def test_json_for_programs(store, tmp_path):
    shown = json.loads(status(tmp_path, "--json").output)
    assert shown == {"school": "s1", "kiosk": "k1", "queue": 2, "last_seq": 3, "acked": 1, "roster_version": 4,
                     "roster_generated_at": "2026-12-01T08:00:00+00:00", "roster_age_s": 7500}


def test_it_reads_while_the_kiosk_keeps_writing_and_never_blocks_it(store, tmp_path):
    stop = threading.Event()
    written: list[int] = []
    failed: list[BaseException] = []

    def kiosk_at_work() -> None:
        try:
            while not stop.is_set():
                written.append(store.record("unknown_card", AT, card="0A0B0C0D")["seq"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            failed.append(exc)

    writer = threading.Thread(target=kiosk_at_work)
    writer.start()
    try:
        seen = []
        for _ in range(5):
            shown = json.loads(status(tmp_path, "--json").output)
            # One read transaction: the depth and the seqs are of the same moment.
            assert shown["queue"] == shown["last_seq"] - shown["acked"]
            seen.append(shown["last_seq"])
    finally:
        stop.set()
        writer.join(10)
    assert not failed, failed
    assert seen == sorted(seen) and seen[0] >= 3
    assert written and written[-1] == store.last_seq


def test_a_stopped_kiosks_store_is_read_and_left_as_it_was(store, tmp_path):
    store.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert status(tmp_path, "--lang", "en").output.splitlines()[1] == "Events waiting: 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_no_roster_yet(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_now", lambda: NOW)
    KioskStore(tmp_path / "s1-k1.sqlite3", school="s1", kiosk="k1").close()
    assert status(tmp_path, "--lang", "en").output.splitlines()[-1] == "Roster: none received yet"


def test_an_empty_folder_or_several_stores_are_said_so(tmp_path):
    empty = status(tmp_path, "--lang", "en")
    assert empty.exit_code == 2 and f"No kiosk store in {tmp_path}" in empty.output
    for kiosk in ("k1", "k2"):
        KioskStore(tmp_path / f"s1-{kiosk}.sqlite3", school="s1", kiosk=kiosk).close()
    several = status(tmp_path, "--lang", "en")
    assert several.exit_code == 2 and "s1-k1.sqlite3, s1-k2.sqlite3" in several.output
    named = status(tmp_path, "--lang", "en", "--school", "s1", "--kiosk", "k2")
    assert named.exit_code == 0 and named.output.splitlines()[0] == "Kiosk k2 (school s1)"
