"""Ingest without a broker: messages straight into Ingest.process, acks captured."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from central import pickup, roster, services
from central.core.db import make_engine, migrate
from central.ingest import Ingest
from central.models import SchoolClass, Student
from gateway import protocol

SECRET = "7e" * 32
TOPICS = protocol.Topics("sg/v1")
TOPIC = TOPICS.events("s1", "k1")


class Kiosk:
    """Makes a kiosk's signed, chained events with a settable wall clock and monotonic clock."""

    def __init__(self, secret: str = SECRET, boot: int = 1) -> None:
        self.secret = bytes.fromhex(secret)
        self.seq, self.prev, self.boot = 0, "", boot

    def event(self, *, at: datetime | None = None, mono: int | None = None, **fields) -> dict:
        self.seq += 1
        event = protocol.new_event(
            school="s1", kiosk="k1", seq=self.seq, prev=self.prev, at=at or datetime.now(UTC),
            kind=fields.pop("kind", "unknown_card"), secret=self.secret, boot=self.boot, mono=mono, **fields,
        )
        self.prev = protocol.event_hash(event)
        return event


@pytest.fixture
def world(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        services.ensure_school(session, code="s1")
        services.register_kiosk(session, school="s1", kiosk="k1", secret=SECRET)
    acks: list[dict] = []
    ingest = Ingest(engine, topics=TOPICS, publish=lambda topic, payload: acks.append(json.loads(payload)))
    yield engine, ingest, acks
    engine.dispose()


def stored(engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT seq, hash FROM event ORDER BY seq"))]


def incidents(engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT kind FROM safety_incident ORDER BY id"))]


def send(ingest, *payloads: bytes, topic: str = TOPIC) -> None:
    """As the bus hands messages over: submitted (stamped on arrival), then processed as one batch."""
    for payload in payloads:
        ingest.submit(topic, payload)
    ingest.process([ingest.queue.get_nowait() for _ in payloads])


def test_shared_mode_stores_what_the_bus_submits(world):
    engine, _, _ = world
    acks: list[dict] = []
    shared = Ingest(engine, topics=TOPICS, publish=lambda topic, payload: acks.append(json.loads(payload)), shared=True)
    k = Kiosk()
    send(shared, protocol.canonical_json(k.event()), protocol.canonical_json(k.event()))
    assert [seq for seq, _ in stored(engine)] == [1, 2] and acks[-1]["upto"] == 2


def test_a_replayed_seq_with_other_content_is_a_conflict(world):
    engine, ingest, acks = world
    k = Kiosk()
    first = k.event(card="01020304")
    send(ingest, protocol.canonical_json(first))
    other = Kiosk()
    again = other.event(card="0A0B0C0D")  # seq 1, signed with the same secret, different content
    send(ingest, protocol.canonical_json(first), protocol.canonical_json(again))
    assert [s for s, _ in stored(engine)] == [1]
    assert incidents(engine) == ["conflicting_event"]
    assert acks[-1]["upto"] == 1


def test_a_seq_far_in_the_future_is_an_incident_not_a_gap(world):
    engine, ingest, acks = world
    k = Kiosk()
    k.seq = 5_000_000
    send(ingest, protocol.canonical_json(k.event()))
    assert incidents(engine) == ["seq_out_of_range"]
    assert "resend_from" not in acks[-1]


def test_an_oversize_payload_is_an_incident_with_its_start_kept(world):
    engine, ingest, _ = world
    send(ingest, b'{"v":1,"batch":[' + b" " * (protocol.MAX_PAYLOAD + 10) + b"]}")
    assert incidents(engine) == ["oversize_payload"]
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT payload FROM safety_incident")).scalar()
    assert kept.startswith('{"v":1,"batch":[') and len(kept) <= 4000


def test_a_fast_kiosk_clock_is_reported_and_its_times_corrected(world, tmp_path):
    engine, ingest, _ = world
    k = Kiosk()
    now = datetime.now(UTC)
    status = protocol.Status(v=1, online=True, queue=0, last_seq=0, roster_version=0, at=now.isoformat(), boot=1, mono=60_000)
    # The status arrives live: central learns this boot's monotonic clock started a minute ago.
    ingest.process([(TOPICS.status("s1", "k1"), protocol.dump(status), False)])
    ahead = k.event(at=now + timedelta(hours=1), mono=50_000)  # recorded 10 s ago, wall clock +1 h
    right = k.event(at=now, mono=60_000)
    send(ingest, protocol.canonical_json(ahead), protocol.canonical_json(right))
    assert incidents(engine) == ["clock_skew"]
    with Session(engine) as session:
        events = services.list_events(session, school="s1")
    corrected = [datetime.fromisoformat(e["at_corrected"]) for e in events]
    assert abs((corrected[0] - (now - timedelta(seconds=10))).total_seconds()) < 2
    assert abs((corrected[1] - now).total_seconds()) < 2


def test_a_status_that_waited_behind_a_backlog_is_dated_by_its_arrival(world):
    engine, ingest, _ = world
    now = datetime.now(UTC)
    status = protocol.Status(v=1, online=True, queue=0, last_seq=0, roster_version=0, at=now.isoformat(), boot=1, mono=60_000)
    arrived = int((now - timedelta(seconds=8)).timestamp() * 1000)  # queued 8 s while central ingested a backlog
    ingest.submit(TOPICS.status("s1", "k1"), protocol.dump(status))
    message = ingest.queue.get_nowait()
    assert abs(message[3] - now.timestamp() * 1000) < 2000  # submit stamps the arrival
    ingest.process([(*message[:3], arrived)])
    with engine.connect() as conn:
        base = conn.execute(sa.text("SELECT base_ms FROM kiosk_clock")).scalar()
    assert base == arrived - 60_000  # the boot started a minute before the status arrived, not before now


def test_a_retained_status_says_nothing_about_the_clock(world):
    engine, ingest, _ = world
    old = protocol.Status(v=1, online=True, queue=0, last_seq=0, roster_version=0, at="2026-01-01T00:00:00+00:00", boot=1, mono=0)
    ingest.process([(TOPICS.status("s1", "k1"), protocol.dump(old), True)])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM kiosk_clock")).scalar() == 0


def test_the_tightest_sample_of_a_message_sets_the_clock_for_its_older_events(world):
    """Events recorded offline arrive together; the newest was sent just now."""
    engine, ingest, _ = world
    k = Kiosk()
    now = datetime.now(UTC)
    old = k.event(at=now - timedelta(days=2), mono=1_000)
    new = k.event(at=now, mono=2 * 86_400_000 + 1_000)
    send(ingest, protocol.batch_payload([old, new]))
    assert incidents(engine) == []  # the kiosk's wall clock was right all along


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
FIELDS = ["v", "id", "school", "kiosk", "seq", "prev", "at", "kind", "card", "sig", "boot", "mono", "batch"]
TEMPLATE = {"v": 1, "school": "s1", "kiosk": "k1", "seq": 1, "prev": "", "at": "2026-11-30T08:00:00+00:00", "kind": "checkin", "sig": "0" * 64}
# Bytes, any JSON, and near-miss events: one field of a plausible event replaced by anything.
payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda k, v: json.dumps({**TEMPLATE, k: v}).encode(), st.sampled_from(FIELDS), json_values),
)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    junk=st.lists(payloads, max_size=5),
    topic=st.sampled_from([TOPIC, TOPICS.status("s1", "k1"), "sg/v1/s1/k1/ack", "sg/v1/../events", "other"]),
)
def test_no_payload_stops_ingest_and_good_events_still_go_in(world, junk, topic):
    engine, ingest, _ = world
    before = len(stored(engine))
    ingest.process([(topic, payload, False) for payload in junk])
    k = Kiosk()
    k.seq, k.prev = before, (stored(engine)[-1][1] if before else "")
    send(ingest, protocol.canonical_json(k.event()))
    assert len(stored(engine)) == before + 1



