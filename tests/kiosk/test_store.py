import sqlite3
from datetime import UTC, date, datetime

import pytest

from gateway import protocol
from kiosk.store import KioskStore, StoreError

AT = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
DAY = date(2026, 11, 30)


def snapshot(version, students):
    return protocol.RosterSnapshot.model_validate(
        {"v": 1, "school": "s1", "version": version, "generated_at": "2026-11-30T00:00:00+00:00", "students": students}
    )


def test_first_boot_creates_a_secret_and_keeps_it(tmp_path):
    store = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1")
    assert store.secret_created and len(store.secret_hex) == 64
    secret = store.secret_hex
    store.close()
    again = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1")
    assert not again.secret_created and again.secret_hex == secret


def test_store_refuses_another_kiosks_file(tmp_path):
    KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1").close()
    with pytest.raises(StoreError, match="k1"):
        KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k2")


def test_events_are_chained_signed_durable_and_survive_a_reopen(tmp_path):
    path = tmp_path / "k.sqlite3"
    store = KioskStore(path, school="s1", kiosk="k1", secret="ab" * 32)
    first = store.record("unknown_card", AT, card="01020304")
    second = store.record("checkin", AT, day=DAY, card="04A1B2C3", student="S1")
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["prev"] == "" and second["prev"] == protocol.event_hash(first)
    assert protocol.verify(second, bytes.fromhex("ab" * 32))
    store.close()
    # What another process (or the kiosk after a power cut) finds on disk.
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[0] for r in db.execute("SELECT seq FROM outbox ORDER BY seq")] == [1, 2]
    db.close()
    again = KioskStore(path, school="s1", kiosk="k1")
    assert again.checked_in(DAY) == {"S1"}
    third = again.record("unknown_card", AT, card="05060708")
    assert third["seq"] == 3 and third["prev"] == protocol.event_hash(second)


def test_ack_deletes_only_what_it_covers(tmp_path):
    store = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1")
    for i in range(5):
        store.record("unknown_card", AT, card=f"0102030{i}")
    assert store.ack(3) == 3
    assert [seq for seq, _ in store.pending(0, 10)] == [4, 5]
    assert store.ack(2) == 0  # an old ack changes nothing
    with pytest.raises(StoreError):
        store.ack(9)  # beyond what was written: never drop unsent events
    assert store.queue_depth() == 2


def test_roster_snapshot_then_delta(tmp_path):
    store = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1")
    assert store.roster.version == 0
    assert store.apply_snapshot(snapshot(1, [{"id": "S1", "name": "A", "class": "1", "cards": ["04A1B2C3"]}]))
    assert store.roster.lookup("04a1b2c3") == ("student", "S1")
    delta = protocol.RosterDelta.model_validate(
        {"v": 1, "school": "s1", "from": 1, "to": 2, "students": [{"id": "S2", "name": "B", "class": "1", "cards": ["0A0B0C0D"]}], "removed_students": ["S1"]}
    )
    assert store.apply_delta(delta)
    assert store.roster.version == 2
    assert store.roster.lookup("04A1B2C3") is None and store.roster.lookup("0A0B0C0D") == ("student", "S2")
    stale = protocol.RosterDelta.model_validate({"v": 1, "school": "s1", "from": 1, "to": 2})
    assert not store.apply_delta(stale)
    store.close()
    assert KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1").roster.version == 2


def test_versions_only_increase(tmp_path):
    store = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1")
    assert store.apply_snapshot(snapshot(5, [{"id": "S1", "name": "A", "class": "1"}]))
    assert not store.apply_snapshot(snapshot(4, []))  # an older retained copy, e.g. via a bridge
    assert not store.apply_snapshot(snapshot(5, []))
    assert store.roster.version == 5 and "S1" in store.roster.students


def test_each_start_is_a_new_boot_and_events_carry_the_monotonic_clock(tmp_path):
    store = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1")
    first = store.record("unknown_card", AT, card="01020304")
    store.close()
    again = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1")
    second = again.record("unknown_card", AT, card="01020305")
    assert (first["boot"], second["boot"]) == (1, 2)
    assert 0 <= second["mono"] < 5000


def test_an_ack_past_the_last_event_written_deletes_nothing_through_the_sync_client(tmp_path):
    from gateway.client import SyncClient
    from gateway.mqtt import BrokerAddress

    store = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1")
    for i in range(3):
        store.record("unknown_card", AT, card=f"0102030{i}")
    client = SyncClient(store, school="s1", kiosk="k1", broker=BrokerAddress("127.0.0.1", 1))
    # A kiosk replaced under the same code: central acks far past what this store ever wrote.
    client._apply_ack(protocol.Ack(v=1, upto=5000, server_time="2026-11-30T08:00:00+00:00"))
    assert store.queue_depth() == 3 and store.acked == 0


