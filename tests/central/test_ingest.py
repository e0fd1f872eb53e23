"""Ingest without a broker: messages straight into Ingest.process, acks captured."""

from __future__ import annotations

import contextlib
import logging
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from central.core import clock
from central.core.db import make_engine, migrate
from central.core.events import DomainEvents, IncidentStored
from central.kiosks import ingest as ingest_module
from central.kiosks import roster, services
from central.kiosks.ingest import Ingest
from central.pickup.models import PickupCode
from central.schools import registry
from central.schools.models import SchoolClass, Student
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


def acks_into(acks: list[dict]):
    """A publish callback that keeps the acks (the school feeds have tests of their own, test_feed.py)."""
    return lambda topic, payload: acks.append(json.loads(payload)) if topic.endswith("/ack") else None


@pytest.fixture
def world(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        registry.ensure_school(session, code="s1")
        services.register_kiosk(session, school=registry.get_school(session, "s1"), kiosk="k1", secret=SECRET)
    acks: list[dict] = []
    ingest = Ingest(engine, topics=TOPICS, publish=acks_into(acks))
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
    shared = Ingest(engine, topics=TOPICS, publish=acks_into(acks), shared=True)
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


@contextlib.contextmanager
def database_gone(ingest, monkeypatch):
    """While inside: the ingest's write of a kiosk's state fails as a database that went away does."""

    def broken(conn, states, **_):
        raise sa.exc.OperationalError("UPDATE kiosk", {}, Exception("the database went away"))

    with monkeypatch.context() as patch:
        patch.setattr(ingest, "_write_kiosks", broken)
        yield


def test_each_stored_incident_is_published_once_as_a_domain_event_after_the_commit(world, monkeypatch):
    engine, _, _ = world
    seen = []
    dispatcher = DomainEvents()
    dispatcher.subscribe(IncidentStored, seen.append)
    ingest = Ingest(engine, topics=TOPICS, publish=lambda topic, payload: None, events=dispatcher)
    forged = Kiosk(secret="00" * 32).event()
    with database_gone(ingest, monkeypatch), pytest.raises(sa.exc.OperationalError):
        send(ingest, protocol.canonical_json(forged))
    assert seen == []  # the batch was not committed: nobody is told
    send(ingest, protocol.canonical_json(forged))
    send(ingest, protocol.canonical_json(forged))  # the same bad event again: one incident, one event
    with engine.connect() as conn:
        school_id = conn.execute(sa.text("SELECT id FROM school WHERE code = 's1'")).scalar()
    assert [(e.kind, e.school_id, e.kiosk, e.seq) for e in seen] == [("bad_signature", school_id, "k1", 1)]
    assert incidents(engine) == ["bad_signature"]


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


def test_a_skew_is_reported_once_when_centrals_estimate_of_the_boot_only_gets_better(world):
    """Offline events arrive first and put the kiosk's boot 50 s too late (they waited to be sent);
    a live status then tightens the estimate, which moves the computed skew by 50 s — but the kiosk's
    clock did not move, so there is no second incident. A real jump of its clock later is reported."""
    engine, _, _ = world
    now = datetime(2030, 9, 2, 8, 0, tzinfo=UTC)
    arrival = [now]
    ingest = Ingest(engine, topics=TOPICS, publish=lambda topic, payload: None, clock=lambda: arrival[0])
    k = Kiosk()
    booted_by_its_clock = now + timedelta(days=3) - timedelta(seconds=100)  # its wall clock is 3 days fast
    # Recorded at mono 50 s, sent at central's `now`: the first estimate of the boot is now - 50 s.
    send(ingest, protocol.canonical_json(k.event(at=booted_by_its_clock + timedelta(seconds=50), mono=50_000)))
    status = protocol.Status(v=1, online=True, queue=0, last_seq=1, roster_version=0, at=now.isoformat(), boot=1, mono=100_000)
    ingest.process([(TOPICS.status("s1", "k1"), protocol.status_payload(status, bytes.fromhex(SECRET)), False)])
    # The status was live: really booted at now - 100 s. The next event keeps the same clock.
    send(ingest, protocol.canonical_json(k.event(at=booted_by_its_clock + timedelta(seconds=100), mono=100_000)))
    assert incidents(engine) == ["clock_skew"]
    # Someone sets the kiosk's clock a further hour ahead: that is news.
    send(ingest, protocol.canonical_json(k.event(at=booted_by_its_clock + timedelta(hours=1, seconds=101), mono=101_000)))
    assert incidents(engine) == ["clock_skew", "clock_skew"]


def test_a_fast_kiosk_clock_is_reported_and_its_times_corrected(world, tmp_path):
    engine, ingest, _ = world
    k = Kiosk()
    now = datetime.now(UTC)
    status = protocol.Status(v=1, online=True, queue=0, last_seq=0, roster_version=0, at=now.isoformat(), boot=1, mono=60_000)
    # The status arrives live: central learns this boot's monotonic clock started a minute ago.
    ingest.process([(TOPICS.status("s1", "k1"), protocol.status_payload(status, bytes.fromhex(SECRET)), False)])
    ahead = k.event(at=now + timedelta(hours=1), mono=50_000)  # recorded 10 s ago, wall clock +1 h
    right = k.event(at=now, mono=60_000)
    send(ingest, protocol.canonical_json(ahead), protocol.canonical_json(right))
    assert incidents(engine) == ["clock_skew"]
    with Session(engine) as session:
        events = services.list_events(session, school=registry.get_school(session, "s1"))
    corrected = [datetime.fromisoformat(e["at_corrected"]) for e in events]
    assert abs((corrected[0] - (now - timedelta(seconds=10))).total_seconds()) < 2
    assert abs((corrected[1] - now).total_seconds()) < 2


def test_a_status_that_waited_behind_a_backlog_is_dated_by_its_arrival(world):
    engine, ingest, _ = world
    now = datetime.now(UTC)
    status = protocol.Status(v=1, online=True, queue=0, last_seq=0, roster_version=0, at=now.isoformat(), boot=1, mono=60_000)
    arrived = int((now - timedelta(seconds=8)).timestamp() * 1000)  # queued 8 s while central ingested a backlog
    ingest.submit(TOPICS.status("s1", "k1"), protocol.status_payload(status, bytes.fromhex(SECRET)))
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
    # The database itself failing is no message's fault: the batch is not taken apart, the kiosks resend.
    with database_gone(ingest, monkeypatch), pytest.raises(sa.exc.OperationalError):
        send(ingest, protocol.canonical_json(forged))
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
        found = registry.ensure_school(session, code=school)
        room = SchoolClass(school_id=found.id, grade="三年级", name="1班")
        session.add(room)
        session.flush()
        child = Student(school_id=found.id, class_id=room.id, student_no=f"N{room.id}", name="学生")
        session.add(child)
        session.flush()
        code = PickupCode(
            school_id=found.id, student_id=child.id, day=clock.local_today(found), person="张阿姨", code_hash="0" * 64,
            kiosk_digests={"k1": "1" * 64}, issued_by="test", issued_at=datetime.now(UTC),
        )
        session.add(code)
        session.commit()
        return code.id


def test_a_pickup_noted_with_a_code_uses_it_up_and_a_bad_note_sinks_nothing(world, caplog):
    engine, _, _ = world
    code, elsewhere = _live_code(engine, "s1"), _live_code(engine, "s2")
    with Session(engine) as session:
        assert roster.refresh(session, registry.get_school(session, "s1")).version == 1
    out = _Out()
    ingest = Ingest(engine, topics=TOPICS, publish=out)
    k, at = Kiosk(), datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    notes = [f"code:{code}", f"code:{code}", "code:x1", "code:999", f"code:{elsewhere}", f"code:{2**40}", "code:", None]
    send(ingest, protocol.batch_payload([k.event(kind="pickup", student="N1", note=note, at=at) for note in notes]))
    assert [s for s, _ in stored(engine)] == list(range(1, len(notes) + 1)) and incidents(engine) == []
    assert sum("pickup code" in r.message for r in caplog.records if r.levelname == "WARNING") == 6  # all but the first
    assert json.loads(next(p for t, p in out.sent if t == TOPICS.ack("s1", "k1")))["upto"] == len(notes)
    with Session(engine) as session:
        used, other = session.get(PickupCode, code), session.get(PickupCode, elsewhere)
        assert (used.used_by, used.used_at.replace(tzinfo=UTC)) == ("kiosk:k1", at) and other.used_at is None
    (delta,) = [protocol.RosterDelta.model_validate(json.loads(p)) for t, p in out.sent if t == TOPICS.roster_delta("s1")]
    assert (delta.to, delta.removed_codes) == (2, [str(code)])


def test_one_code_used_at_two_gates_offline_is_a_safety_incident(world):
    engine, _, _ = world
    code = _live_code(engine, "s1")
    with Session(engine) as session:
        services.register_kiosk(session, school=registry.get_school(session, "s1"), kiosk="k2", secret="8e" * 32)
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
        assert session.get(PickupCode, code).used_at is None
    restarted = Ingest(engine, topics=TOPICS, publish=_Out())
    assert restarted.reconcile_codes() == 1
    with Session(engine) as session:
        assert session.get(PickupCode, code).used_by == "kiosk:k1"
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
        assert session.get(PickupCode, code).used_by == "kiosk:k1"


def test_a_code_revoked_before_its_offline_use_reached_central_is_a_safety_incident(world):
    engine, _, _ = world
    code = _live_code(engine, "s1")
    with Session(engine) as session:
        row = session.get(PickupCode, code)
        row.revoked_at = datetime.now(UTC) - timedelta(minutes=5)
        session.add(row)
        session.commit()
    ingest = Ingest(engine, topics=TOPICS, publish=_Out())
    send(ingest, protocol.canonical_json(Kiosk().event(kind="pickup", student="N1", note=f"code:{code}")))
    assert incidents(engine) == ["pickup_code_revoked"]
    with Session(engine) as session:
        assert session.get(PickupCode, code).used_by == "kiosk:k1"


# --- issue 11: poison messages, refused events, clock samples, far times, bounded incidents -------


def forged(k: Kiosk, **fields) -> dict:
    """The kiosk's next event, signed with its secret and chained, with fields no valid event has
    (what someone holding a kiosk's secret, or a kiosk's bug, could publish)."""
    k.seq += 1
    body = {"v": 1, "id": protocol.uuid7(), "school": "s1", "kiosk": "k1", "seq": k.seq, "prev": k.prev,
            "at": datetime.now(UTC).isoformat(), "kind": "unknown_card", **fields}
    body["sig"] = protocol.sign(body, k.secret)
    k.prev = protocol.event_hash(body)
    return body


def acks_of(acks: list[dict]) -> list[tuple]:
    return [(a["upto"], a.get("refused", [])) for a in acks]


def test_poison_messages_in_a_batch_sink_nothing_else(world):
    engine, ingest, acks = world
    k = Kiosk()
    first, second = k.event(), k.event()
    send(
        ingest,
        protocol.canonical_json(first),
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError in json.loads before
        b"\x00",
        b'{"v":1,"batch":[' + b"[" * 50 + b"]" * 50 + b"]}",
        protocol.canonical_json(second),
    )
    assert [s for s, _ in stored(engine)] == [1, 2]
    assert incidents(engine) == ["malformed_payload"]  # three of one kind from one kiosk in one batch: reported once
    assert acks_of(acks) == [(2, [])]


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({"note": "a\x00b"}, "note: text contains a NUL"),
        ({"at": "9999-12-31T23:59:59-05:00"}, "outside 2000-2099"),  # OverflowError before: chain stuck
        ({"at": "0001-01-01T00:00:00+01:00"}, "outside 2000-2099"),
        ({"boot": 1, "mono": 2**62}, "mono"),
        ({"kind": "teleport"}, "kind"),
    ],
)
def test_a_kiosks_own_bad_event_is_refused_the_kiosk_told_and_its_next_events_stored(world, bad, needle):
    engine, ingest, acks = world
    k = Kiosk()
    good = k.event()
    poison = forged(k, **bad)
    after = k.event()
    send(ingest, protocol.canonical_json(good))
    send(ingest, protocol.canonical_json(poison))
    send(ingest, protocol.canonical_json(after))
    assert [s for s, _ in stored(engine)] == [1, 3]
    assert incidents(engine) == ["refused_event"]
    assert acks_of(acks) == [(1, []), (2, [2]), (3, [])]
    with engine.connect() as conn:
        detail, seq, payload = conn.execute(sa.text("SELECT detail, seq, payload FROM safety_incident")).one()
    assert seq == 2 and needle in detail and "\x00" not in payload
    send(ingest, protocol.canonical_json(poison))  # the kiosk resends it before the ack reached it
    assert acks_of(acks)[-1] == (3, []) and incidents(engine) == ["refused_event"]


