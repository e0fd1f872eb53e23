"""Each gate's health at central (issue 13): what it last said, when it was last heard from, and a gate
silent while a session runs is a safety incident, once per silence."""

from __future__ import annotations

import json
import threading
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta

import pytest
from sgtest import fresh_postgres_database
from sqlmodel import Session, select

from central.accounts.models import ChildRead
from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.core.events import ChildAlertRaised, DomainEvents, IncidentStored
from central.kiosks import health, services
from central.kiosks.ingest import Ingest
from central.kiosks.models import ChildAlert, Event, SafetyIncident
from central.main import _watch_gates
from central.programme.models import CareSession, InterestGroup
from central.schools import registry
from central.schools.models import Kiosk
from gateway import protocol

from .conftest import KIOSK_SECRET

TOPICS = protocol.Topics("sg/v1")
NOW = datetime(2030, 9, 2, 9, 0, tzinfo=UTC)  # 17:00 in Shanghai
SECRET = "5a" * 32
LIMIT = timedelta(minutes=2)


def status(online: bool = True, **fields) -> bytes:
    body = {"v": 1, "online": online, "queue": 3, "last_seq": 41, "roster_version": 7, "at": NOW.isoformat(),
            "clock_offset_ms": -120, "reader": "ok", **fields}
    return protocol.canonical_json(body)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
def central(request, tmp_path):
    with ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
        if request.param == "postgres":
            url = stack.enter_context(fresh_postgres_database(migrated=True))
        yield from _central(url)


def _central(url: str):
    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as session:
        for school, kiosks in (("s1", ("k1", "k2")), ("s2", ("k3",))):
            found = registry.ensure_school(session, code=school)
            for kiosk in kiosks:
                services.register_kiosk(session, school=found, kiosk=kiosk, secret=SECRET)
    clock = Clock()
    ingest = Ingest(engine, topics=TOPICS, publish=lambda topic, payload: None, clock=clock)
    yield engine, ingest, clock
    engine.dispose()


def send(ingest: Ingest, topic: str, payload: bytes, retained: bool = False) -> None:
    ingest.process([(topic, payload, retained)])


def gates(engine, school: str = "s1", now: datetime = NOW) -> dict[str, dict]:
    with Session(engine) as session:
        found = registry.get_school(session, school)
        return {g["kiosk"]: g for g in health.gates(session, school=found, now=now, limit=LIMIT)}


def test_a_gates_status_is_kept_with_when_it_was_heard_and_its_will_keeps_the_last_values(central):
    engine, ingest, clock = central
    send(ingest, TOPICS.status("s1", "k1"), status(guard="S-07"))
    seen = gates(engine)
    assert {k: seen["k1"][k] for k in ("online", "last_seen", "queue", "last_seq_written", "roster_version",
                                         "clock_offset_ms", "reader", "guard", "silent")} == {
        "online": True, "last_seen": NOW, "queue": 3, "last_seq_written": 41, "roster_version": 7,
        "clock_offset_ms": -120, "reader": "ok", "guard": "S-07", "silent": False,
    }
    assert (seen["k2"]["online"], seen["k2"]["last_seen"], seen["k2"]["queue"]) == (False, None, None)  # never heard

    clock.now = NOW + timedelta(seconds=30)
    send(ingest, TOPICS.status("s1", "k1"), status(online=False, queue=5))  # the will: offline, last values
    after = gates(engine, now=clock.now)["k1"]
    assert (after["online"], after["queue"], after["last_seen"], after["status_at"]) == (False, 5, clock.now, clock.now)


def test_an_old_retained_status_neither_counts_as_heard_nor_covers_a_live_one(central):
    engine, ingest, clock = central
    send(ingest, TOPICS.status("s1", "k1"), status(queue=1))
    clock.now = NOW + timedelta(minutes=1)
    send(ingest, TOPICS.status("s1", "k1"), status(queue=9), retained=True)
    k1 = gates(engine, now=clock.now)["k1"]
    assert (k1["queue"], k1["last_seen"]) == (1, NOW)
    send(ingest, TOPICS.status("s1", "k2"), status(queue=4), retained=True)  # all central knows of k2
    k2 = gates(engine, now=clock.now)["k2"]
    assert (k2["queue"], k2["last_seen"]) == (4, None)


def test_a_malformed_status_or_one_of_an_unknown_gate_changes_nothing(central):
    engine, ingest, _ = central
    send(ingest, TOPICS.status("s1", "k1"), b'{"v":1,"online":"yes"}')
    send(ingest, TOPICS.status("s1", "nosuch"), status())
    assert gates(engine)["k1"]["status_at"] is None and set(gates(engine)) == {"k1", "k2"}


