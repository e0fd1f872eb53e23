"""Central keeps each gate's last known health from its signed statuses; the will only says it went
(issue 13; docs/wire-protocol.md, "Status")."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from central.core.db import make_engine, migrate
from central.kiosks import services
from central.kiosks.ingest import Ingest
from central.kiosks.models import KioskStatus
from central.schools import registry
from gateway import protocol

SECRET = bytes.fromhex("7e" * 32)
TOPIC = protocol.Topics("sg/v1").status("s1", "k1")
ARRIVED = int(datetime(2026, 12, 1, 8, 0, 5, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def world(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        registry.ensure_school(session, code="s1")
        services.register_kiosk(session, school=registry.get_school(session, "s1"), kiosk="k1", secret=SECRET.hex())
    ingest = Ingest(engine, topics=protocol.Topics("sg/v1"), publish=lambda topic, payload: None)
    yield engine, ingest
    engine.dispose()


def status(at: str = "2026-12-01T08:00:00+00:00", **fields) -> bytes:
    values = {"v": 1, "online": True, "queue": 2, "last_seq": 9, "acked": 7, "roster_version": 4, "at": at, "boot": 3,
              "mono": 60_000, "clock_offset_ms": 1200, "reader": "ok", "guard": "T01", **fields}
    return protocol.status_payload(protocol.Status(**values), SECRET)


def will(boot: int = 3) -> bytes:
    return protocol.status_payload(protocol.Status(v=1, online=False, boot=boot), SECRET)


def kept(engine) -> dict | None:
    with Session(engine) as session:
        row = session.get(KioskStatus, 1)
        return None if row is None else row.model_dump(exclude={"kiosk_id"})


LAST = {"online": True, "boot": 3, "last_seen": datetime(2026, 12, 1, 8, 0, 5, tzinfo=UTC),
        "at": datetime(2026, 12, 1, 8, 0, tzinfo=UTC), "queue": 2, "last_seq": 9, "acked": 7, "roster_version": 4,
        "clock_offset_ms": 1200, "reader": "ok", "guard": "T01", "refused": None}


def test_a_live_status_is_kept_and_the_will_keeps_its_values(world):
    engine, ingest = world
    ingest.process([(TOPIC, status(), False, ARRIVED)])
    assert kept(engine) == LAST
    ingest.process([(TOPIC, will(), False, ARRIVED + 60_000)])
    assert kept(engine) == {**LAST, "online": False, "last_seen": datetime(2026, 12, 1, 8, 1, 5, tzinfo=UTC)}


def test_a_will_of_an_older_boot_and_an_older_retained_status_change_nothing(world):
    engine, ingest = world
    ingest.process([(TOPIC, status(), False, ARRIVED)])
    ingest.process([(TOPIC, will(boot=2), True, ARRIVED + 1000)])
    ingest.process([(TOPIC, status(at="2026-12-01T07:00:00+00:00", queue=50), True, ARRIVED + 2000)])
    assert kept(engine) == LAST


def test_a_retained_status_at_centrals_start_is_kept_without_a_last_seen(world):
    engine, ingest = world
    ingest.process([(TOPIC, status(), True, ARRIVED)])
    assert kept(engine) == {**LAST, "last_seen": None}


def test_an_unsigned_or_forged_status_is_not_kept(world):
    engine, ingest = world
    unsigned = json.loads(status())
    del unsigned["sig"]
    forged = json.loads(status())
    forged["queue"] = 0
    for payload in (unsigned, forged):
        ingest.process([(TOPIC, protocol.canonical_json(payload), False, ARRIVED)])
    assert kept(engine) is None
