"""A kiosk restored from an old backup, with the real broker and central's ingest: central's ack names
its head, the kiosk goes on after it, and every event is stored exactly once (docs/wire-protocol.md,
"A kiosk restored from a backup")."""

from __future__ import annotations

from datetime import UTC, datetime

import uuid

import httpx
import pytest
from sgtest import RunningClock, wait_for

from central.admin import central_key, create_school, register_kiosk
from central.core import clock
from central.core.backup import backup, restore
from central.core.config import Settings
from central.server import CentralServer
from gateway.mqtt import free_port
from hardware import CardTap
from kiosk.config import KioskSettings
from kiosk.runtime import Kiosk
from kiosk.store import backup_store, read_status, restore_store

START = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
SECRET = "5b" * 32


class World:
    """Central on a free port, one school, a kiosk's settings; what central stored, through its API."""

    def __init__(self, backend, tmp_path) -> None:
        self.backend, self.tmp = backend, tmp_path
        self.now = RunningClock(START)  # central's and the kiosk's clock (the fixture patches central's)
        self.school = f"sch-{uuid.uuid4().hex[:8]}"
        self.settings = Settings(database_url=backend.database_url, mqtt_url=backend.mqtt_url, topic_prefix=backend.topic_prefix)
        self.central = CentralServer(self.settings, port=free_port()).start()
        create_school(self.settings, code=self.school, name=self.school)
        self.http = httpx.Client(base_url=self.central.url,
                                 headers={"Authorization": f"Bearer {self.settings.api_token.get_secret_value()}"})

    def register(self) -> None:
        register_kiosk(self.settings, school=self.school, kiosk="gate-1", secret=SECRET)

    def kiosk(self, mqtt_url: str | None = None) -> Kiosk:
        return Kiosk(clock=self.now, settings=KioskSettings(
            school=self.school, kiosk="gate-1", data_dir=self.tmp / "kiosk", secret=SECRET, central_key=central_key(self.settings),
            mqtt_url=mqtt_url or self.backend.kiosk_url, topic_prefix=self.backend.topic_prefix, resend_after=2.0,
        )).start()

    def restart(self, *, restore_from) -> None:
        """Stop central, restore its database from a backup (``central restore --force``), start it again."""
        self.central.stop()
        restore(self.settings.database_url, restore_from, force=True)
        self.central = CentralServer(self.settings, port=free_port()).start()
        self.http.base_url = self.central.url

    def events(self) -> list[dict]:
        page = self.http.get(f"/api/v1/schools/{self.school}/events", params={"limit": 1000})
        page.raise_for_status()
        return page.json()

    def incidents(self) -> list[dict]:
        response = self.http.get(f"/api/v1/schools/{self.school}/incidents")
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self.http.close()
        self.central.stop()


@pytest.fixture
def world(backend, tmp_path, monkeypatch):
    w = World(backend, tmp_path)
    monkeypatch.setattr(clock, "utcnow", w.now)
    try:
        yield w
    finally:
        w.close()


def tap(gate, uid: str, n: int) -> None:
    gate.handle(CardTap(uid=uid, tech="sim", read_at=gate.clock(), reader="sim"))


