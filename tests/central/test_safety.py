"""The safety list (central/safety, issue 14): each kind of item from data stored the way central stores
it (signed events through the ingest, its incidents, the gate watch, the gates' health), in the
list's order, under keys that do not move."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from central.core import clock
from central.kiosks import health, services
from central.kiosks.ingest import Ingest
from central.kiosks.models import SafetyIncident
from central.pickup.models import PickupCode
from central.programme import excuses
from central.programme.models import CareSession
from central.safety import items as safety
from central.schools import registry
from central.schools.models import Student
from gateway import protocol

from .conftest import KIOSK_SECRET, PASSWORD, USERS

TOPICS = protocol.Topics("sg/v1")
NOW = datetime(2030, 9, 2, 9, 0, tzinfo=UTC)  # 17:00 in Shanghai, Monday 2030-09-02
DAY = date(2030, 9, 2)
GATE2_SECRET = "8e" * 32


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Gate:
    """A gate of s1 making signed, chained events (its wall clock ``at``; ``boot``/``mono`` when given)."""

    def __init__(self, kiosk: str, secret: str) -> None:
        self.kiosk, self.secret = kiosk, bytes.fromhex(secret)
        self.seq, self.prev = 0, ""

    def event(self, kind: str, minutes: float, **fields) -> bytes:
        self.seq += 1
        event = protocol.new_event(school="s1", kiosk=self.kiosk, seq=self.seq, prev=self.prev,
                                   at=NOW + timedelta(minutes=minutes), kind=kind, secret=self.secret, **fields)
        self.prev = protocol.event_hash(event)
        return protocol.canonical_json(event)

    def forged(self, minutes: float) -> bytes:
        """An event in this gate's name signed with another key: the next seq, never stored."""
        event = protocol.new_event(school="s1", kiosk=self.kiosk, seq=self.seq + 1, prev=self.prev,
                                   at=NOW + timedelta(minutes=minutes), kind="pickup", secret=b"\x01" * 32, student="A1")
        return protocol.canonical_json(event)


class Site:
    """The API's world (tests/central/conftest.py) with a second gate, an ingest on a pinned clock."""

    def __init__(self, world) -> None:
        self.world = world
        with world.session() as session:
            services.register_kiosk(session, school=registry.get_school(session, "s1"), kiosk="gate-2", secret=GATE2_SECRET)
        self.clock = Clock()
        self.ingest = Ingest(world.engine, topics=TOPICS, publish=lambda *a, **k: None, clock=self.clock)
        self.g1, self.g2 = Gate("gate-1", KIOSK_SECRET), Gate("gate-2", GATE2_SECRET)

    def send(self, gate: Gate, payload: bytes) -> None:
        self.ingest.process([(TOPICS.events("s1", gate.kiosk), payload, False)])

    def status(self, gate: Gate, online: bool) -> None:
        body = {"v": 1, "online": online, "queue": 0, "last_seq": gate.seq, "roster_version": 1,
                "at": self.clock.now.isoformat()}
        self.ingest.process([(TOPICS.status("s1", gate.kiosk), protocol.canonical_json(body), False)])

    def code(self, *, revoked: bool = False) -> int:
        with self.world.session() as session:
            row = PickupCode(school_id=self.world.ids["s1"], student_id=self.world.ids["B1"], day=DAY, person="张阿姨",
                             code_hash="0" * 64, kiosk_digests={}, issued_by="test", issued_at=NOW - timedelta(hours=3),
                             revoked_at=NOW - timedelta(hours=1) if revoked else None)
            session.add(row)
            session.commit()
            return row.id

    def items(self, **filters) -> list[safety.Item]:
        with self.world.session() as session:
            school = registry.get_school(session, "s1")
            return safety.all_items(session, school=school, filters=safety.Filters(**filters))


@pytest.fixture
def site(world, monkeypatch) -> Site:
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)  # "today" for the codes' roster, the review steps
    for user in USERS:  # logged in again on the pinned clock: the fixture's tokens were issued at the real time
        answer = world.client.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
        world.tokens[user] = answer.json()["access_token"]
    return Site(world)