def test_a_gates_own_signed_events_count_as_heard_and_a_forgers_do_not(central):
    engine, ingest, clock = central
    forged = protocol.new_event(school="s1", kiosk="k2", seq=1, prev="", at=NOW, kind="checkin", secret=b"\x00" * 32)
    send(ingest, TOPICS.events("s1", "k2"), protocol.canonical_json(forged))
    assert gates(engine)["k2"]["last_seen"] is None
    clock.now = NOW + timedelta(seconds=5)
    event = protocol.new_event(school="s1", kiosk="k2", seq=1, prev="", at=NOW, kind="checkin", secret=bytes.fromhex(SECRET))
    send(ingest, TOPICS.events("s1", "k2"), protocol.canonical_json(event))
    assert gates(engine, now=clock.now)["k2"]["last_seen"] == clock.now


@pytest.mark.parametrize(
    ("last_seen", "silent"),
    [(None, False), (NOW, False), (NOW - LIMIT, False), (NOW - LIMIT - timedelta(seconds=1), True),
     (NOW - timedelta(hours=3), True)],
    ids=["never heard", "just now", "exactly the limit", "a second past it", "hours ago"],
)
def test_the_silence_rule(last_seen, silent):
    assert health.is_silent(last_seen, NOW, LIMIT) is silent


def _running_session(engine, school: str, starts: datetime, ends: datetime) -> None:
    with Session(engine) as session:
        found = registry.get_school(session, school)
        group = InterestGroup(school_id=found.id, name=f"组{starts:%H%M}", category="sports", capacity=30,
                              place="操场", grades=["三年级"], created_by="test")
        session.add(group)
        session.flush()
        session.add(CareSession(school_id=found.id, group_id=group.id, day=date(2030, 9, 2), starts_at=starts,
                                ends_at=ends, place="操场", created_by="test"))
        session.commit()


def _heard(engine, kiosk: str, at: datetime) -> None:
    with Session(engine) as session:
        row = session.exec(select(Kiosk).where(Kiosk.code == kiosk)).one()
        row.last_seen = at
        session.add(row)
        session.commit()


def _report(engine, now: datetime) -> list[tuple[str, str]]:
    with Session(engine) as session:
        return [(i.kind, i.kiosk) for i in health.report_silent(session, now=now, limit=LIMIT)]


def test_a_gate_silent_during_a_session_is_an_incident_once_per_silence(central):
    engine, _, _ = central
    _running_session(engine, "s1", NOW - timedelta(minutes=30), NOW + timedelta(minutes=30))
    _heard(engine, "k1", NOW - timedelta(minutes=3))  # silent
    _heard(engine, "k2", NOW - timedelta(minutes=1))  # speaking
    _heard(engine, "k3", NOW - timedelta(minutes=30))  # silent, but s2 has no session now
    assert _report(engine, NOW) == [("gate_silent", "k1")]
    assert _report(engine, NOW + timedelta(minutes=1)) == []  # the same silence: once
    _heard(engine, "k1", NOW + timedelta(minutes=2))  # it spoke, then went quiet again
    _heard(engine, "k2", NOW + timedelta(minutes=4))
    assert _report(engine, NOW + timedelta(minutes=5)) == [("gate_silent", "k1")]
    with Session(engine) as session:
        stored = session.exec(select(SafetyIncident).where(SafetyIncident.kind == "gate_silent")).all()
    assert [i.kiosk for i in stored] == ["k1", "k1"]
    assert "since 2030-09-02T08:57:00+00:00 (3 min)" in stored[0].detail


def test_no_incident_when_no_session_runs_before_or_after(central):
    engine, _, _ = central
    _running_session(engine, "s1", NOW + timedelta(minutes=1), NOW + timedelta(minutes=60))  # starts later
    _running_session(engine, "s1", NOW - timedelta(minutes=60), NOW)  # ended just now
    _heard(engine, "k1", NOW - timedelta(minutes=10))
    assert _report(engine, NOW) == []


def test_the_gate_watch_reports_a_silent_gate_as_a_domain_event(central, monkeypatch):
    engine, _, _ = central
    _running_session(engine, "s1", NOW - timedelta(minutes=30), NOW + timedelta(minutes=30))
    _heard(engine, "k1", NOW - timedelta(minutes=3))
    monkeypatch.setattr("central.core.clock.utcnow", lambda: NOW)
    seen: list[IncidentStored] = []
    arrived = threading.Event()
    dispatcher = DomainEvents()
    dispatcher.subscribe(IncidentStored, lambda e: (seen.append(e), arrived.set()))
    stop = threading.Event()
    settings = Settings.model_construct(gate_silent_minutes=2.0, gate_check_seconds=0.01)
    watcher = threading.Thread(target=_watch_gates, args=(engine, settings, dispatcher, stop))
    watcher.start()
    try:
        assert arrived.wait(10)
    finally:
        stop.set()
        watcher.join(10)
    assert [(e.kind, e.kiosk) for e in seen] == [("gate_silent", "k1")]


def test_the_school_lists_its_gates_for_the_guard_and_the_admin(world):
    """The API's world (tests/central/conftest.py): s1's gate-1."""
    ingest = Ingest(world.engine, topics=TOPICS, publish=lambda topic, payload: None)
    body = {**json.loads(status(guard="S-07")), "sig": None}
    del body["sig"]
    signed = {**body, "sig": protocol.sign(body, bytes.fromhex(KIOSK_SECRET))}
    send(ingest, TOPICS.status("s1", "gate-1"), protocol.canonical_json(signed))
    answer = world.client.get("/api/v1/schools/s1/kiosks", headers=world.as_("guard1"))
    assert answer.status_code == 200, answer.text
    (gate,) = [g for g in answer.json() if g["kiosk"] == "gate-1"]
    assert (gate["queue"], gate["roster_version"], gate["reader"], gate["guard"], gate["last_seq_stored"]) == (3, 7, "ok", "S-07", 0)


