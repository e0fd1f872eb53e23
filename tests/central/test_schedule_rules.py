"""P3's rule functions one case at a time, with hand-written answers: which timetable (summer or
winter) runs on a day, which days are school days, and whose dismissal decides. Written for the
survivors of the mutation run (docs/testing.md)."""

from __future__ import annotations

from datetime import date, time

import pytest
from sqlmodel import Session

from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.core.errors import Invalid
from central.programme import schedule
from central.programme.models import CalendarDayCreate, DismissalTimeCreate, Term, TermCreate
from central.schools.models import School

DEFAULTS = Settings(summer_from="05-01", winter_from="10-01")
# The other hemisphere's order: the summer timetable from October, winter from May.
WRAPPED = Settings(summer_from="10-01", winter_from="05-01")


@pytest.mark.parametrize(
    ("settings", "day", "season"),
    [
        (DEFAULTS, date(2026, 4, 30), "winter"),
        (DEFAULTS, date(2026, 5, 1), "summer"),
        (DEFAULTS, date(2026, 9, 30), "summer"),
        (DEFAULTS, date(2026, 10, 1), "winter"),
        (DEFAULTS, date(2026, 12, 31), "winter"),
        (DEFAULTS, date(2027, 1, 1), "winter"),
        (WRAPPED, date(2026, 4, 30), "summer"),
        (WRAPPED, date(2026, 5, 1), "winter"),
        (WRAPPED, date(2026, 9, 30), "winter"),
        (WRAPPED, date(2026, 10, 1), "summer"),
        (WRAPPED, date(2027, 1, 1), "summer"),
    ],
)
def test_without_a_terms_own_switch_the_district_dates_decide(settings, day, season):
    assert schedule.season_of(day, None, settings) == season


def _term(**switches) -> Term:
    return Term(school_id=1, name="2026秋", starts_on=date(2026, 9, 1), ends_on=date(2027, 1, 20), **switches)


@pytest.mark.parametrize(
    ("switches", "day", "season"),
    [
        # Only the switch to winter: summer until it, winter from its day on.
        ({"winter_from": date(2026, 11, 2)}, date(2026, 11, 1), "summer"),
        ({"winter_from": date(2026, 11, 2)}, date(2026, 11, 2), "winter"),
        # Only the switch to summer: winter until it.
        ({"summer_from": date(2026, 11, 2)}, date(2026, 11, 1), "winter"),
        ({"summer_from": date(2026, 11, 2)}, date(2026, 11, 2), "summer"),
        # Both: the latest one passed decides; before either, the opposite of the first.
        ({"summer_from": date(2026, 9, 10), "winter_from": date(2026, 11, 2)}, date(2026, 9, 9), "winter"),
        ({"summer_from": date(2026, 9, 10), "winter_from": date(2026, 11, 2)}, date(2026, 9, 10), "summer"),
        ({"summer_from": date(2026, 9, 10), "winter_from": date(2026, 11, 2)}, date(2026, 11, 2), "winter"),
        ({"winter_from": date(2026, 9, 10), "summer_from": date(2026, 11, 2)}, date(2026, 9, 9), "summer"),
        ({"winter_from": date(2026, 9, 10), "summer_from": date(2026, 11, 2)}, date(2026, 11, 3), "summer"),
        # A term with no switch of its own leaves it to the district dates (10-01 here).
        ({}, date(2026, 9, 30), "summer"),
        ({}, date(2026, 10, 1), "winter"),
    ],
)
def test_a_terms_own_switch_dates_win(switches, day, season):
    assert schedule.season_of(day, _term(**switches), DEFAULTS) == season


@pytest.fixture
def db(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        schools = [School(code="s1", name="示范小学"), School(code="s2", name="另一所小学")]
        session.add_all(schools)
        session.commit()
        yield session, schools[0], schools[1]
    engine.dispose()


def test_school_days_are_the_terms_weekdays_and_make_up_days_less_holidays(db):
    session, school, _ = db
    schedule.add_term(session, school=school, actor="admin", data=TermCreate(
        name="2026秋", starts_on=date(2026, 9, 1), ends_on=date(2027, 1, 20)))
    for day, kind, follows in ((date(2026, 10, 1), "holiday", None), (date(2026, 10, 10), "makeup", 4),
                               (date(2026, 10, 11), "makeup", None)):
        schedule.set_calendar_day(session, school=school, actor="admin",
                                  data=CalendarDayCreate(day=day, kind=kind, follows_weekday=follows))
    calendar = schedule.Calendar(session, school)
    expected = {
        date(2026, 8, 31): None,  # the day before the term (a Monday)
        date(2026, 9, 1): 2,  # its first day, a Tuesday
        date(2027, 1, 20): 3,  # its last day, a Wednesday
        date(2027, 1, 21): None,  # the day after (a Thursday)
        date(2026, 9, 5): None,  # a Saturday
        date(2026, 9, 6): None,  # a Sunday
        date(2026, 10, 1): None,  # a holiday on a Thursday
        date(2026, 10, 10): 4,  # a Saturday made up for Thursday: Thursday's groups meet
        date(2026, 10, 11): 0,  # a Sunday made up with no weekday named: every group meets
    }
    assert {day: calendar.weekday(day) for day in expected} == expected
    assert calendar.term(date(2026, 9, 1)).name == calendar.term(date(2027, 1, 20)).name == "2026秋"
    assert calendar.term(date(2026, 8, 31)) is None and calendar.term(date(2027, 1, 21)) is None


def test_the_latest_dismissal_of_the_schools_own_grades_decides(db):
    session, school, other = db
    for owner, grade, season, at in (
        (school, "三年级", "winter", time(16, 0)),
        (school, "五年级", "winter", time(16, 30)),
        (school, "五年级", "summer", time(17, 0)),
        (school, "一年级", "winter", time(16, 45)),  # the latest, though its name sorts first
        (other, "三年级", "winter", time(17, 45)),  # another school's times never count here
        (other, "五年级", "winter", time(17, 50)),
    ):
        schedule.set_dismissal(session, school=owner, actor="admin",
                               data=DismissalTimeCreate(grade=grade, season=season, dismissal=at))
    at = lambda grades: schedule.dismissal_at(session, school=school, grades=grades, season="winter")  # noqa: E731
    assert at(["三年级"]) == (time(16, 0), "三年级")
    assert at(["三年级", "五年级"]) == at(["五年级", "三年级"]) == (time(16, 30), "五年级")
    assert at(["三年级", "一年级", "五年级"]) == (time(16, 45), "一年级")
    with pytest.raises(Invalid) as missing:
        schedule.dismissal_at(session, school=school, grades=["三年级"], season="summer")
    assert missing.value.text("en") == "no summer dismissal time for 三年级: sessions cannot be planned"
    with pytest.raises(Invalid):  # s2 has no summer times at all: s1's are not borrowed
        schedule.dismissal_at(session, school=other, grades=["五年级"], season="summer")
