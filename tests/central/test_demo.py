"""The demo school: whenever the demo runs, a session is open for check-in at the kiosk."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from central.admin import import_files
from central.core.config import Settings
from central.demo import demo_periods, demo_start, enroll_demo_students, write_demo_roster
from central.schools.models import School
from gateway import protocol
from gateway.mqtt import free_port

CHECKIN_BEFORE = timedelta(minutes=30)  # a kiosk takes check-ins from this long before a session's start
ZONE = ZoneInfo(School.model_fields["timezone"].default)
SETTINGS = Settings.model_construct()


@pytest.mark.parametrize("clock", ["00:00", "07:59:59.999999", "16:00", "23:54:59", "23:55", "23:58:30", "23:59:59.999999"])
def test_the_demo_session_is_open_for_check_in_at_any_time_of_day(clock):
    now = datetime.combine(date(2026, 11, 28), time.fromisoformat(clock), ZONE)
    start = demo_start(now)
    begins = datetime.combine(now.date(), start, ZONE)
    ends = begins + timedelta(minutes=SETTINGS.period_minutes * demo_periods(now, start, SETTINGS))
    assert begins - CHECKIN_BEFORE <= now and ends >= now + timedelta(hours=1)


def test_after_enrolling_the_roster_has_a_session_today_open_for_check_in_now(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.sqlite3'}", mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    students, guardians = write_demo_roster(tmp_path / "roster", students=6, guardians=6)
    import_files(settings, school="demo", students=students, guardians=guardians, create_school=True)
    snap = protocol.parse_snapshot(enroll_demo_students(settings, school="demo").snapshot)
    now, today = datetime.now(UTC), datetime.now(ZONE).date().isoformat()
    open_now = [
        s for s in snap.sessions
        if s.date == today and datetime.fromisoformat(s.start) - CHECKIN_BEFORE <= now <= datetime.fromisoformat(s.end)
    ]
    assert len(open_now) == 1 and datetime.fromisoformat(open_now[0].end) - now > timedelta(minutes=59)
    assert all(s.enrolled for s in snap.students)
