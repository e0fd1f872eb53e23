"""Interest groups (P4.1 分类编组): a category from P5.1's allowed list, capacity, staff in charge, place.

P5.2 forbids collective tutoring and teaching in the name of the service: a group declared as
subject teaching or new lessons is refused, and so is any category not on the allowed list, and a
group whose name or description uses a tutoring word (``central.programme.content``), on create and update.
P3.2: a group whose start time and periods would end a session past dismissal plus ``max_periods``
periods is refused.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from central.core import clock
from central.core.config import Settings
from central.core.errors import Conflict, Invalid, Missing
from central.core.events import RosterChanged, record
from central.core.i18n import Items, Msg
from central.programme import staff as staff_service
from central.programme.content import tutoring_words
from central.programme.models import (
    DismissalTime,
    Enrollment,
    InterestGroup,
    InterestGroupCreate,
    InterestGroupPublic,
    InterestGroupUpdate,
    enrollment_in_service,
)
from central.schools.models import School

# P5.1: what the service may be. Each kind's name for people is the message group.kind.<kind>.
ALLOWED = ("homework", "reading", "sports", "arts", "science", "games", "outdoor", "club", "interest", "one_to_one")
# P5.2 / P8.2: what it may never be, whatever the group is called: the kind, and the Chinese words
# that name it when typed as a category (its name for people is group.kind.<kind>).
FORBIDDEN = {
    "subject_teaching": "学科教学",
    "new_lessons": "上新课",
    "collective_tutoring": "集体补课",
}
SEATED = ("approved", "active")  # enrollments that hold a seat against capacity


def check_category(category: str) -> None:
    key = category.strip().lower()
    if key in FORBIDDEN or category in FORBIDDEN.values():
        kind = key if key in FORBIDDEN else next(k for k, words in FORBIDDEN.items() if words == category)
        raise Invalid("group.forbidden", what=Msg(f"group.kind.{kind}"))
    if key not in ALLOWED:
        raise Invalid("group.category", category=category, allowed=", ".join(ALLOWED))


def check_content(name: str, description: str) -> None:
    """P5.2: refuse a group whose name or description says it is tutoring or teaching, naming the words."""
    words = tutoring_words(name)  # apart: no word made across the two
    words += [w for w in tutoring_words(description) if w not in words]
    if words:
        raise Invalid("group.tutoring", words=Items(tuple(words)))


def _check_staff(session: Session, school: School, staff_id: int | None) -> None:
    if staff_id is not None:
        person = staff_service.get_staff(session, school=school, staff_id=staff_id)
        staff_service.check_may_serve(session, person)


def _check_start(session: Session, school: School, grades: list[str], start, settings: Settings) -> None:
    """P3.3, checked early against every dismissal time known for the grades; plan_sessions checks each day."""
    if start is None:
        return
    stmt = select(DismissalTime).where(DismissalTime.school_id == school.id, col(DismissalTime.grade).in_(grades))
    for row in session.exec(stmt):
        if start < row.dismissal:
            raise Invalid(
                "group.before_dismissal", grade=row.grade, season=Msg(f"pub.season.{row.season}"),
                dismissal=row.dismissal.strftime("%H:%M"), start=start.strftime("%H:%M"),
            )


def latest_end(dismissal: datetime, settings: Settings) -> datetime:
    """P3.2: the service ends at most ``max_periods`` periods of ``period_minutes`` after dismissal."""
    return dismissal + timedelta(minutes=settings.period_minutes * settings.max_periods)


def _check_end(session: Session, school: School, grades: list[str], start: time | None, periods: int,
               settings: Settings) -> None:
    """P3.2, checked early against each season whose dismissal times are known for every grade; the
    session starts at the latest of them (P3.3), so that one sets the latest end. plan_sessions checks
    each day. Without a start time a session starts at dismissal and ``periods`` is already capped."""
    if start is None:
        return
    stmt = select(DismissalTime).where(DismissalTime.school_id == school.id, col(DismissalTime.grade).in_(grades))
    by_season: dict[str, list[DismissalTime]] = {}
    for row in session.exec(stmt):
        by_season.setdefault(row.season, []).append(row)
    day = date(2000, 1, 3)  # any day: only the clock times are compared
    end = datetime.combine(day, start) + timedelta(minutes=settings.period_minutes * periods)
    # Each season's group dismissal is the latest of its grades; the earliest of those is the tightest limit.
    lasts = sorted((max(rows, key=lambda r: r.dismissal) for rows in by_season.values() if len(rows) == len(grades)),
                   key=lambda r: r.dismissal)
    for last in lasts:  # a season with a grade missing is refused by planning anyway
        latest = latest_end(datetime.combine(day, last.dismissal), settings)
        if end > latest:
            raise Invalid(
                "group.after_limit", grade=last.grade, season=Msg(f"pub.season.{last.season}"),
                dismissal=last.dismissal.strftime("%H:%M"), latest=latest.strftime("%H:%M"),
                periods=settings.max_periods, start=start.strftime("%H:%M"), end=end.strftime("%H:%M"),
            )


def create_group(
    session: Session, *, school: School, data: InterestGroupCreate, actor: str, settings: Settings
) -> InterestGroup:
    check_category(data.category)
    check_content(data.name, data.description)
    weekdays = sorted(set(data.weekdays))
    if not weekdays or len(weekdays) != len(data.weekdays) or not all(1 <= d <= 7 for d in weekdays):
        raise Invalid("group.weekdays")
    if data.periods > settings.max_periods:
        raise Invalid("group.periods", max=settings.max_periods, periods=data.periods)
    if not all(g.strip() for g in data.grades):
        # A group with no grade has no dismissal time, and planning the school's sessions failed on it.
        raise Invalid("group.grades")
    grades = sorted({g.strip() for g in data.grades})
    if session.exec(select(InterestGroup).where(InterestGroup.school_id == school.id, InterestGroup.name == data.name)).first():
        raise Conflict("group.name_taken", name=data.name)
    _check_staff(session, school, data.staff_id)
    _check_start(session, school, grades, data.start_time, settings)
    _check_end(session, school, grades, data.start_time, data.periods, settings)
    group = InterestGroup.model_validate(
        data,
        update={"school_id": school.id, "category": data.category.strip().lower(), "grades": grades,
                "weekdays": weekdays, "created_by": actor},
    )
    session.add(group)
    session.commit()
    session.refresh(group)
    return group


def get_group(session: Session, *, school: School, group_id: int) -> InterestGroup:
    group = session.get(InterestGroup, group_id)
    if group is None or group.school_id != school.id:
        raise Missing("group.missing", id=group_id)
    return group


def seats_taken(session: Session, group_id: int, day: date | None = None) -> int:
    """Places held on ``day`` (default: the school's today): approved and active enrollments, and a
    child withdrawn as of a later date, who is still in the group until then (P7.4)."""
    if day is None:
        day = clock.local_today(session.get(School, session.get(InterestGroup, group_id).school_id))
    stmt = select(func.count()).select_from(Enrollment).where(
        Enrollment.group_id == group_id, sa.or_(col(Enrollment.state).in_(SEATED), enrollment_in_service(day))
    )
    return session.exec(stmt).one()


def check_seat(session: Session, group: InterestGroup) -> None:
    """Raise Conflict when the group has no free place (P4.1: a group has a capacity)."""
    if seats_taken(session, group.id) >= group.capacity:
        raise Conflict("group.full", name=group.name, capacity=group.capacity)


def update_group(
    session: Session, *, school: School, group_id: int, data: InterestGroupUpdate, actor: str
) -> InterestGroup:
    group = get_group(session, school=school, group_id=group_id)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("name") is not None or changes.get("description") is not None:
        check_content(changes.get("name") or group.name,
                      group.description if changes.get("description") is None else changes["description"])
    if changes.get("capacity") is not None:
        taken = seats_taken(session, group.id)
        if changes["capacity"] < taken:
            raise Conflict("group.capacity_below", name=group.name, taken=taken, capacity=changes["capacity"])
    if "staff_id" in changes:
        _check_staff(session, school, changes["staff_id"])
    if changes.get("name") and changes["name"] != group.name:
        clash = select(InterestGroup).where(InterestGroup.school_id == school.id, InterestGroup.name == changes["name"])
        if session.exec(clash).first():
            raise Conflict("group.name_taken", name=changes["name"])
    group.sqlmodel_update({k: v for k, v in changes.items() if v is not None or k == "staff_id"})
    session.add(group)
    record(session, RosterChanged(school.id))  # the name and place travel with the group's sessions
    session.commit()
    session.refresh(group)
    return group


def group_public(session: Session, group: InterestGroup) -> InterestGroupPublic:
    return InterestGroupPublic.model_validate(group, update={"enrolled": seats_taken(session, group.id)})


def list_groups(session: Session, *, school: School) -> list[InterestGroupPublic]:
    rows = session.exec(select(InterestGroup).where(InterestGroup.school_id == school.id).order_by(InterestGroup.id))
    return [group_public(session, g) for g in rows]