def test_a_bad_event_inside_a_batch_is_refused_and_the_rest_of_the_batch_stored(world):
    engine, ingest, acks = world
    k = Kiosk()
    events = [k.event(), forged(k, note="\x00"), k.event(), forged(k, at="9999-01-01T00:00:00+00:00"), k.event()]
    send(ingest, protocol.batch_payload(events))
    assert [s for s, _ in stored(engine)] == [1, 3, 5]
    assert acks_of(acks) == [(5, [2, 4])]
    assert incidents(engine) == ["refused_event", "refused_event"]


def test_a_malformed_event_that_is_not_the_kiosks_own_does_not_move_its_chain(world):
    engine, ingest, acks = world
    k = Kiosk()
    k.event()  # seq 1 is made, never sent: the forgery below claims its place
    stranger = Kiosk(secret="00" * 32)
    send(ingest, protocol.canonical_json(forged(stranger, note="\x00")))
    assert incidents(engine) == ["malformed_payload"] and acks_of(acks) == [(0, [])]


def test_a_message_that_fails_to_store_is_isolated_and_refused(world, monkeypatch):
    """Whatever fails (here the event table's row for one event), only that event is refused."""
    engine, ingest, acks = world
    with Session(engine) as session:
        services.register_kiosk(session, school=registry.get_school(session, "s1"), kiosk="k2", secret="8e" * 32)
    real_row = ingest_module.event_row

    def row(event, *args, **kwargs):
        if event.card == "DEADBEEF":
            raise ValueError("this row breaks the database")
        return real_row(event, *args, **kwargs)

    monkeypatch.setattr(ingest_module, "event_row", row)
    k = Kiosk()
    other = protocol.new_event(school="s1", kiosk="k2", seq=1, prev="", at=datetime.now(UTC), kind="checkin",
                               secret=bytes.fromhex("8e" * 32))
    batch = protocol.batch_payload([k.event(), k.event(card="DEADBEEF"), k.event()])
    ingest.process([(TOPIC, batch, False), (TOPICS.events("s1", "k2"), protocol.canonical_json(other), False)])
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text("SELECT kiosk_id, seq FROM event ORDER BY kiosk_id, seq"))]
    assert rows == [(1, 1), (1, 3), (2, 1)]
    assert incidents(engine) == ["refused_event"]
    # k1's batch alone, then each of its events alone (the second refused), then k2's message
    assert acks_of(acks) == [(1, []), (2, [2]), (3, []), (1, [])]
    with engine.connect() as conn:
        detail = conn.execute(sa.text("SELECT detail FROM safety_incident")).scalar()
    assert "ValueError: this row breaks the database" in detail


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    junk=st.one_of(
        st.binary(max_size=300),
        st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),
        st.text(max_size=50).map(lambda t: json.dumps({**TEMPLATE, "note": "\x00" + t}).encode()),
        payloads,
    ),
)
def test_any_bytes_on_an_events_topic_leave_the_next_good_event_stored(world, junk):
    engine, ingest, _ = world
    before = len(stored(engine))
    k = Kiosk()
    k.seq, k.prev = before, (stored(engine)[-1][1] if before else "")
    send(ingest, junk, protocol.canonical_json(k.event()))  # one batch: the junk must not roll the event back
    assert len(stored(engine)) == before + 1


