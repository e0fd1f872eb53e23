"""A day's reconciliation (central/reconciliation/daily.py): the rule on hand-made days, then one
school day read from the database and printed by `schoolgate central reconcile`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, select

from central.accounts.models import ChildRead
from central.core.db import make_engine, migrate
from central.kiosks.models import Event
from central.programme.models import CareSession, Enrollment, InterestGroup
from central.reconciliation.daily import Tap, reconcile_day, reconcile_session
from central.schools import registry
from central.schools.models import Kiosk, SchoolClass, Student

T0 = datetime(2030, 9, 2, 8, 30, tzinfo=UTC)  # 16:30 in Shanghai


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}, **extra}


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_each_child_of_a_session_lands_in_exactly_the_right_list():
    taps = [
        Tap(at(0), "checkin", "S1", "7"),
        Tap(at(1), "checkin", "S2", "7"),
        Tap(at(2), "checkin", "S3", "7"),
        Tap(at(3), "override", "X9", "7"),  # admitted by a guard, not enrolled: review
        Tap(at(80), "pickup", "S1", "7"),
        Tap(at(81), "self_dismiss", "S2", None),  # a departure names no session: still the child's
        Tap(at(5), "checkin", "S5", "8"),  # another session's child
        Tap(at(90), "pickup", "S6", "7"),  # picked up but never checked in: not a departure from here
    ]
    result = reconcile_session("7", ["S1", "S2", "S3", "S4", "S6"], taps)
    assert (result.expected, result.checked_in) == (["S1", "S2", "S3", "S4", "S6"], ["S1", "S2", "S3", "X9"])
    assert result.absent == ["S4", "S6"]
    assert result.gone == ["S1", "S2"]
    assert result.unresolved == ["S3", "X9"]  # no departure: a safety item
    assert result.unexpected == ["X9"]


def test_the_last_of_arrival_and_departure_decides_whatever_order_they_arrived_in():
    taps = [
        Tap(at(60), "checkin", "S1", "7"),  # back in after leaving: still inside
        Tap(at(30), "pickup", "S1", None),
        Tap(at(0), "checkin", "S1", "7"),
        Tap(at(-5), "checkout", "S2", None),  # left before coming: the arrival after it decides
        Tap(at(0), "checkin", "S2", "7"),
        Tap(at(30), "pickup", "S3", "7"),  # the pickup reached central before the check-in it follows
        Tap(at(0), "checkin", "S3", "7"),
    ]
    result = reconcile_session("7", ["S1", "S2", "S3"], taps)
    assert (result.gone, result.unresolved) == (["S3"], ["S1", "S2"])


def test_an_empty_session_is_all_absent():
    result = reconcile_session("7", ["S2", "S1"], [])
    assert (result.absent, result.checked_in, result.unresolved) == (["S1", "S2"], [], [])


@pytest.fixture
def school_day(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as session:
        school = registry.ensure_school(session, code="s1")
        klass = SchoolClass(school_id=school.id, grade="三年级", name="1班")
        session.add(klass)
        session.flush()
        kids = {no: Student(school_id=school.id, class_id=klass.id, student_no=no, name=f"学生{no}") for no in ("S1", "S2", "S3")}
        group = InterestGroup(school_id=school.id, name="足球", category="sports", capacity=30, place="操场",
                              grades=["三年级"], created_by="t")
        kiosk = Kiosk(school_id=school.id, code="gate-1", secret="ab" * 32)
        session.add_all([*kids.values(), group, kiosk])
        session.flush()
        care = CareSession(school_id=school.id, group_id=group.id, day=date(2030, 9, 2), starts_at=T0,
                           ends_at=at(80), place="操场", created_by="t")
        session.add(care)
        for no in ("S1", "S2", "S3"):
            session.add(Enrollment(school_id=school.id, student_id=kids[no].id, group_id=group.id, state="active",
                                   application="书面申请"))
        session.flush()
        for seq, (kind, student, minutes) in enumerate(
            [("checkin", "S1", 0), ("checkin", "S2", 2), ("pickup", "S1", 85),
             ("checkin", "S1", 24 * 60)],  # the next day's: not this day's
            start=1,
        ):
            session.add(Event(id=f"e{seq}", school_id=school.id, kiosk_id=kiosk.id, seq=seq, kind=kind, at=at(minutes),
                              received_at=at(minutes), student=student, session=str(care.id), prev="", hash="", sig=""))
        session.commit()
        care_id = care.id
    yield url, engine, care_id
    engine.dispose()


def test_a_school_day_read_from_the_database(school_day):
    url, engine, care_id = school_day
    with Session(engine) as session:
        result = reconcile_day(session, school=registry.get_school(session, "s1"), day=date(2030, 9, 2))
    assert result == {
        "school": "s1", "day": "2030-09-02", "unresolved": 1, "unexpected": 0,
        "sessions": [{
            "session": str(care_id), "group": "足球", "expected": ["S1", "S2", "S3"], "checked_in": ["S1", "S2"],
            "absent": ["S3"], "gone": ["S1"], "unresolved": ["S2"], "unexpected": [],
        }],
    }


def test_the_command_prints_the_day_as_json_and_refuses_a_bad_date(school_day, tmp_path):
    url, _, _ = school_day
    env = clean_env(SCHOOLGATE_DATABASE_URL=url, SCHOOLGATE_SIGNING_KEY_FILE=str(tmp_path / "k.pem"))
    done = subprocess.run([sys.executable, "-m", "schoolgate", "central", "reconcile", "--school", "s1", "--day", "2030-09-02"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sessions"][0]["unresolved"] == ["S2"]
    bad = subprocess.run([sys.executable, "-m", "schoolgate", "--lang", "en", "central", "reconcile", "--school", "s1",
                          "--day", "2 Sept"], capture_output=True, text=True, env=env, timeout=60)
    assert (bad.returncode, bad.stderr) == (2, "a date is YYYY-MM-DD, not 2 Sept\n")
    unknown = subprocess.run([sys.executable, "-m", "schoolgate", "central", "reconcile", "--school", "nosuch",
                              "--day", "2030-09-02"], capture_output=True, text=True, env=env, timeout=60)
    assert unknown.returncode == 2 and "nosuch" in unknown.stderr




def test_the_day_over_http_names_the_unresolved_and_logs_the_children_read(world):
    ids = world.ids
    with world.session() as session:
        care = CareSession(school_id=ids["s1"], group_id=ids["groupA"], day=date(2030, 9, 2), starts_at=T0, ends_at=at(80),
                           place="101", created_by="t")
        session.add(care)
        session.flush()
        session.add(Event(id="h1", school_id=ids["s1"], kiosk_id=ids["gate-1"], seq=1, kind="checkin", at=at(1),
                          received_at=at(1), student="A1", session=str(care.id), prev="", hash="", sig=""))
        session.commit()
    got = world.client.get("/api/v1/schools/s1/reconciliation/daily?day=2030-09-02", headers=world.as_("district"))
    assert got.status_code == 200, got.text
    assert (got.json()["unresolved"], got.json()["sessions"][0]["unresolved"]) == (1, ["A1"])
    with world.session() as session:
        reads = session.exec(select(ChildRead).where(ChildRead.what == "reconciliation")).all()
    assert [(r.student_id, r.actor) for r in reads] == [(ids["A1"], "user:district")]
    bad = world.client.get("/api/v1/schools/s1/reconciliation/daily?day=2030-13-01", headers=world.as_("finance1"))
    assert bad.status_code == 422
    far = world.client.get("/api/v1/schools/s1/reconciliation/daily?day=0001-01-01&lang=en", headers=world.as_("finance1"))
    assert (far.status_code, far.json()["detail"][0]["msg"]) == (422, "the day must be between 2000-01-01 and 2100-12-31, not 0001-01-01")