def test_a_kiosk_restored_from_an_old_backup_resends_nothing_twice_and_loses_nothing(world, tmp_path):
    world.register()
    gate = world.kiosk()
    try:
        for n in range(3):
            tap(gate, f"0A0B0C{n:02X}", n)
        wait_for(lambda: gate.store.acked == 3, what="seqs 1-3 acked")
        # The nightly backup, taken while the kiosk runs.
        assert backup_store(gate.store.path, tmp_path / "backup.sqlite3") == (world.school, "gate-1", 3)
        for n in range(3, 7):
            tap(gate, f"0A0B0C{n:02X}", n)
        wait_for(lambda: gate.store.acked == 7, what="seqs 4-7 acked")
    finally:
        gate.close()
    # The SD card dies; the kiosk comes back from last night's backup, which ends at seq 3.
    path, school, kiosk, last_seq = restore_store(tmp_path / "backup.sqlite3", tmp_path / "kiosk", force=True)
    assert (school, kiosk, last_seq) == (world.school, "gate-1", 3)
    # It works offline first: two taps recorded as seqs 4 and 5, which central holds other events under.
    offline = world.kiosk(mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    try:
        assert offline.store.hold_after == 3
        tap(offline, "0D0E0F01", 10)
        tap(offline, "0D0E0F02", 11)
        assert offline.store.last_seq == 5
    finally:
        offline.close()
    gate = world.kiosk()
    try:
        wait_for(lambda: gate.store.hold_after is None and gate.store.queue_depth() == 0, what="the restored kiosk caught up")
        # Central's head was 7: the two offline taps are 8 and 9, chained after central's seq 7.
        assert (gate.store.acked, gate.store.last_seq) == (9, 9)
        tap(gate, "0D0E0F03", 12)
        wait_for(lambda: gate.store.acked == 10, what="a new tap after the restore acked")
    finally:
        gate.close()
    events = world.events()
    assert sorted(e["seq"] for e in events) == list(range(1, 11))
    by_seq = {e["seq"]: e["card"] for e in events}
    assert [by_seq[s] for s in range(1, 8)] == [f"0A0B0C{n:02X}" for n in range(7)]
    assert [by_seq[s] for s in (8, 9, 10)] == ["0D0E0F01", "0D0E0F02", "0D0E0F03"]
    assert len({e["id"] for e in events}) == 10
    # Nothing was sent under a seq central held (no conflicting_event), and the chain held (no broken_chain).
    assert world.incidents() == []
    assert read_status(path, START).last_seq == 10


@pytest.mark.parametrize("backend", ["embedded+sqlite"], indirect=True)  # central backup/restore is SQLite's (PostgreSQL: pg_dump)
def test_a_central_restored_from_an_old_backup_takes_the_gates_new_events_and_names_what_it_lost(world, tmp_path):
    world.register()
    gate = world.kiosk()
    try:
        for n in range(3):
            tap(gate, f"0A0B0C{n:02X}", n)
        wait_for(lambda: gate.store.acked == 3, what="seqs 1-3 acked")
        # Central's nightly backup, taken while it runs.
        backup(world.settings.database_url, tmp_path / "central.backup")
        for n in range(3, 7):
            tap(gate, f"0A0B0C{n:02X}", n)
        wait_for(lambda: gate.store.acked == 7, what="seqs 4-7 acked, and gone from the kiosk's outbox")
        # Central's disk dies; it comes back from last night's backup, which ends at seq 3. The gate
        # stays up and connected all along.
        world.restart(restore_from=tmp_path / "central.backup")
        tap(gate, "0D0E0F01", 10)
        tap(gate, "0D0E0F02", 11)
        wait_for(lambda: gate.store.queue_depth() == 0, what="the gate's new events stored by the restored central")
        assert (gate.store.acked, gate.store.last_seq) == (9, 9)
    finally:
        gate.close()
    events = world.events()
    assert sorted(e["seq"] for e in events) == [1, 2, 3, 8, 9]
    assert {e["seq"]: e["card"] for e in events if e["seq"] > 3} == {8: "0D0E0F01", 9: "0D0E0F02"}
    # The loss is named once, for a principal to see; the chain after it was not called broken.
    incidents = world.incidents()
    assert [(i["kind"], i["kiosk"], i["seq"]) for i in incidents] == [("events_lost", "gate-1", 7)]
    assert "seqs 4-7" in incidents[0]["detail"]
    items = world.http.get(f"/api/v1/schools/{world.school}/safety/items", params={"kind": "events_lost"})
    assert [(i["kind"], i["kiosk"]) for i in items.raise_for_status().json()["items"]] == [("events_lost", "gate-1")]