@contextlib.contextmanager
def postgres_world():
    """A fresh PostgreSQL database with school s1 and its kiosk k1: the engine."""
    from sgtest import fresh_postgres_database

    with fresh_postgres_database() as url:
        engine = make_engine(url)
        try:
            migrate(engine)
            with Session(engine) as session:
                registry.ensure_school(session, code="s1")
                services.register_kiosk(session, school=registry.get_school(session, "s1"), kiosk="k1", secret=SECRET)
            yield engine
        finally:
            engine.dispose()


def test_a_poison_batch_on_postgresql_sinks_nothing_else():
    with postgres_world() as engine:
        acks: list[dict] = []
        ingest = Ingest(engine, topics=TOPICS, publish=acks_into(acks))
        k = Kiosk()
        good, poison, after = k.event(), forged(k, note="a\x00b"), k.event()
        send(ingest, protocol.canonical_json(good), b"\x00", protocol.canonical_json(poison), protocol.canonical_json(after))
        assert [s for s, _ in stored(engine)] == [1, 3]
        assert incidents(engine) == ["malformed_payload", "refused_event"]
        assert acks_of(acks) == [(3, [2])]


def test_a_lock_timeout_while_storing_on_postgresql_is_the_database_busy_not_a_bad_event():
    """PostgreSQL's events go in with COPY, past SQLAlchemy's own statements: the database refusing it for
    a reason of its own (here another transaction's lock, past the lock timeout) is still the database's
    fault, retried when the kiosk resends, never the events' (refused, acked as such)."""
    with postgres_world() as engine:
        acks: list[dict] = []
        ingest = Ingest(engine, topics=TOPICS, publish=acks_into(acks))
        k = Kiosk()
        payloads = [protocol.canonical_json(k.event()), protocol.canonical_json(k.event())]
        with engine.connect() as other:

            def hold(conn, cursor, statement, params, context, executemany) -> None:
                # The feed's heads are the statement before the events' COPY: another transaction
                # takes a lock no insert may pass, and the ingest waits for it 50 ms at most.
                if statement.startswith("UPDATE school SET feed_head"):
                    other.execute(sa.text("LOCK TABLE event IN SHARE MODE"))
                    conn.connection.dbapi_connection.execute("SET LOCAL lock_timeout = '50ms'")

            sa.event.listen(engine, "after_cursor_execute", hold)
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                send(ingest, *payloads)
            sa.event.remove(engine, "after_cursor_execute", hold)
            other.rollback()
        assert stored(engine) == [] and incidents(engine) == [] and acks == []
        send(ingest, *payloads)  # the kiosk resends what was not acked
        assert [s for s, _ in stored(engine)] == [1, 2] and incidents(engine) == [] and acks_of(acks) == [(2, [])]


