"""The calendar (P3): school days, holidays, make-up days, the winter/summer switch, P3.3; ratio (P9.2)."""

from __future__ import annotations

from datetime import date, time

import pytest
from sqlmodel import Session

from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.core.errors import Conflict, Invalid
from central.kiosks import roster
from central.programme import enrollment as enr
from central.programme import groups, schedule
from central.programme import staff as staff_service
from central.programme.models import (
    CalendarDayCreate,
    DismissalTimeCreate,
    InterestGroupCreate,
    StaffCreate,
    TermCreate,
)
from central.schools.models import School, SchoolClass, Student

SETTINGS = Settings()
# 2026-11-30 is a Monday. The autumn term switches to the winter timetable on 2026-12-07.
MON, TUE, WED, SAT = date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 5)


@pytest.fixture
def db(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        school = School(code="s1", name="示范小学")
        session.add(school)
        session.commit()
        schedule.add_term(session, school=school, actor="admin", data=TermCreate(
            name="2026秋", starts_on=date(2026, 9, 1), ends_on=date(2027, 1, 20), winter_from=date(2026, 12, 7)))
        for season, at in (("summer", time(16, 30)), ("winter", time(16, 0))):
            schedule.set_dismissal(session, school=school, actor="admin",
                                   data=DismissalTimeCreate(grade="三年级", season=season, dismissal=at))
        yield session, school
    engine.dispose()


def make_group(session, school, **kw):
    data = {"name": "作业辅导", "category": "homework", "capacity": 40, "place": "301教室", "grades": ["三年级"]} | kw
    return groups.create_group(session, school=school, actor="admin", settings=SETTINGS, data=InterestGroupCreate(**data))


def plan(session, school, start, end, group=None):
    return schedule.plan_sessions(session, school=school, start=start, end=end, group_id=group.id if group else None,
                                  actor="admin", settings=SETTINGS)


def test_sessions_only_on_school_days_a_holiday_is_skipped_and_a_make_up_day_is_kept(db):
    session, school = db
    group = make_group(session, school)
    schedule.set_calendar_day(session, school=school, actor="admin",
                              data=CalendarDayCreate(day=TUE, kind="holiday", note="校庆"))
    schedule.set_calendar_day(session, school=school, actor="admin",
                              data=CalendarDayCreate(day=SAT, kind="makeup", follows_weekday=1, note="调休"))
    made = plan(session, school, MON, date(2026, 12, 6), group)
    assert [s.day for s in made] == [MON, WED, date(2026, 12, 3), date(2026, 12, 4), SAT]
    assert plan(session, school, MON, date(2026, 12, 6), group) == []  # planning again adds nothing


def test_a_holiday_marked_later_removes_its_planned_session(db):
    session, school = db
    group = make_group(session, school)
    plan(session, school, MON, WED, group)
    _, removed = schedule.set_calendar_day(session, school=school, actor="admin",
                                           data=CalendarDayCreate(day=WED, kind="holiday"))
    assert removed == 1
    assert [s.day for s in schedule.sessions_between(session, school=school, start=MON, end=WED)] == [MON, TUE]


def test_no_session_outside_a_term_or_on_a_weekday_the_group_does_not_meet(db):
    session, school = db
    group = make_group(session, school, weekdays=[1, 3])
    assert [s.day for s in plan(session, school, MON, date(2026, 12, 6), group)] == [MON, WED]
    assert plan(session, school, date(2027, 1, 21), date(2027, 1, 29), group) == []  # winter holidays


def test_the_timetable_switches_from_summer_to_winter_on_the_terms_date(db):
    session, school = db
    group = make_group(session, school, periods=2)
    made = {s.day: s for s in plan(session, school, date(2026, 12, 4), date(2026, 12, 7), group)}
    shown = {s.day: s for s in schedule.sessions_public(session, school=school, rows=list(made.values()), settings=SETTINGS)}
    friday, monday = shown[date(2026, 12, 4)], shown[date(2026, 12, 7)]
    assert (friday.starts_at.time(), friday.ends_at.time()) == (time(16, 30), time(17, 50))  # summer: 2 × 40 min
    assert (monday.starts_at.time(), monday.ends_at.time()) == (time(16, 0), time(17, 20))  # winter
    assert friday.starts_at.utcoffset().total_seconds() == 8 * 3600  # shown in the school's zone
    assert made[date(2026, 12, 7)].starts_at.hour in (8,)  # stored in UTC: 16:00 +08:00


@pytest.mark.parametrize(
    "day,season",
    [(date(2026, 4, 30), "winter"), (date(2026, 5, 1), "summer"), (date(2026, 9, 30), "summer"), (date(2026, 10, 1), "winter")],
)
def test_default_season_switch_dates_where_a_term_says_none(day, season):
    assert schedule.season_of(day, None, SETTINGS) == season


def test_a_session_before_dismissal_is_refused(db):
    session, school = db
    with pytest.raises(Invalid, match="P3.3") as at_create:
        make_group(session, school, start_time=time(15, 30))
    assert "16:00" in at_create.value.text("en") or "16:30" in at_create.value.text("en")
    # Starting at 16:15 passes the winter dismissal (16:00) but not the summer one (16:30).
    schedule.set_dismissal(session, school=school, actor="admin",
                           data=DismissalTimeCreate(grade="三年级", season="summer", dismissal=time(16, 0)))
    group = make_group(session, school, start_time=time(16, 15), periods=1)  # ends 16:55, within P3.2
    schedule.set_dismissal(session, school=school, actor="admin",
                           data=DismissalTimeCreate(grade="三年级", season="summer", dismissal=time(16, 30)))
    with pytest.raises(Invalid) as at_plan:
        plan(session, school, MON, TUE, group)
    assert "before 三年级's dismissal at 16:30 (P3.3)" in at_plan.value.text("en")
    assert schedule.sessions_between(session, school=school, start=MON, end=TUE) == []


def test_more_than_the_maximum_periods_is_refused(db):
    session, school = db
    with pytest.raises(Invalid, match="P3.2"):
        make_group(session, school, periods=3)


def test_a_group_that_would_end_past_dismissal_plus_two_periods_is_refused_naming_the_latest_end(db):
    session, school = db
    # Winter dismissal 16:00: the service ends by 17:20 (2 × 40 min). From 16:45, 2 periods end at 18:05.
    with pytest.raises(Invalid) as late:
        make_group(session, school, start_time=time(16, 45), periods=2)
    assert "must end by 17:20" in late.value.text("en") and "18:05" in late.value.text("en")
    assert "最晚 17:20 结束" in str(late.value) and "P3.2" in str(late.value)
    assert groups.list_groups(session, school=school) == []
    # Exactly at the limit is allowed: 16:40 + 1 period = 17:20.
    assert make_group(session, school, start_time=time(16, 40), periods=1).start_time == time(16, 40)


def test_the_planner_makes_no_session_that_ends_past_dismissal_plus_two_periods(db):
    session, school = db
    # Created while both seasons dismiss at 16:30 (17:00 + 1 period = 17:40, limit 17:50) ...
    schedule.set_dismissal(session, school=school, actor="admin",
                           data=DismissalTimeCreate(grade="三年级", season="winter", dismissal=time(16, 30)))
    group = make_group(session, school, start_time=time(17, 0), periods=1)
    # ... then the winter timetable dismisses at 16:00: the latest end in winter is 17:20.
    schedule.set_dismissal(session, school=school, actor="admin",
                           data=DismissalTimeCreate(grade="三年级", season="winter", dismissal=time(16, 0)))
    with pytest.raises(Invalid) as refused:
        plan(session, school, date(2026, 12, 4), date(2026, 12, 7), group)  # Friday summer, Monday winter
    assert ("group '作业辅导' on 2026-12-07 would end at 17:40, after the latest allowed end 17:20 "
            "(三年级's dismissal at 16:00 plus at most 2 periods, P3.2)") == refused.value.text("en")
    assert "最晚结束时间 17:20" in str(refused.value)
    # All or nothing: the summer Friday was not kept either.
    assert schedule.sessions_between(session, school=school, start=date(2026, 12, 4), end=date(2026, 12, 7)) == []
    made = plan(session, school, date(2026, 12, 4), date(2026, 12, 4), group)
    shown = schedule.sessions_public(session, school=school, rows=made, settings=SETTINGS)[0]
    assert (shown.starts_at.time(), shown.ends_at.time()) == (time(17, 0), time(17, 40))  # summer: limit 17:50


def test_over_thirty_students_per_staff_member_on_duty_is_flagged(db):
    session, school = db
    teacher = staff_service.create_staff(session, school=school, actor="admin", data=StaffCreate(name="李老师", kind="teacher"))
    group = make_group(session, school, staff_id=teacher.id)
    klass = SchoolClass(school_id=school.id, grade="三年级", name="1班")
    session.add(klass)
    session.flush()
    students = [Student(school_id=school.id, class_id=klass.id, student_no=f"S{i:02d}", name=f"学生{i}") for i in range(31)]
    session.add_all(students)
    session.commit()
    enr.publish_notice(session, school=school, text="告知书", actor="admin")
    (row,) = plan(session, school, MON, MON, group)

    def shown():
        return schedule.sessions_public(session, school=school, rows=[row], settings=SETTINGS)[0]

    enr.enroll_through_chain(session, school=school, student_ids=[s.id for s in students[:30]], group_id=group.id,
                             actor="admin", application="纸质申请", school_signer="校长")
    assert (shown().expected, shown().staff, shown().over_ratio) == (30, [teacher.id], False)
    enr.enroll_through_chain(session, school=school, student_ids=[students[30].id], group_id=group.id,
                             actor="admin", application="纸质申请", school_signer="校长")
    assert (shown().expected, shown().over_ratio) == (31, True)
    helper = staff_service.create_staff(session, school=school, actor="admin", data=StaffCreate(name="志愿者", kind="volunteer"))
    schedule.assign_duty(session, school=school, session_id=row.id, staff_id=helper.id, actor="admin")
    assert shown().over_ratio is False


def same_dismissal_all_year(session, school):
    """Winter dismissal moved to 16:30 too, so that groups starting after 16:30 pass P3.2 in both seasons."""
    schedule.set_dismissal(session, school=school, actor="admin",
                           data=DismissalTimeCreate(grade="三年级", season="winter", dismissal=time(16, 30)))


def test_a_staff_member_on_duty_is_not_put_on_duty_in_an_overlapping_session(db):
    session, school = db
    same_dismissal_all_year(session, school)
    teacher = staff_service.create_staff(session, school=school, actor="admin", data=StaffCreate(name="李老师", kind="teacher"))
    # Summer, dismissal 16:30: 作业辅导 16:30–17:10, 阅读 16:50–17:30, 体育 17:10–17:50.
    homework = make_group(session, school, periods=1, staff_id=teacher.id)
    reading = make_group(session, school, name="阅读", category="reading", start_time=time(16, 50), periods=1)
    sports = make_group(session, school, name="体育", category="sports", start_time=time(17, 10), periods=1)
    (first,) = plan(session, school, MON, MON, homework)
    reading_mon, reading_tue = plan(session, school, MON, TUE, reading)
    (after,) = plan(session, school, MON, MON, sports)
    with pytest.raises(Conflict) as clash:
        schedule.assign_duty(session, school=school, session_id=reading_mon.id, staff_id=teacher.id, actor="admin")
    assert clash.value.text("en") == (
        f"李老师 is already on duty at group '作业辅导''s session {first.id} on 2026-11-30, 16:30–17:10, which overlaps this one"
    )
    assert f"已在“作业辅导”2026-11-30 16:30—17:10 的服务场次（编号 {first.id}）值班" in str(clash.value)
    shown = schedule.sessions_public(session, school=school, rows=[reading_mon], settings=SETTINGS)[0]
    assert shown.staff == []
    # The same hours on another day, and a session that starts as the first ends, are fine.
    schedule.assign_duty(session, school=school, session_id=reading_tue.id, staff_id=teacher.id, actor="admin")
    schedule.assign_duty(session, school=school, session_id=after.id, staff_id=teacher.id, actor="admin")
    shown = schedule.sessions_public(session, school=school, rows=[reading_tue, after], settings=SETTINGS)
    assert [s.staff for s in shown] == [[teacher.id], [teacher.id]]
    # Assigning again where they already are is no clash with themselves.
    schedule.assign_duty(session, school=school, session_id=first.id, staff_id=teacher.id, actor="admin")


def test_the_planner_puts_a_person_in_charge_of_two_groups_on_duty_once_at_a_time(db):
    session, school = db
    same_dismissal_all_year(session, school)
    teacher = staff_service.create_staff(session, school=school, actor="admin", data=StaffCreate(name="李老师", kind="teacher"))
    homework = make_group(session, school, periods=2, staff_id=teacher.id)  # 16:30–17:50
    reading = make_group(session, school, name="阅读", category="reading", start_time=time(16, 50), periods=1,
                         staff_id=teacher.id)  # 16:50–17:30
    made = plan(session, school, MON, MON)
    shown = {s.group: s for s in schedule.sessions_public(session, school=school, rows=made, settings=SETTINGS)}
    assert (shown["作业辅导"].staff, shown["阅读"].staff) == ([teacher.id], [])
    assert [s.group_id for s in made] == [homework.id, reading.id]


def test_todays_sessions_reach_the_roster_with_utc_times_and_grace(db):
    session, school = db
    group = make_group(session, school)
    plan(session, school, MON, date(2026, 12, 4), group)
    people = roster.build_people(session, school, settings=SETTINGS, today=MON)
    assert [s["date"] for s in people["sessions"]] == ["2026-11-30", "2026-12-01", "2026-12-02"]  # today + 2 days
    first = people["sessions"][0]
    assert (first["start"], first["end"]) == ("2026-11-30T08:30:00Z", "2026-11-30T09:50:00Z")
    assert (first["absent_after"], first["overdue_after"]) == ("2026-11-30T08:40:00Z", "2026-11-30T10:05:00Z")
    assert first["group"] == str(group.id) and first["place"] == "301教室"


def test_a_group_stored_without_grades_is_left_out_of_the_school_plan_and_named_when_planned_alone(db):
    # Blank grades are refused at the API now; a group stored before that must not stop every other
    # group's planning, and planning it alone says what to fix.
    session, school = db
    good = make_group(session, school)
    empty = make_group(session, school, name="旧兴趣组")
    empty.grades = []
    session.add(empty)
    session.commit()
    made = plan(session, school, MON, MON)
    assert [(s.group_id, s.day) for s in made] == [(good.id, MON)]
    with pytest.raises(Invalid) as refused:
        plan(session, school, MON, MON, empty)
    assert refused.value.key == "plan.no_grades"
    assert refused.value.text("zh_CN") == "“旧兴趣组”没有填写面向的年级，无法安排服务：请先为该组填写年级"


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_the_api_refuses_duty_in_two_sessions_at_once_with_409_naming_the_other(world):
    admin, ids = world.as_("admin1"), world.ids
    api = "/api/v1/schools/s1"

    def ok(r, code=200):
        assert r.status_code == code, r.text
        return r.json()

    ok(world.client.post(f"{api}/terms", headers=admin, json={"name": "2026秋", "starts_on": "2026-09-01",
                                                              "ends_on": "2027-01-20"}), 201)
    for season in ("summer", "winter"):
        ok(world.client.put(f"{api}/dismissal-times", headers=admin,
                            json={"grade": "三年级", "season": season, "dismissal": "16:00:00"}))
    made = ok(world.client.post(f"{api}/sessions/plan", headers=admin, json={"start": "2026-11-30", "end": "2026-11-30"}), 201)
    by_group = {s["group_id"]: s for s in made}
    a, b = by_group[ids["groupA"]], by_group[ids["groupB"]]
    assert (a["staff"], b["staff"]) == ([ids["staffA"]], [ids["staffB"]])  # each group's own teacher
    refused = world.client.post(f"{api}/sessions/{b['id']}/duty?lang=en", headers=admin, json={"staff_id": ids["staffA"]})
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == (
        f"staffA is already on duty at group 'groupA''s session {a['id']} on 2026-11-30, 16:00–17:20, which overlaps this one"
    )
    after = ok(world.client.get(f"{api}/sessions?start=2026-11-30&end=2026-11-30", headers=admin))
    assert {s["id"]: s["staff"] for s in after} == {a["id"]: [ids["staffA"]], b["id"]: [ids["staffB"]]}