def test_an_ack_with_refused_events_drops_them_and_logs_the_seqs(tmp_path, caplog):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.client import SyncClient
    from gateway.mqtt import BrokerAddress

    central_public = protocol.public_key_hex(Ed25519PrivateKey.generate())  # a kiosk with central's key, as registered
    store = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1", central_key=central_public)
    for i in range(3):
        store.record("unknown_card", AT, card=f"0102030{i}")
    client = SyncClient(store, school="s1", kiosk="k1", broker=BrokerAddress("127.0.0.1", 1))
    ack = b'{"v":1,"school":"s1","kiosk":"k1","upto":3,"server_time":"2026-11-30T08:00:00+00:00","refused":[2]}'
    client._apply_ack(protocol.parse_message(protocol.Ack, ack))
    assert store.queue_depth() == 0 and store.acked == 3
    assert [r.message for r in caplog.records if r.levelname == "ERROR"] == [
        "central refused events [2] of this kiosk as malformed (see its safety incidents)"
    ]


def test_the_status_is_signed_with_the_kiosks_secret(tmp_path):
    import json

    from gateway.client import SyncClient
    from gateway.mqtt import BrokerAddress

    store = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1", secret="5e" * 32)
    client = SyncClient(store, school="s1", kiosk="k1", broker=BrokerAddress("127.0.0.1", 1), secret=bytes.fromhex("5e" * 32))
    status = json.loads(client._status_payload(online=True))
    assert protocol.verify(status, bytes.fromhex("5e" * 32)) and status["boot"] == store.boot


def test_a_repeated_resend_from_rewinds_the_sender_once_per_gap(tmp_path):
    from gateway.client import SyncClient
    from gateway.mqtt import BrokerAddress

    store = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1")
    for i in range(10):
        store.record("unknown_card", AT, card=f"0A0B0C{i:02X}")
    client = SyncClient(store, school="s1", kiosk="k1", broker=BrokerAddress("127.0.0.1", 1), resend_after=60)
    client._sent_upto = 10
    gap = protocol.Ack(v=1, upto=2, server_time="2026-11-30T08:00:00+00:00", resend_from=3)
    client._apply_ack(gap)
    assert client._sent_upto == 2  # go back to the missing seq ...
    client._sent_upto = 10  # ... and send again
    client._apply_ack(gap)  # central says the same while the resend is on its way
    assert client._sent_upto == 10


def test_the_roster_copy_keeps_staff_and_sessions_through_snapshot_delta_and_restart(tmp_path):
    store = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1")
    snap = protocol.RosterSnapshot.model_validate({
        "v": 1, "school": "s1", "version": 1, "generated_at": "2026-11-30T00:00:00+00:00",
        "staff": [{"id": "st1", "name": "李老师", "cards": ["5A5A5A5A"]}],
        "sessions": [{"id": "7", "group": "3", "date": "2026-11-30", "start": "2026-11-30T08:20:00+00:00", "end": "2026-11-30T09:40:00+00:00"}],
    })
    assert store.apply_snapshot(snap)
    assert store.roster.lookup("5a5a5a5a") == ("staff", "st1") and "7" in store.roster.sessions
    delta = protocol.RosterDelta.model_validate({"v": 1, "school": "s1", "from": 1, "to": 2, "removed_sessions": ["7"]})
    assert store.apply_delta(delta)
    assert store.roster.sessions == {} and "st1" in store.roster.staff
    store.close()
    again = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1")
    assert again.roster.version == 2 and again.roster.lookup("5A5A5A5A") == ("staff", "st1")


def test_stopping_sync_after_the_broker_vanished_does_not_fail(tmp_path):
    import time

    from gateway.broker import EmbeddedBroker
    from gateway.client import SyncClient
    from gateway.mqtt import BrokerAddress, Logins, free_port

    store = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1")
    port = free_port()
    with EmbeddedBroker("127.0.0.1", port, logins=Logins({"k1": "pw"})):
        client = SyncClient(store, school="s1", kiosk="k1", broker=BrokerAddress("127.0.0.1", port, "k1", "pw")).start()
        deadline = time.monotonic() + 10
        while not client.online and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.online
    client.connection.connected.set()  # paho has not noticed the broker is gone yet
    client.stop()  # no exception: the will reports the kiosk offline