def _status(mono: int, **extra) -> protocol.Status:
    return protocol.Status(v=1, online=True, queue=0, last_seq=0, roster_version=0, at=datetime.now(UTC).isoformat(),
                           boot=1, mono=mono, **extra)


def base_ms(engine) -> int | None:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT base_ms FROM kiosk_clock")).scalar()


def test_an_unsigned_or_forged_status_does_not_move_the_clock(world):
    engine, ingest, _ = world
    arrived = 1_796_000_000_000
    topic = TOPICS.status("s1", "k1")
    five_hours = 5 * 3_600_000 + 60_000
    ingest.process([(topic, protocol.dump(_status(five_hours)), False, arrived)])
    ingest.process([(topic, protocol.status_payload(_status(five_hours), bytes.fromhex("00" * 32)), False, arrived)])
    assert base_ms(engine) is None
    ingest.process([(topic, protocol.status_payload(_status(60_000), bytes.fromhex(SECRET)), False, arrived)])
    assert base_ms(engine) == arrived - 60_000
    ingest.process([(topic, protocol.dump(_status(five_hours)), False, arrived)])
    assert base_ms(engine) == arrived - 60_000


def test_a_bad_clock_sample_already_stored_never_breaks_a_read(world):
    """A base from before the fix (an unsigned status with a huge mono) is in the table: the
    events list still answers, with the kiosk's own time for that boot."""
    engine, ingest, _ = world
    k = Kiosk()
    at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    send(ingest, protocol.canonical_json(k.event(at=at, mono=1_000)))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE kiosk_clock SET base_ms = :b"), {"b": -(2**62)})
    with Session(engine) as session:
        (event,) = services.list_events(session, school=registry.get_school(session, "s1"))
    assert event["at_corrected"] == "2026-11-30T08:00:00.000+00:00"