def test_numbers_too_big_for_the_database_are_incidents_and_sink_nothing_else(world):
    engine, ingest, _ = world
    k = Kiosk()
    good = k.event()
    huge = dict(Kiosk().event(), seq=2**70)
    status = b'{"v":1,"online":true,"queue":0,"last_seq":0,"roster_version":0,"at":"2026-11-30T08:00:00+00:00","boot":99999999999999999999,"mono":1}'
    ingest.process([
        (TOPIC, protocol.canonical_json(huge), False),
        (TOPICS.status("s1", "k1"), status, False),
        (TOPIC, protocol.canonical_json(good), False),
    ])
    assert [s for s, _ in stored(engine)] == [1]
    assert incidents(engine) == ["malformed_payload"]


def test_an_unregistered_kiosk_resending_its_window_is_one_incident_not_thousands(world):
    engine, ingest, _ = world
    topic = TOPICS.events("s1", "new-gate")
    for _ in range(3):  # three resends of a 20-message window
        ingest.process([(topic, b'{"v":1}', False)] * 20)
    assert incidents(engine) == ["unknown_kiosk"]


def test_an_incident_of_a_batch_that_failed_is_reported_when_the_event_comes_again(world, monkeypatch):
    engine, ingest, _ = world
    forged = Kiosk(secret="00" * 32).event()
    real_write = ingest._write_kiosk

    def broken(conn, state):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(ingest, "_write_kiosk", broken)
    with pytest.raises(RuntimeError):
        send(ingest, protocol.canonical_json(forged))
    monkeypatch.setattr(ingest, "_write_kiosk", real_write)
    send(ingest, protocol.canonical_json(forged))
    assert incidents(engine) == ["bad_signature"]