def fill(site: Site) -> None:
    """One of every kind, at known minutes before NOW, and things that are no item."""
    g1, g2 = site.g1, site.g2
    site.send(g1, g1.event("checkin", -60, student="A1", session="7"))  # not an item
    site.send(g1, g1.event("pickup_denied", -50, student="A1", guardian="g3", reason="not_linked"))
    site.send(g1, g1.event("pickup_denied", -40, student="A1", guardian="g3", reason="barred"))
    site.send(g1, g1.event("pickup_denied", -30, student="B1", reason="code_wrong"))
    site.send(g1, g1.event("override", -20, student="B1", reason="家长电话确认", note="pickup", operator="S-07"))
    site.send(g1, g1.event("unknown_card", -19, card="DEADBEEF"))
    site.send(g1, g1.event("alert", -18, student="B1", session="7", reason="late_pickup"))
    site.send(g2, g2.event("alert", -17, student="B1", session="7", reason="late_pickup"))  # the same alert: one item
    site.send(g1, g1.event("alert", -16, reason="offline", note="2030-09-02T08:30:00+00:00"))
    site.send(g1, g1.event("alert", -15, student="A1", session="7", reason="absent"))  # no excuse: an item
    site.send(g1, g1.forged(-14))  # bad_signature
    site.clock.now = NOW + timedelta(seconds=1)
    # A wall clock 61 s behind: the event's mono (0 ms since boot, just now) says it is now.
    site.send(g2, g2.event("checkin", -1, student="B1", session="7", boot=1, mono=0))  # clock_skew
    reused, revoked = site.code(), site.code(revoked=True)
    site.clock.now = NOW + timedelta(seconds=2)
    site.send(g1, g1.event("pickup", -5, student="B1", note=f"code:{reused}", reason="code"))
    site.send(g2, g2.event("pickup", -4, student="B1", note=f"code:{reused}", reason="code"))  # code_reused
    site.send(g1, g1.event("pickup", -3, student="B1", note=f"code:{revoked}", reason="code"))  # code_revoked
    site.status(g2, online=True)
    site.status(g2, online=False)  # gate-2 offline now
    with site.world.session() as session:
        session.add(CareSession(school_id=site.world.ids["s1"], group_id=site.world.ids["groupA"], day=DAY, place="101",
                                created_by="test", starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(hours=1)))
        session.commit()
        health.report_silent(session, now=NOW + timedelta(minutes=10), limit=timedelta(minutes=2))  # gate-1 and gate-2


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_each_kind_of_item_comes_from_what_central_stores_in_the_lists_order(site):
    fill(site)
    got = [(i.kind, i.reason, i.kiosk, i.student) for i in site.items()]
    assert got == [
        ("pickup_refused", "barred", "gate-1", "A1"),  # barred first, whatever its time
        ("pickup_refused", "not_linked", "gate-1", "A1"),
        ("pickup_refused", "code_wrong", "gate-1", "B1"),
        ("code_reused", "pickup_code_reused", "gate-2", None),
        ("code_revoked", "pickup_code_revoked", "gate-1", None),
        ("override", "家长电话确认", "gate-1", "B1"),
        ("late_pickup", "late_pickup", "gate-1", "B1"),  # raised by two gates: one item, the first gate's
        ("unexcused_absence", "absent", "gate-1", "A1"),
        ("unknown_card", None, "gate-1", None),
        ("bad_signature", "bad_signature", "gate-1", None),
        ("clock_skew", "clock_skew", "gate-2", None),
        ("gate_silent", "gate_silent", "gate-1", None),  # both silent: the same time, the lower id first
        ("gate_silent", "gate_silent", "gate-2", None),
        ("gate_offline", "offline", "gate-1", None),  # the gate's own word that it lost central
        ("gate_offline", "offline_now", "gate-2", None),  # its health now
    ]
    by_kind = {i.kind: i for i in reversed(site.items())}  # the first of each kind
    assert by_kind["late_pickup"].count == 2 and by_kind["late_pickup"].name == "学生B1"
    assert (by_kind["override"].note, by_kind["override"].operator) == ("pickup", "S-07")
    assert by_kind["unknown_card"].card == "DEADBEEF"
    assert "61.0 s behind" in by_kind["clock_skew"].detail
    assert by_kind["gate_offline"].key.startswith("event:")
    offline_now = site.items(kinds=("gate_offline",))[-1]
    assert offline_now.key == f"gate:gate-2:{int((NOW + timedelta(seconds=2)).timestamp() * 1000)}"
    assert all(i.state == "open" and i.review is None for i in site.items())


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_the_filters_keep_a_day_a_kind_a_gate_and_a_child(site):
    fill(site)
    assert [i.reason for i in site.items(child="A1")] == ["barred", "not_linked", "absent"]
    assert [i.kind for i in site.items(kinds=("override", "unknown_card"))] == ["override", "unknown_card"]
    assert {i.kiosk for i in site.items(gate="gate-2")} == {"gate-2"}
    assert [i.kind for i in site.items(gate="gate-2")] == ["code_reused", "clock_skew", "gate_silent", "gate_offline"]
    assert len(site.items(day=DAY)) == 15 and site.items(day=DAY + timedelta(days=1)) == []
    # 00:30 Shanghai on the 3rd is 16:30Z on the 2nd: the school's day, not UTC's
    site.send(site.g1, site.g1.event("unknown_card", 7 * 60 + 30, card="LATE"))
    assert [i.card for i in site.items(day=DAY + timedelta(days=1))] == ["LATE"]