@pytest.mark.parametrize(
    "shift, expected",
    [
        (timedelta(days=1), ["time_out_of_range"]),
        (timedelta(minutes=1), ["time_out_of_range"]),
        (timedelta(days=-40), ["time_out_of_range"]),
        (timedelta(days=-2), []),  # days offline is what kiosks are built for
        (timedelta(seconds=2), []),  # within the skew limit
    ],
)
def test_an_event_without_a_clock_pair_far_from_its_arrival_is_an_incident_and_still_stored(world, shift, expected):
    engine, ingest, _ = world
    k = Kiosk()
    event = protocol.new_event(school="s1", kiosk="k1", seq=1, prev="", at=datetime.now(UTC) + shift, kind="checkin",
                               secret=k.secret)
    send(ingest, protocol.canonical_json(event))
    assert [s for s, _ in stored(engine)] == [1]
    assert incidents(engine) == expected


def incident_rows(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT kind, kiosk, count FROM safety_incident ORDER BY id"))]


def test_invented_kiosk_names_are_capped_and_counted(world):
    engine, ingest, _ = world
    ingest.process([(TOPICS.events("s1", f"ghost-{i}"), b'{"v":1}', False) for i in range(100)])
    rows = incident_rows(engine)
    assert [kiosk for _, kiosk, _ in rows[:20]] == [f"ghost-{i}" for i in range(20)]
    assert rows[20:] == [("unknown_kiosk", "*", 1)] * 10 + [("unknown_kiosk", "*", 70)]
    ingest.process([(TOPICS.events("s1", f"ghost-{i}"), b'{"v":1}', False) for i in range(100, 150)])
    assert len(incident_rows(engine)) == 31 and sum(c for _, _, c in incident_rows(engine)) == 150


def test_forged_seqs_are_counted_on_one_row_past_the_first_ten(world):
    engine, ingest, _ = world
    forger = Kiosk(secret="00" * 32)
    for _ in range(3):
        send(ingest, protocol.batch_payload([forger.event() for _ in range(40)]))
    rows = incident_rows(engine)
    assert rows == [("bad_signature", "k1", 1)] * 10 + [("bad_signature", "k1", 110)]


def test_an_incident_is_bounded_in_size_whatever_the_payload(world):
    engine, ingest, _ = world
    huge = dict(Kiosk().event(), seq="9" * 200_000, note="\x00" * 100)
    send(ingest, protocol.canonical_json(huge))
    with engine.connect() as conn:
        detail, payload = conn.execute(sa.text("SELECT detail, payload FROM safety_incident")).one()
    assert incidents(engine) == ["malformed_payload"]
    assert detail.startswith("bad event seq='99999") and len(detail) == 1000 and len(payload) == 4000


def test_a_worker_with_a_stale_view_never_moves_acked_seq_back_nor_stores_a_seq_twice(world):
    """Two workers, one kiosk (a misconfigured partition, a rebalance): the one that read the kiosk
    before the other stored its events finds acked_seq moved, rolls back, reads again, and acks."""
    engine, first, _ = world
    acks: list[dict] = []
    second = Ingest(engine, topics=TOPICS, publish=acks_into(acks))
    k = Kiosk()
    events = [k.event() for _ in range(5)]
    send(second, protocol.canonical_json(events[0]))  # the second worker read the kiosk at seq 1
    send(first, *(protocol.canonical_json(e) for e in events[1:]))  # the first stores 2-5
    send(second, *(protocol.canonical_json(e) for e in events[1:3]))  # a duplicate delivery of 2-3
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT acked_seq FROM kiosk")).scalar() == 5
    assert [seq for seq, _ in stored(engine)] == [1, 2, 3, 4, 5]
    assert acks[-1]["upto"] == 5 and "resend_from" not in acks[-1]
    assert incidents(engine) == []


def test_a_stale_worker_refusing_an_event_again_does_not_move_acked_seq_back(world):
    """A refused event writes no row, so no unique constraint stops a stale worker: before the
    compare-and-set it wrote acked_seq 2 over 4, and the kiosk's chain went back."""
    engine, first, _ = world
    acks: list[dict] = []
    second = Ingest(engine, topics=TOPICS, publish=acks_into(acks))
    k = Kiosk()
    one, poison, three, four = k.event(), forged(k, kind="teleport"), k.event(), k.event()
    send(second, protocol.canonical_json(one))  # the second worker read the kiosk at seq 1
    send(first, *(protocol.canonical_json(e) for e in (poison, three, four)))  # 2 refused, 3-4 stored
    send(second, protocol.canonical_json(poison))  # the kiosk resends 2 and it reaches the stale worker
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT acked_seq FROM kiosk")).scalar() == 4
    assert [seq for seq, _ in stored(engine)] == [1, 3, 4]
    assert acks[-1]["upto"] == 4 and "refused" not in acks[-1]
    assert incidents(engine) == ["refused_event"]


def test_only_the_kiosks_own_status_tells_central_it_lost_acknowledged_events(world):
    """A central restored from an older backup holds seqs 1-3 of a kiosk that it acknowledged up to
    7 (gone from the kiosk). The kiosk's signed status says so: the loss is one incident, and the
    chain goes on after 7. An unsigned or forged status, or a worker with a stale view, moves nothing."""
    engine, ingest, acks = world
    topic = TOPICS.status("s1", "k1")
    k = Kiosk()
    events = [k.event() for _ in range(9)]
    send(ingest, *(protocol.canonical_json(e) for e in events[:3]))
    stale = Ingest(engine, topics=TOPICS, publish=lambda topic, payload: None)
    send(stale, protocol.canonical_json(events[0]))  # this worker read the kiosk at seq 3
    forged = _status(60_000, acked_seq=7)
    ingest.process([(topic, protocol.dump(forged), False)])
    ingest.process([(topic, protocol.status_payload(forged, bytes.fromhex("00" * 32)), False)])
    assert incidents(engine) == []
    def acked() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT acked_seq FROM kiosk")).scalar()

    assert acked() == 3
    # seq 4 reaches the live worker first; the stale one then hears a status of 4 acked.
    send(ingest, protocol.canonical_json(events[3]))
    stale.process([(topic, protocol.status_payload(_status(60_000, acked_seq=4), bytes.fromhex(SECRET)), False)])
    assert incidents(engine) == [] and acked() == 4
    # The genuine case: acknowledged up to 7, held up to 4.
    ingest.process([(topic, protocol.status_payload(_status(60_000, acked_seq=7), bytes.fromhex(SECRET)), False)])
    assert incidents(engine) == ["events_lost"] and acked() == 7
    with engine.connect() as conn:
        detail, seq = conn.execute(sa.text("SELECT detail, seq FROM safety_incident")).one()
    assert seq == 7 and "seqs 5-7" in detail
    assert (acks[-1]["upto"], acks[-1]["resend_from"]) == (7, 8)
    # seq 8 chains onto 7, which central never saw: taken. seq 9 is checked against 8 again.
    send(ingest, protocol.canonical_json(events[7]))
    broken = dict(events[8], prev="ab" * 32)
    broken["sig"] = protocol.sign(broken, bytes.fromhex(SECRET))
    send(ingest, protocol.canonical_json(broken))
    assert [seq for seq, _ in stored(engine)] == [1, 2, 3, 4, 8]
    assert incidents(engine) == ["events_lost", "broken_chain"]
    send(ingest, protocol.canonical_json(events[8]))
    assert [seq for seq, _ in stored(engine)] == [1, 2, 3, 4, 8, 9]


def test_a_batch_is_one_log_line_naming_each_gates_seqs_and_each_event_is_a_debug_line(world, caplog):
    engine, ingest, _acks = world
    kiosk = Kiosk()
    events = [kiosk.event(kind="checkin", card="04A1B2C3") for _ in range(4)]
    with caplog.at_level(logging.INFO, logger="central.kiosks.ingest"):
        send(ingest, protocol.batch_payload(events[:3]), protocol.canonical_json(events[3]))
    stored_lines = [r for r in caplog.records if r.getMessage().startswith("stored")]
    assert [r.getMessage() for r in stored_lines] == ["stored 4 events: k1 seq 1-4"]
    assert (stored_lines[0].events, stored_lines[0].stored) == (4, {"k1": "1-4"})
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="central.kiosks.ingest"):
        send(ingest, protocol.canonical_json(kiosk.event(kind="checkin", card="04A1B2C3")),
             protocol.canonical_json(kiosk.event(kind="unknown_card", card="04D4E5F6")))
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("stored")] == [
        "stored 2 events: k1 seq 5-6",
        "stored event k1 seq 5 checkin card 04A1B2C3 student None",
        "stored event k1 seq 6 unknown_card card 04D4E5F6 student None",
    ]


def test_seqs_are_written_as_runs():
    assert ingest_module._ranges([1]) == "1"
    assert ingest_module._ranges([3, 4, 5, 9, 11, 12]) == "3-5 9 11-12"