class _Out:
    """The bus's publish: acks and, once a code is used, rosters."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.sent.append((topic, payload))


def _live_code(engine, school: str) -> int:
    """A one-time code of today for a new child of ``school``; ingest never looks at its digests."""
    with Session(engine) as session:
        found = services.ensure_school(session, code=school)
        room = SchoolClass(school_id=found.id, grade="三年级", name="1班")
        session.add(room)
        session.flush()
        child = Student(school_id=found.id, class_id=room.id, student_no=f"N{room.id}", name="学生")
        session.add(child)
        session.flush()
        code = pickup.PickupCode(
            school_id=found.id, student_id=child.id, day=pickup.local_today(found), person="张阿姨", code_hash="0" * 64,
            kiosk_digests={"k1": "1" * 64}, issued_by="test", issued_at=datetime.now(UTC),
        )
        session.add(code)
        session.commit()
        return code.id


def test_a_pickup_noted_with_a_code_uses_it_up_and_a_bad_note_sinks_nothing(world, caplog):
    engine, _, _ = world
    code, elsewhere = _live_code(engine, "s1"), _live_code(engine, "s2")
    with Session(engine) as session:
        assert roster.refresh(session, services.get_school(session, code="s1")).version == 1
    out = _Out()
    ingest = Ingest(engine, topics=TOPICS, publish=out)
    k, at = Kiosk(), datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    notes = [f"code:{code}", f"code:{code}", "code:x1", "code:999", f"code:{elsewhere}", f"code:{2**40}", "code:", None]
    send(ingest, protocol.batch_payload([k.event(kind="pickup", student="N1", note=note, at=at) for note in notes]))
    assert [s for s, _ in stored(engine)] == list(range(1, len(notes) + 1)) and incidents(engine) == []
    assert sum("pickup code" in r.message for r in caplog.records if r.levelname == "WARNING") == 6  # all but the first
    assert json.loads(next(p for t, p in out.sent if t == TOPICS.ack("s1", "k1")))["upto"] == len(notes)
    with Session(engine) as session:
        used, other = session.get(pickup.PickupCode, code), session.get(pickup.PickupCode, elsewhere)
        assert (used.used_by, used.used_at.replace(tzinfo=UTC)) == ("kiosk:k1", at) and other.used_at is None
    (delta,) = [protocol.RosterDelta.model_validate(json.loads(p)) for t, p in out.sent if t == TOPICS.roster_delta("s1")]
    assert (delta.to, delta.removed_codes) == (2, [str(code)])


def test_one_code_used_at_two_gates_offline_is_a_safety_incident(world):
    engine, _, _ = world
    code = _live_code(engine, "s1")
    with Session(engine) as session:
        services.register_kiosk(session, school="s1", kiosk="k2", secret="8e" * 32)
    ingest = Ingest(engine, topics=TOPICS, publish=_Out())
    first, second = Kiosk(), Kiosk(secret="8e" * 32)
    at = datetime.now(UTC).replace(microsecond=0)
    send(ingest, protocol.canonical_json(first.event(kind="pickup", student="N1", note=f"code:{code}", at=at)))
    other = protocol.new_event(school="s1", kiosk="k2", seq=1, prev="", at=at, kind="pickup", secret=second.secret,
                               student="N1", note=f"code:{code}")
    send(ingest, protocol.canonical_json(other), topic=TOPICS.events("s1", "k2"))
    assert incidents(engine) == ["pickup_code_reused"]
    with engine.connect() as conn:
        detail = conn.execute(sa.text("SELECT detail FROM safety_incident")).scalar()
    assert "kiosk:k2" in detail and "kiosk:k1" in detail


def test_a_code_whose_pickup_was_stored_but_not_marked_is_marked_at_the_next_start(world, monkeypatch):
    engine, _, _ = world
    code = _live_code(engine, "s1")
    crashed = Ingest(engine, topics=TOPICS, publish=_Out())
    monkeypatch.setattr(crashed, "_use_codes", lambda uses: None)  # central stopped after the batch's commit
    send(crashed, protocol.canonical_json(Kiosk().event(kind="pickup", student="N1", note=f"code:{code}")))
    with Session(engine) as session:
        assert session.get(pickup.PickupCode, code).used_at is None
    restarted = Ingest(engine, topics=TOPICS, publish=_Out())
    assert restarted.reconcile_codes() == 1
    with Session(engine) as session:
        assert session.get(pickup.PickupCode, code).used_by == "kiosk:k1"
    assert restarted.reconcile_codes() == 0 and incidents(engine) == []


def test_a_code_is_marked_used_even_when_the_ack_cannot_be_published(world):
    engine, _, _ = world
    code = _live_code(engine, "s1")

    def broker_gone(topic, payload, *, retain=False):
        raise RuntimeError("broker went away mid-publish")

    ingest = Ingest(engine, topics=TOPICS, publish=broker_gone)
    with pytest.raises(RuntimeError):
        send(ingest, protocol.canonical_json(Kiosk().event(kind="pickup", student="N1", note=f"code:{code}")))
    with Session(engine) as session:
        assert session.get(pickup.PickupCode, code).used_by == "kiosk:k1"


def test_a_code_revoked_before_its_offline_use_reached_central_is_a_safety_incident(world):
    engine, _, _ = world
    code = _live_code(engine, "s1")
    with Session(engine) as session:
        row = session.get(pickup.PickupCode, code)
        row.revoked_at = datetime.now(UTC) - timedelta(minutes=5)
        session.add(row)
        session.commit()
    ingest = Ingest(engine, topics=TOPICS, publish=_Out())
    send(ingest, protocol.canonical_json(Kiosk().event(kind="pickup", student="N1", note=f"code:{code}")))
    assert incidents(engine) == ["pickup_code_revoked"]
    with Session(engine) as session:
        assert session.get(pickup.PickupCode, code).used_by == "kiosk:k1"
