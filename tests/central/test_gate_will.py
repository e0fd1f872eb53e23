"""The kiosk's will is small (offline and its boot, no values): central keeps the gate's last values
and only marks it offline (issue 13; docs/wire-protocol.md, "Status")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from central.core.db import make_engine, migrate
from central.kiosks import health, services
from central.kiosks.ingest import Ingest
from central.schools import registry
from gateway import protocol

SECRET = bytes.fromhex("5a" * 32)
TOPIC = protocol.Topics("sg/v1").status("s1", "k1")
NOW = datetime(2030, 9, 2, 9, 0, tzinfo=UTC)


def test_the_small_will_marks_the_gate_offline_and_keeps_its_last_values(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        registry.ensure_school(session, code="s1")
        services.register_kiosk(session, school=registry.get_school(session, "s1"), kiosk="k1", secret=SECRET.hex())
    clock = [NOW]
    ingest = Ingest(engine, topics=protocol.Topics("sg/v1"), publish=lambda topic, payload: None, clock=lambda: clock[0])
    live = protocol.Status(v=1, online=True, queue=3, last_seq=41, acked_seq=38, roster_version=7, at=NOW.isoformat(),
                           boot=2, mono=5000, reader="ok", guard="st2")
    will = protocol.Status(v=1, online=False, boot=2)
    for payload, at in ((protocol.status_payload(live, SECRET), NOW), (protocol.status_payload(will, SECRET), NOW + timedelta(minutes=1))):
        clock[0] = at
        ingest.submit(TOPIC, payload)
        ingest.process([ingest.queue.get_nowait()])
    with Session(engine) as session:
        [gate] = health.gates(session, school=registry.get_school(session, "s1"), now=clock[0], limit=timedelta(minutes=2))
    assert (gate["online"], gate["queue"], gate["last_seq_written"], gate["last_seq_acked"], gate["roster_version"],
            gate["reader"], gate["guard"]) == (False, 3, 41, 38, 7, "ok", "st2")
    assert gate["status_at"] == NOW  # when the values arrived, not the will
    engine.dispose()
