"""The demo school: whenever the demo runs, a session is open for check-in at the kiosk.

Every time here is given: the demo takes the moment it runs (``now=``), so these tests mean the same
at any hour, the school's midnight included (scripts/test-at-midnight).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from central.admin import import_files, open_db
from central.core.config import Settings
from central.demo import demo_periods, demo_start, enroll_demo_students, write_demo_roster
from central.kiosks import roster
from central.schools import registry
from central.schools.models import School
from gateway import protocol
from gateway.mqtt import free_port

CHECKIN_BEFORE = timedelta(minutes=30)  # a kiosk takes check-ins from this long before a session's start
ZONE = ZoneInfo(School.model_fields["timezone"].default)
SETTINGS = Settings.model_construct()


@pytest.mark.parametrize(
    ("clock", "starts"),
    [
        ("00:00", "2026-11-28 00:05"),
        ("07:59:59.999999", "2026-11-28 08:04"),
        ("16:00", "2026-11-28 16:05"),
        ("23:54:59", "2026-11-28 23:59"),
        # From 23:55 the session is tomorrow's: it starts on tomorrow's date.
        ("23:55", "2026-11-29 00:00"),
        ("23:58:30", "2026-11-29 00:03"),
        ("23:59:59.999999", "2026-11-29 00:04"),
    ],
)
def test_the_demo_session_is_open_for_check_in_at_any_time_of_day(clock, starts):
    now = datetime.combine(date(2026, 11, 28), time.fromisoformat(clock), ZONE)
    begins = demo_start(now)
    assert begins == datetime.fromisoformat(starts).replace(tzinfo=ZONE)
    ends = begins + timedelta(minutes=SETTINGS.period_minutes * demo_periods(now, begins, SETTINGS))
    assert begins - CHECKIN_BEFORE <= now and ends >= now + timedelta(hours=1)


@pytest.mark.parametrize(
    ("at", "day"),
    [
        ("2026-12-01 16:00", "2026-12-01"),  # a Tuesday afternoon
        # A Friday, ten seconds before the school's midnight: the session is Saturday's (a make-up day),
        # and still on the roster central builds once that Saturday has come.
        ("2026-12-04 23:59:50", "2026-12-05"),
    ],
)
def test_after_enrolling_the_roster_has_one_session_open_for_check_in_now_and_for_the_next_hour(tmp_path, at, day):
    now = datetime.fromisoformat(at).replace(tzinfo=ZONE)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.sqlite3'}", mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    students, guardians = write_demo_roster(tmp_path / "roster", students=6, guardians=6)
    import_files(settings, school="demo", students=students, guardians=guardians, create_school=True)
    snap = protocol.parse_snapshot(enroll_demo_students(settings, school="demo", now=now).snapshot)
    open_now = [
        s for s in snap.sessions
        if datetime.fromisoformat(s.start) - CHECKIN_BEFORE <= now <= datetime.fromisoformat(s.end)
    ]
    assert [s.date for s in open_now] == [day]
    assert datetime.fromisoformat(open_now[0].end) - now > timedelta(minutes=59)
    assert all(s.enrolled for s in snap.students)
    an_hour_on = (now + timedelta(hours=1)).date()
    engine = open_db(settings)
    try:
        with Session(engine) as session:
            school = registry.get_school(session, "demo")
            later = roster.build_people(session, school, settings=settings, today=an_hour_on)
    finally:
        engine.dispose()
    assert open_now[0].id in {s["id"] for s in later["sessions"]}