def test_an_item_is_found_by_its_key_at_its_own_school_only(site, world):
    fill(site)
    with world.session() as session:
        s1, s2 = registry.get_school(session, "s1"), registry.get_school(session, "s2")
        for listed in safety.all_items(session, school=s1):
            found = safety.get_item(session, school=s1, key=listed.key)
            assert (found.kind, found.at, found.kiosk, found.student) == (listed.kind, listed.at, listed.kiosk, listed.student)
            with pytest.raises(safety.Missing):
                safety.get_item(session, school=s2, key=listed.key)
        for key in ("event:nosuch", "incident:99999", "alert:x", "gate:gate-1:0", "nonsense", "incident:" + "9" * 30):
            with pytest.raises(safety.Missing):
                safety.get_item(session, school=s1, key=key)


def test_a_checkin_event_is_no_item(site, world):
    site.send(site.g1, site.g1.event("checkin", -5, student="A1", session="7"))
    with world.session() as session:
        (event_id,) = session.exec(select(safety.Event.id)).all()
        with pytest.raises(safety.Missing):
            safety.get_item(session, school=registry.get_school(session, "s1"), key=f"event:{event_id}")


def test_review_steps_change_the_state_and_a_closed_item_takes_no_more(site, world):
    fill(site)
    key = site.items()[0].key
    with world.session() as session:
        s1 = registry.get_school(session, "s1")
        assert safety.review(session, school=s1, key=key, step="acknowledge", note="已通知班主任", actor="user:admin1").state == "acknowledged"
        assert safety.review(session, school=s1, key=key, step="follow_up", note="约谈家长", actor="user:admin1").state == "follow_up"
        done = safety.review(session, school=s1, key=key, step="close", note="已处理", actor="user:admin1")
        assert done.state == "closed" and [s["step"] for s in done.steps] == ["acknowledge", "follow_up", "close"]
        with pytest.raises(safety.Conflict):
            safety.review(session, school=s1, key=key, step="acknowledge", note="again", actor="user:admin1")
        with pytest.raises(safety.Invalid):
            safety.review(session, school=s1, key=site.items()[1].key, step="delete", note="x", actor="user:admin1")
    assert site.items()[0].state == "closed" and site.items()[0].review["note"] == "已处理"


def test_a_cursor_this_module_did_not_make_is_refused(world):
    with world.session() as session:
        s1 = registry.get_school(session, "s1")
        for bad in ("", "x", "eyJ9", "WzAsIjIwMzAtMDktMDIiLCJ4Il0", "Wzk5LCIyMDMwLTA5LTAyVDAwOjAwOjAwKzAwOjAwIiwieCJd"):
            with pytest.raises(safety.Invalid):
                safety.list_items(session, school=s1, cursor=bad or "!")
        with pytest.raises(safety.Invalid):
            safety.list_items(session, school=s1, filters=safety.Filters(kinds=("nosuch",)))
        with pytest.raises(safety.Invalid):
            safety.list_items(session, school=s1, filters=safety.Filters(day=date(1999, 12, 31)))


# --- paging, as a property: whatever arrives between pages, no item is skipped or repeated ---------

_schools = iter(range(1, 10**6))


