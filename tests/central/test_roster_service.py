"""The kiosk roster carries the service: staff, sessions, link dates; old kiosks still read it (lenient v1)."""

from __future__ import annotations

import json
from datetime import date, time

from sqlmodel import Session, select

from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.kiosks import roster
from central.programme import groups, schedule
from central.programme import staff as staff_service
from central.programme.models import DismissalTimeCreate, InterestGroupCreate, StaffCreate, TermCreate
from central.schools.models import School
from gateway import protocol

SETTINGS = Settings()
MON = date(2026, 11, 30)


def test_a_new_session_publishes_a_version_whose_delta_and_snapshot_carry_it(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        school = School(code="s1", name="示范小学")
        session.add(school)
        session.commit()
        first = roster.refresh(session, school, settings=SETTINGS, today=MON)
        schedule.add_term(session, school=school, actor="a",
                          data=TermCreate(name="秋", starts_on=date(2026, 9, 1), ends_on=date(2027, 1, 20)))
        schedule.set_dismissal(session, school=school, actor="a",
                               data=DismissalTimeCreate(grade="三年级", season="winter", dismissal=time(16, 0)))
        teacher = staff_service.create_staff(session, school=school, actor="a", data=StaffCreate(name="李老师", kind="teacher"))
        group = groups.create_group(session, school=school, actor="a", settings=SETTINGS, data=InterestGroupCreate(
            name="阅读", category="reading", capacity=30, place="图书馆", grades=["三年级"], staff_id=teacher.id))
        schedule.plan_sessions(session, school=school, start=MON, end=MON, group_id=group.id, actor="a", settings=SETTINGS)
        change = roster.refresh(session, school, settings=SETTINGS, today=MON)
        assert (first.version, change.version) == (1, 2)
        delta = protocol.RosterDelta.model_validate(json.loads(change.delta))
        assert [s.id for s in delta.staff] == [f"st{teacher.id}"]
        (planned,) = delta.sessions
        assert (planned.group, planned.date, planned.staff) == (str(group.id), "2026-11-30", [f"st{teacher.id}"])
        snap = protocol.RosterSnapshot.model_validate(json.loads(change.snapshot))
        assert snap.sessions == delta.sessions and snap.staff == delta.staff
        assert roster.refresh(session, school, settings=SETTINGS, today=MON) is None  # nothing changed
        # The next day the window moves on: yesterday's session leaves the roster, a new version.
        later = roster.refresh(session, school, settings=SETTINGS, today=date(2026, 12, 1))
        assert json.loads(later.delta)["removed_sessions"] == [planned.id]
    engine.dispose()


def test_a_v1_kiosk_reads_a_roster_without_the_new_fields_and_ignores_unknown_ones():
    old = {"v": 1, "school": "s1", "version": 3, "generated_at": "2026-11-30T08:00:00+00:00",
           "students": [{"id": "S1", "name": "王", "class": "三年级1班"}]}
    snap = protocol.RosterSnapshot.model_validate(old)
    assert snap.sessions == [] and snap.staff == [] and snap.codes == [] and snap.students[0].groups == []
    link = protocol.RosterLink.model_validate({"student": "S1", "valid_until": "2026-12-31", "future": 1})
    assert (link.valid_from, link.valid_until) == (None, "2026-12-31")


class _Published:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bool]] = []

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.messages.append((topic, retain))


def test_the_timer_refresh_publishes_only_what_changed_for_every_school(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        for code in ("s1", "s2"):
            session.add(School(code=code, name=code))
        session.commit()
    topics = protocol.Topics()
    out = _Published()
    first = roster.refresh_all(engine, settings=SETTINGS, publisher=out, topics=topics, today=MON)
    assert sorted(c.school for c in first) == ["s1", "s2"]
    assert sorted(out.messages) == [("sg/v1/s1/roster", True), ("sg/v1/s2/roster", True)]
    out.messages.clear()
    assert roster.refresh_all(engine, settings=SETTINGS, publisher=out, topics=topics, today=MON) == []
    assert out.messages == []
    engine.dispose()


def test_two_refreshes_from_the_same_version_never_publish_two_rosters_as_one_version(tmp_path):
    from central.schools.models import Guardian

    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as setup:
        setup.add(School(code="s1", name="s1"))
        setup.commit()
        school = setup.exec(select(School)).one()
        assert roster.refresh(setup, school, settings=SETTINGS, today=MON).version == 1
        setup.add(Guardian(school_id=school.id, name="新家长"))
        setup.commit()
    # Two workers (the timer and an API request) each loaded the school at version 1.
    with Session(engine) as a, Session(engine) as b:
        school_a = a.get(School, 1)
        school_b = b.get(School, 1)
        first = roster.refresh(a, school_a, settings=SETTINGS, today=MON)
        second = roster.refresh(b, school_b, settings=SETTINGS, today=MON)
    assert first.version == 2 and second is None
    engine.dispose()


def _a_bad_school_before_a_good_one(tmp_path):
    """A school stored before imports checked ids (``示范 小学``: a space, and not ASCII), then a good one."""
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        session.add(School(code="示范 小学", name="示范小学", roster_version=1, roster_body="{}"))
        session.commit()
        session.add(School(code="s2", name="第二小学"))
        session.commit()
    return engine


def test_one_school_with_a_bad_id_neither_stops_the_republish_nor_hides_in_a_traceback(tmp_path, caplog):
    engine = _a_bad_school_before_a_good_one(tmp_path)
    topics = protocol.Topics()
    roster.refresh_all(engine, settings=SETTINGS, publisher=_Published(), topics=topics, today=MON)  # s2 gets v1
    out = _Published()
    caplog.clear()
    assert roster.republish_all(engine, publisher=out, topics=topics) == ["s2"]
    assert out.messages == [("sg/v1/s2/roster", True)]
    (said,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "'示范 小学'" in said.getMessage() and said.exc_info is None
    engine.dispose()


def test_one_school_with_a_bad_id_does_not_stop_the_timer_refresh_of_the_others(tmp_path, caplog):
    engine = _a_bad_school_before_a_good_one(tmp_path)
    out = _Published()
    changes = roster.refresh_all(engine, settings=SETTINGS, publisher=out, topics=protocol.Topics(), today=MON)
    assert [c.school for c in changes] == ["s2"]
    assert out.messages == [("sg/v1/s2/roster", True)]
    assert any("'示范 小学'" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    engine.dispose()


def test_a_school_whose_roster_fails_to_build_is_logged_and_the_next_is_still_refreshed(tmp_path, caplog, monkeypatch):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        session.add_all([School(code="s1", name="s1"), School(code="s2", name="s2")])
        session.commit()
    real = roster.build_people

    def fails_for_s1(session, school, **kw):
        if school.code == "s1":
            raise RuntimeError("broken row")
        return real(session, school, **kw)

    monkeypatch.setattr(roster, "build_people", fails_for_s1)
    out = _Published()
    changes = roster.refresh_all(engine, settings=SETTINGS, publisher=out, topics=protocol.Topics(), today=MON)
    assert [c.school for c in changes] == ["s2"]
    (said,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "'s1'" in said.getMessage() and said.exc_info is not None
    engine.dispose()
