"""A kiosk store backed up, restored, and told central's head (kiosk/store.py: backup_store,
restore_store, KioskStore.resume); with the real broker and central in tests/integration/test_kiosk_restore.py."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime

import pytest

from gateway import protocol
from kiosk.store import KioskStore, StoreError, backup_store, read_status, restore_store

AT = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
DAY = date(2026, 11, 30)
SECRET = "ab" * 32
HEAD_HASH = "cd" * 32


def a_store(tmp_path, events: int) -> KioskStore:
    store = KioskStore(tmp_path / "live" / "s1-k1.sqlite3", school="s1", kiosk="k1", secret=SECRET)
    for n in range(events):
        store.record("checkin", AT, day=DAY, card=f"0A0B0C{n:02X}", student=f"S{n}")
    return store


def restored(tmp_path, *, backed_up: int, acked: int) -> KioskStore:
    (tmp_path / "live").mkdir(exist_ok=True)
    store = a_store(tmp_path, backed_up)
    store.ack(acked)
    assert backup_store(store.path, tmp_path / "b.sqlite3") == ("s1", "k1", backed_up)
    store.close()
    path, school, kiosk, last_seq = restore_store(tmp_path / "b.sqlite3", tmp_path / "restored")
    assert (path.name, school, kiosk, last_seq) == ("s1-k1.sqlite3", "s1", "k1", backed_up)
    return KioskStore(path, school="s1", kiosk="k1")


def test_events_since_the_restore_are_renumbered_after_centrals_head_and_chained_onto_it(tmp_path):
    store = restored(tmp_path, backed_up=3, acked=2)
    assert store.hold_after == 3
    new = [store.record("checkin", AT, day=DAY, card="0D0E0F01", student="N1"),
           store.record("checkout", AT, day=DAY, card="0D0E0F01", student="N1")]
    assert [e["seq"] for e in new] == [4, 5]
    # Central holds up to 7 (seqs 4-7 were the lost store's): 4 and 5 become 8 and 9.
    assert store.resume(7, HEAD_HASH) == 2
    assert store.hold_after is None
    assert (store.acked, store.last_seq, store.queue_depth()) == (7, 9, 2)
    rows = [json.loads(p) for _, p in store.pending(0, 10)]
    assert [(e["seq"], e["id"], e["kind"]) for e in rows] == [(8, new[0]["id"], "checkin"), (9, new[1]["id"], "checkout")]
    assert rows[0]["prev"] == HEAD_HASH and rows[1]["prev"] == protocol.event_hash(rows[0])
    assert all(protocol.verify(e, bytes.fromhex(SECRET)) for e in rows)
    # The day log follows (the gate's state is a fold of it), and the next event goes on after 9.
    assert [e["seq"] for e in store.day_events(DAY)] == [1, 2, 3, 8, 9]
    assert store.record("checkin", AT, day=DAY, card="0D0E0F02", student="N2")["prev"] == protocol.event_hash(rows[1])
    store.close()
    assert read_status(tmp_path / "restored" / "s1-k1.sqlite3", AT).last_seq == 10


@pytest.mark.parametrize(("head", "acked", "last_seq"), [(None, 2, 4), (3, 2, 4), (2, 2, 4)])
def test_a_head_not_past_the_backup_changes_nothing_but_ends_the_hold(tmp_path, head, acked, last_seq):
    store = restored(tmp_path, backed_up=3, acked=2)
    store.record("checkin", AT, day=DAY, card="0D0E0F01", student="N1")
    assert store.resume(head, HEAD_HASH if head else None) == 0
    assert (store.hold_after, store.acked, store.last_seq) == (None, acked, last_seq)
    # Once resumed, a later head is no restore any more: nothing moves.
    assert store.resume(50, HEAD_HASH) == 0 and store.last_seq == last_seq


def test_restore_refuses_to_overwrite_a_store_unless_forced(tmp_path):
    restored(tmp_path, backed_up=1, acked=1).close()
    with pytest.raises(StoreError, match="--force"):
        restore_store(tmp_path / "b.sqlite3", tmp_path / "restored")
    restore_store(tmp_path / "b.sqlite3", tmp_path / "restored", force=True)
    (tmp_path / "junk").write_bytes(b"junk" * 1000)
    with pytest.raises(StoreError):
        restore_store(tmp_path / "junk", tmp_path / "elsewhere")


def test_the_commands_back_up_and_restore_a_kiosk_store(tmp_path):
    (tmp_path / "live").mkdir()
    a_store(tmp_path, 2).close()

    def sg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "schoolgate", "--lang", "en", "kiosk", *args],
                              capture_output=True, text=True, timeout=60)

    made = sg("backup", "--data-dir", str(tmp_path / "live"), "--out", str(tmp_path / "b.sqlite3"))
    assert made.returncode == 0, made.stderr
    assert "Backed up the store of kiosk s1/k1" in made.stderr and "last seq 2" in made.stderr
    back = sg("restore", "--from", str(tmp_path / "b.sqlite3"), "--data-dir", str(tmp_path / "new"))
    assert back.returncode == 0, back.stderr
    assert "the backup ends at seq 2" in back.stderr
    assert sg("restore", "--from", str(tmp_path / "b.sqlite3"), "--data-dir", str(tmp_path / "new")).returncode == 2
    status = sg("status", "--data-dir", str(tmp_path / "new"), "--json")
    assert json.loads(status.stdout)["last_seq"] == 2