@settings(max_examples=25, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    first=st.lists(st.tuples(st.sampled_from(sorted(safety.INCIDENT_KINDS)), st.integers(0, 3)), max_size=12),
    arriving=st.lists(st.lists(st.tuples(st.sampled_from(sorted(safety.INCIDENT_KINDS)), st.integers(-1, 4)), max_size=3), max_size=6),
    limit=st.integers(1, 4),
)
def test_pages_never_skip_or_repeat_an_item_whatever_arrives_between_them(world, first, arriving, limit):
    """Incidents of every kind, many at the same second (the id breaks the tie), more stored after each page."""
    with world.session() as session:
        school = registry.ensure_school(session, code=f"h{next(_schools)}")

        def store(rows):
            for kind, minute in rows:
                session.add(SafetyIncident(school_id=school.id, kiosk="gate-1", kind=kind, detail="x",
                                           created_at=NOW + timedelta(minutes=minute)))
            session.commit()

        store(first)
        before = [i.key for i in safety.all_items(session, school=school)]
        seen, cursor, pages = [], None, iter(arriving)
        for _ in range(100):
            page = safety.list_items(session, school=school, cursor=cursor, limit=limit)
            seen += [i.key for i in page.items]
            if page.next is None:
                break
            cursor = page.next
            store(next(pages, []))
        assert len(seen) == len(set(seen))
        assert set(before) <= set(seen)
        everything = [i.key for i in safety.all_items(session, school=school)]
        assert [k for k in everything if k in set(seen)] == seen


def test_an_absence_is_an_item_until_its_day_is_excused(site, world):
    g1 = site.g1
    site.send(g1, g1.event("alert", -15, student="A1", session="7", reason="absent"))
    site.send(g1, g1.event("alert", -14, student="B1", session="7", reason="absent"))
    site.send(site.g2, site.g2.event("alert", -13, student="B1", session="7", reason="absent"))  # the same absence
    assert [(i.kind, i.student, i.count) for i in site.items()] == [("unexcused_absence", "B1", 2), ("unexcused_absence", "A1", 1)]
    with world.session() as session:
        s1 = registry.get_school(session, "s1")
        b1 = session.get(Student, world.ids["B1"])
        key = next(i.key for i in site.items() if i.student == "B1")
        assert safety.get_item(session, school=s1, key=key).kind == "unexcused_absence"
        excuses.excuse(session, school=s1, student=b1, day=DAY - timedelta(days=1), note="前一天的假", by_user_id=None)
        assert [i.student for i in site.items(kinds=("unexcused_absence",))] == ["B1", "A1"]  # another day's excuse
        excuses.excuse(session, school=s1, student=b1, day=DAY, note="病假", by_user_id=None)
        assert [i.student for i in site.items(kinds=("unexcused_absence",))] == ["A1"]
        with pytest.raises(safety.Missing):
            safety.get_item(session, school=s1, key=key)
    # a page of one is never short while an unexcused absence remains behind an excused one
    with world.session() as session:
        page = safety.list_items(session, school=registry.get_school(session, "s1"), limit=1,
                                 filters=safety.Filters(kinds=("unexcused_absence",)))
        assert [i.student for i in page.items] == ["A1"] and page.next is None


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_the_open_count_is_every_item_not_closed_and_follows_reviews_and_excuses(site, world):
    """``count_open`` (the district page's figure) by hand over ``fill``'s 15 items, one of every kind."""
    fill(site)

    def open_now() -> int:
        with world.session() as session:
            return safety.count_open(session, school=registry.get_school(session, "s1"))

    assert open_now() == 15
    keys = {(i.kind, i.reason): i.key for i in site.items()}
    with world.session() as session:
        s1 = registry.get_school(session, "s1")
        for key, step in ((keys["pickup_refused", "barred"], "acknowledge"), (keys["override", "家长电话确认"], "follow_up")):
            safety.review(session, school=s1, key=key, step=step, note="跟进", actor="user:admin1")
    assert open_now() == 15  # acknowledged, followed up: still open
    with world.session() as session:
        s1 = registry.get_school(session, "s1")
        for key in (keys["code_reused", "pickup_code_reused"], keys["gate_offline", "offline_now"],
                    keys["late_pickup", "late_pickup"]):
            safety.review(session, school=s1, key=key, step="close", note="已处理", actor="user:admin1")
    assert open_now() == 12
    with world.session() as session:
        s1 = registry.get_school(session, "s1")
        excuses.excuse(session, school=s1, student=session.get(Student, world.ids["A1"]), day=DAY - timedelta(days=1),
                       note="另一天", by_user_id=None)
        assert safety.count_open(session, school=s1) == 12  # another day's excuse
        excuses.excuse(session, school=s1, student=session.get(Student, world.ids["A1"]), day=DAY, note="病假", by_user_id=None)
        assert safety.count_open(session, school=s1) == 11  # A1's absence is no item now
        assert safety.count_open(session, school=registry.get_school(session, "s2")) == 0