# --- alerts about a child, once however many gates raise them ------------------------------------


class Gate:
    def __init__(self, kiosk: str, school: str = "s1", secret: str = SECRET) -> None:
        self.school, self.kiosk, self.secret = school, kiosk, bytes.fromhex(secret)
        self.seq, self.prev = 0, ""

    def alert(self, kind: str, student: str, session: str = "sess-1", at: datetime = NOW) -> bytes:
        self.seq += 1
        event = protocol.new_event(school=self.school, kiosk=self.kiosk, seq=self.seq, prev=self.prev, at=at,
                                   kind="alert", reason=kind, student=student, session=session, secret=self.secret)
        self.prev = protocol.event_hash(event)
        return protocol.canonical_json(event)


def child_alerts(engine) -> list[tuple]:
    with Session(engine) as session:
        return [(a.kind, a.student, a.session, a.kiosk, a.raised)
                for a in session.exec(select(ChildAlert).order_by(ChildAlert.id))]


def test_an_absent_alert_raised_by_two_gates_is_stored_once_and_announced_once(central):
    engine, _, _ = central
    raised: list[ChildAlertRaised] = []
    dispatcher = DomainEvents()
    dispatcher.subscribe(ChildAlertRaised, raised.append)
    ingest = Ingest(engine, topics=TOPICS, publish=lambda topic, payload: None, events=dispatcher)
    k1, k2, k3 = Gate("k1"), Gate("k2"), Gate("k3", school="s2")
    send(ingest, TOPICS.events("s1", "k1"), k1.alert("absent", "S1"))
    # gate 2 raises the same child's absence, and one gate sends two in one batch
    ingest.process([(TOPICS.events("s1", "k2"), k2.alert("absent", "S1"), False),
                    (TOPICS.events("s1", "k2"), k2.alert("absent", "S2"), False),
                    (TOPICS.events("s1", "k1"), k1.alert("absent", "S2"), False),
                    (TOPICS.events("s2", "k3"), k3.alert("absent", "S1"), False)])  # another school's S1
    send(ingest, TOPICS.events("s1", "k1"), k1.alert("late_pickup", "S1"))  # another kind: its own alert
    send(ingest, TOPICS.events("s1", "k2"), k2.alert("absent", "S1", session="sess-2"))  # another session
    send(ingest, TOPICS.events("s1", "k1"), k1.alert("roster_stale", ""))  # the gate's own: not a child's
    assert child_alerts(engine) == [
        ("absent", "S1", "sess-1", "k1", 2),
        ("absent", "S2", "sess-1", "k2", 2),
        ("absent", "S1", "sess-1", "k3", 1),
        ("late_pickup", "S1", "sess-1", "k1", 1),
        ("absent", "S1", "sess-2", "k2", 1),
    ]
    assert [(a.kind, a.student, a.session, a.kiosk) for a in raised] == [
        ("absent", "S1", "sess-1", "k1"), ("absent", "S2", "sess-1", "k2"), ("absent", "S1", "sess-1", "k3"),
        ("late_pickup", "S1", "sess-1", "k1"), ("absent", "S1", "sess-2", "k2"),
    ]
    with Session(engine) as session:  # and every gate's event is kept: a chain is never cut
        assert len(session.exec(select(Event).where(Event.kind == "alert")).all()) == 8


def test_the_school_reads_the_days_child_alerts_and_each_read_is_logged(world):
    """The API's world: s1, its gate-1, student A1 (tests/central/conftest.py)."""
    ingest = Ingest(world.engine, topics=TOPICS, publish=lambda topic, payload: None)
    gate = Gate("gate-1", secret=KIOSK_SECRET)
    send(ingest, TOPICS.events("s1", "gate-1"), gate.alert("absent", "A1", at=NOW))
    send(ingest, TOPICS.events("s1", "gate-1"), gate.alert("absent", "A1", session="sess-2", at=NOW + timedelta(days=1)))  # a session is one day
    answer = world.client.get("/api/v1/schools/s1/alerts?day=2030-09-02", headers=world.as_("guard1"))
    assert answer.status_code == 200, answer.text
    assert [(a["kind"], a["student"], a["kiosk"], a["raised"]) for a in answer.json()] == [("absent", "A1", "gate-1", 1)]
    assert answer.json()[0]["name"] is not None
    with Session(world.engine) as session:
        reads = session.exec(select(ChildRead).where(ChildRead.what == "alerts")).all()
    assert [r.actor for r in reads] == ["user:guard1"]
    assert world.client.get("/api/v1/schools/s1/alerts?day=2030-09-04", headers=world.as_("guard1")).json() == []
