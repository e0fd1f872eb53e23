"""A generated demo school, written as the roster files a school would import."""

from __future__ import annotations

import csv
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "子涵欣怡梓轩浩然雨桐一诺宇航思远佳琪博文嘉懿俊杰诗涵梦琪皓轩"
RELATIONS = ("父亲", "母亲", "祖父", "祖母", "外公", "外婆")
DEMO_GUARD_CARD = "9E4A0D01"  # the demo guard's staff card (王师傅, kind guard)


def write_demo_roster(folder: Path, *, classes: int = 2, students: int = 60, guardians: int = 80, seed: int = 7) -> tuple[Path, Path]:
    """Write 学生.csv and 家长.csv (Chinese headers, UTF-8) and return their paths."""
    rng = random.Random(seed)
    used_cards: set[str] = set()

    def card() -> str:
        while True:
            uid = "".join(rng.choice("0123456789ABCDEF") for _ in range(8))
            if uid not in used_cards:
                used_cards.add(uid)
                return uid

    def name(surname: str | None = None) -> str:
        given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        return (surname or rng.choice(SURNAMES)) + given

    folder.mkdir(parents=True, exist_ok=True)
    kids = []
    for i in range(students):
        kids.append(
            {
                "学号": f"2026{i + 1:04d}",
                "姓名": name(),
                "年级": "三年级",
                "班级": f"{i % classes + 1}班",
                "卡号": card(),
                "建档立卡": "是" if i % 20 == 0 else "否",
            }
        )
    students_path = folder / "学生.csv"
    with students_path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(kids[0]))
        writer.writeheader()
        writer.writerows(kids)

    rows = []
    for i in range(guardians):
        kid = kids[i % students]
        rows.append(
            {
                "姓名": name(kid["姓名"][0]),
                "关系": RELATIONS[(i // students) * 2 + i % 2],
                "手机": f"13{rng.randrange(8, 10)}{rng.randrange(10**8):08d}",
                "卡号": card(),
                "学生学号": kid["学号"],
                "可接送": "否" if i == guardians - 1 else "是",
                # One custody order, so the demo can show a refused pickup.
                "禁止接送": "是" if i == guardians - 1 else "否",
                "自行离校": "是" if i % 15 == 3 else "否",
            }
        )
    guardians_path = folder / "家长.csv"
    with guardians_path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return students_path, guardians_path


def demo_start(now: datetime) -> datetime:
    """Five minutes after ``now`` (aware, in the school's zone), to the minute: the demo's dismissal and
    its session's start, so that the session is open for check-in (from 30 minutes before its start)
    as the demo runs. The session is on the school's date it starts on: from 23:55 that is tomorrow,
    whose session the kiosk takes check-ins for at once and still holds after midnight."""
    return now.replace(second=0, microsecond=0) + timedelta(minutes=5)


def demo_periods(now: datetime, start: datetime, settings) -> int:
    """Periods enough for a session from ``start`` to end an hour after ``now``, within P3.2's cap."""
    minutes = 60 + (now.astimezone(UTC) - start.astimezone(UTC)) / timedelta(minutes=1)  # in UTC, as sessions are
    return min(settings.max_periods, max(1, math.ceil(minutes / settings.period_minutes)))


def enroll_demo_students(settings, *, school: str, actor: str = "demo", now: datetime | None = None):
    """Take every student of ``school`` through the whole consent chain (P2.1, P2.2) into one care group
    with sessions on school days, as a school does in its first week: a term around the session's day,
    dismissal times, the notice, a teacher in charge, then application → review → approval → three
    signatures. Dismissal is five minutes after ``now`` (``demo_start``), so that a session is open for
    check-in whenever the demo runs.

    ``now`` is the moment the demo runs (default: central's clock, read once): the session's day and
    start and the roster's "today" all come from it, so a demo started a second before the school's
    midnight does not plan one day and publish the next.

    Returns the roster change (published, or retained by central when it next connects).
    """
    from sqlmodel import Session, select

    from central.admin import open_db, publish_change
    from central.core import clock
    from central.kiosks import roster
    from central.programme import enrollment, groups, schedule
    from central.programme import staff as staff_service
    from central.programme.models import (
        CalendarDayCreate,
        DismissalTimeCreate,
        InterestGroup,
        InterestGroupCreate,
        StaffCreate,
        TermCreate,
    )
    from central.schools import registry
    from central.schools.models import SchoolClass, Student

    engine = open_db(settings)
    try:
        with Session(engine) as session:
            found = registry.get_school(session, school)
            now = clock.to_local(now, found) if now is not None else clock.local_now(found)
            starts = demo_start(now)
            # The session's day: today, or tomorrow from 23:55 (the day of its start, see demo_start).
            day, dismissal = starts.date(), starts.time()
            periods = demo_periods(now, starts, settings)
            if schedule.Calendar(session, found).term(day) is None:
                schedule.add_term(session, school=found, actor=actor, data=TermCreate(
                    name="演示学期", starts_on=day - timedelta(days=7), ends_on=day + timedelta(days=120)))
            if day.isoweekday() > 5:
                # So the demo runs on a weekend too: the session's day is a make-up day (调休), a school day.
                schedule.set_calendar_day(session, school=found, actor=actor,
                                          data=CalendarDayCreate(day=day, kind="makeup", note="演示调休"))
            grades = sorted(set(session.exec(select(SchoolClass.grade).where(SchoolClass.school_id == found.id))))
            for grade in grades:
                for season in schedule.SEASONS:
                    schedule.set_dismissal(session, school=found, actor=actor,
                                           data=DismissalTimeCreate(grade=grade, season=season, dismissal=dismissal))
            if enrollment.current_notice(session, school=found) is None:
                enrollment.publish_notice(session, school=found, actor=actor,
                                          text=f"课后服务告知书：自愿参加；上学日放学后开展，每次{periods}课时；家长按时接送。")
            students = session.exec(select(Student.id).where(Student.school_id == found.id)).all()
            group = session.exec(select(InterestGroup).where(InterestGroup.school_id == found.id,
                                                             InterestGroup.name == "课后托管")).first()
            if group is None:
                teacher = staff_service.create_staff(session, school=found, actor=actor,
                                                     data=StaffCreate(name="值班老师", kind="teacher"))
                # The gate's guard: signs in at the console with this card, so pickups can be confirmed.
                guard = staff_service.create_staff(session, school=found, actor=actor,
                                                   data=StaffCreate(name="王师傅", kind="guard"))
                staff_service.add_card(session, school=found, staff_id=guard.id, uid=DEMO_GUARD_CARD, actor=actor)
                group = groups.create_group(session, school=found, actor=actor, settings=settings, data=InterestGroupCreate(
                    name="课后托管", category="homework", capacity=max(1, len(students)), place="教学楼",
                    grades=grades, weekdays=[1, 2, 3, 4, 5], staff_id=teacher.id, periods=periods))
            schedule.plan_sessions(session, school=found, start=day, end=day + timedelta(days=7), group_id=group.id,
                                   actor=actor, settings=settings)
            enrollment.enroll_through_chain(session, school=found, student_ids=list(students), group_id=group.id,
                                            actor=actor, application="家长书面申请（演示）", school_signer="示范小学")
            change = roster.refresh(session, found, settings=settings, today=now.date())
    finally:
        engine.dispose()
    publish_change(settings, change)
    return change
