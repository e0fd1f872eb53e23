"""The school calendar and sessions (P3): terms, holidays and make-up days, dismissal times by
season, sessions in 40-minute periods after dismissal, the duty schedule and the staff ratio.

Dates are the school's local dates; a session's start and end are stored in UTC and shown in the
school's zone. Sessions are materialised for school days only (P3.1): a weekday inside a term that
is not a holiday, or a make-up day (调休).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from central.core import clock
from central.core.config import Settings
from central.core.errors import Conflict, Invalid, Missing
from central.core.events import RosterChanged, record
from central.programme import groups as group_service
from central.programme import staff as staff_service
from central.programme.models import (
    CalendarDay,
    CalendarDayCreate,
    CareSession,
    CareSessionPublic,
    DismissalTime,
    DismissalTimeCreate,
    DutyAssignment,
    Enrollment,
    InterestGroup,
    Term,
    TermCreate,
    enrollment_in_service,
)
from central.schools.models import School

log = logging.getLogger(__name__)

SEASONS = ("summer", "winter")
DAY_KINDS = ("holiday", "makeup")
MAX_PLAN_DAYS = 366


# --- terms, calendar days, dismissal times -----------------------------------------------------


def add_term(session: Session, *, school: School, data: TermCreate, actor: str) -> Term:
    if data.ends_on < data.starts_on:
        raise Invalid("term.dates", starts_on=data.starts_on, ends_on=data.ends_on)
    for switch in (data.summer_from, data.winter_from):
        if switch is not None and not data.starts_on <= switch <= data.ends_on:
            raise Invalid("term.switch_outside", day=switch, starts_on=data.starts_on, ends_on=data.ends_on)
    for other in list_terms(session, school=school):
        if other.starts_on <= data.ends_on and data.starts_on <= other.ends_on:
            raise Conflict("term.overlap", name=other.name)
    term = Term.model_validate(data, update={"school_id": school.id, "created_by": actor})
    session.add(term)
    session.commit()
    session.refresh(term)
    return term


def list_terms(session: Session, *, school: School) -> list[Term]:
    return list(session.exec(select(Term).where(Term.school_id == school.id).order_by(Term.starts_on)))


def set_calendar_day(session: Session, *, school: School, data: CalendarDayCreate, actor: str) -> tuple[CalendarDay, int]:
    """Mark a holiday or a make-up day (replacing what the day was). Returns the row and the number of
    planned sessions a holiday removed (P3.1: no session on a day that is not a school day)."""
    if data.kind not in DAY_KINDS:
        raise Invalid("calendar.kind", kind=data.kind)
    if data.kind == "makeup" and data.day.isoweekday() < 6:
        raise Invalid("calendar.makeup_weekday", day=data.day)
    row = session.exec(select(CalendarDay).where(CalendarDay.school_id == school.id, CalendarDay.day == data.day)).first()
    row = row or CalendarDay(school_id=school.id, day=data.day, kind=data.kind, created_by=actor)
    row.sqlmodel_update(data.model_dump())
    row.created_by, row.created_at = actor, clock.utcnow()
    session.add(row)
    removed = 0
    if data.kind == "holiday":
        removed = _drop_sessions(session, school, [data.day])
    if removed:
        record(session, RosterChanged(school.id))  # the day's sessions leave the kiosks
    session.commit()
    session.refresh(row)
    return row, removed


def delete_calendar_day(session: Session, *, school: School, day: date, actor: str) -> int:
    """Forget a holiday or make-up day; returns the sessions removed (those of a make-up day)."""
    row = session.exec(select(CalendarDay).where(CalendarDay.school_id == school.id, CalendarDay.day == day)).first()
    if row is None:
        raise Missing("calendar.missing", day=day)
    removed = _drop_sessions(session, school, [day]) if row.kind == "makeup" else 0
    session.delete(row)
    if removed:
        record(session, RosterChanged(school.id))
    session.commit()
    return removed


def list_calendar(session: Session, *, school: School) -> list[CalendarDay]:
    return list(session.exec(select(CalendarDay).where(CalendarDay.school_id == school.id).order_by(CalendarDay.day)))


def _drop_sessions(session: Session, school: School, days: list[date]) -> int:
    found = session.exec(
        select(CareSession).where(CareSession.school_id == school.id, col(CareSession.day).in_(days))
    ).all()
    for row in found:
        for duty in session.exec(select(DutyAssignment).where(DutyAssignment.session_id == row.id)):
            session.delete(duty)
        session.flush()
        session.delete(row)
    return len(found)


def set_dismissal(session: Session, *, school: School, data: DismissalTimeCreate, actor: str) -> DismissalTime:
    if data.season not in SEASONS:
        raise Invalid("dismissal.season", season=data.season)
    stmt = select(DismissalTime).where(
        DismissalTime.school_id == school.id, DismissalTime.grade == data.grade, DismissalTime.season == data.season
    )
    row = session.exec(stmt).first() or DismissalTime.model_validate(data, update={"school_id": school.id, "updated_by": actor})
    row.dismissal, row.updated_by, row.updated_at = data.dismissal, actor, clock.utcnow()
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def list_dismissal(session: Session, *, school: School) -> list[DismissalTime]:
    stmt = select(DismissalTime).where(DismissalTime.school_id == school.id)
    return sorted(session.exec(stmt), key=lambda r: (r.grade, r.season))


# --- what a day is -------------------------------------------------------------------------------


def season_of(day: date, term: Term | None, settings: Settings) -> str:
    """P3.2: summer or winter timetable on ``day``. A term's own switch dates win over the defaults."""
    if term is not None and (term.summer_from or term.winter_from):
        # Inside one term there is at most one switch of each kind: the latest one passed decides.
        passed = [(d, s) for d, s in ((term.summer_from, "summer"), (term.winter_from, "winter")) if d and d <= day]
        if passed:
            return max(passed)[1]
        before = [(d, s) for d, s in ((term.summer_from, "summer"), (term.winter_from, "winter")) if d]
        return "winter" if min(before)[1] == "summer" else "summer"
    md = day.strftime("%m-%d")
    summer, winter = settings.summer_from, settings.winter_from
    in_summer = summer <= md < winter if summer < winter else not (winter <= md < summer)
    return "summer" if in_summer else "winter"


class Calendar:
    """The school's terms and marked days, loaded once to answer "is this a school day?" for a range."""

    def __init__(self, session: Session, school: School) -> None:
        self.terms = list_terms(session, school=school)
        self.days = {row.day: row for row in list_calendar(session, school=school)}

    def term(self, day: date) -> Term | None:
        return next((t for t in self.terms if t.starts_on <= day <= t.ends_on), None)

    def weekday(self, day: date) -> int | None:
        """The ISO weekday whose timetable runs on ``day``, 0 for "every group", None if no school."""
        if self.term(day) is None:
            return None
        marked = self.days.get(day)
        if marked is not None and marked.kind == "holiday":
            return None
        if marked is not None and marked.kind == "makeup":
            return marked.follows_weekday or 0
        return day.isoweekday() if day.isoweekday() <= 5 else None


def dismissal_at(session: Session, *, school: School, grades: list[str], season: str) -> tuple[time, str]:
    """The latest regular dismissal among ``grades`` in ``season``, and the grade it belongs to."""
    stmt = select(DismissalTime).where(DismissalTime.school_id == school.id, DismissalTime.season == season)
    times = {row.grade: row.dismissal for row in session.exec(stmt)}
    for grade in grades:
        if grade not in times:
            raise Invalid("dismissal.missing", grade=grade, season=season)
    grade = max(grades, key=lambda g: times[g])
    return times[grade], grade


# --- sessions --------------------------------------------------------------------------------------


def plan_sessions(
    session: Session, *, school: School, start: date, end: date, group_id: int | None = None, actor: str,
    settings: Settings,
) -> list[CareSession]:
    """Materialise the sessions of ``start``..``end`` (inclusive) for one group or all: one per school
    day the group meets; days already planned are kept. All or nothing: a day that would start before
    dismissal (P3.3) or end later than dismissal plus ``max_periods`` periods (P3.2) refuses the whole plan."""
    days = (end - start).days + 1
    if not 1 <= days <= MAX_PLAN_DAYS:
        raise Invalid("plan.range", max=MAX_PLAN_DAYS, start=start, end=end)
    if group_id is not None:
        found = [group_service.get_group(session, school=school, group_id=group_id)]
    else:
        found = list(session.exec(select(InterestGroup).where(InterestGroup.school_id == school.id).order_by(InterestGroup.id)))
    calendar = Calendar(session, school)
    tz = clock.zone(school)
    made: list[CareSession] = []
    for group in found:
        if not group.grades:
            # Stored before blank grades were refused: it cannot be planned, and must not stop the others.
            if group_id is not None:
                raise Invalid("plan.no_grades", group=group.name)
            log.warning("group %s (%s) of school %s names no grades: left out of the plan", group.id, group.name, school.code)
            continue
        have = set(session.exec(select(CareSession.day).where(CareSession.group_id == group.id, CareSession.day >= start,
                                                              CareSession.day <= end)))
        in_charge = None
        if group.staff_id is not None:
            in_charge = staff_service.get_staff(session, school=school, staff_id=group.staff_id)
            if not staff_service.may_serve(session, in_charge):
                in_charge = None  # left off the duty schedule: the ratio shows the gap (P6.2, P9.2)
        for offset in range(days):
            day = start + timedelta(days=offset)
            weekday = calendar.weekday(day)
            if weekday is None or (weekday and weekday not in group.weekdays) or day in have:
                continue
            season = season_of(day, calendar.term(day), settings)
            dismissal, grade = dismissal_at(session, school=school, grades=group.grades, season=season)
            begin = group.start_time or dismissal
            if begin < dismissal:
                session.rollback()
                raise Invalid("plan.before_dismissal", group=group.name, day=day, start=begin.strftime("%H:%M"),
                              grade=grade, dismissal=dismissal.strftime("%H:%M"))
            starts = datetime.combine(day, begin, tz).astimezone(UTC)  # stored in UTC, shown in the school's zone
            ends = starts + timedelta(minutes=settings.period_minutes * group.periods)
            latest = group_service.latest_end(datetime.combine(day, dismissal, tz), settings)
            if ends > latest:  # P3.2: a start time set later than dismissal must not push the end past it
                session.rollback()
                raise Invalid("plan.after_limit", group=group.name, day=day, end=ends.astimezone(tz).strftime("%H:%M"),
                              latest=latest.strftime("%H:%M"), grade=grade, dismissal=dismissal.strftime("%H:%M"),
                              periods=settings.max_periods)
            row = CareSession(
                school_id=school.id, group_id=group.id, day=day, place=group.place, created_by=actor,
                starts_at=starts, ends_at=ends,
            )
            session.add(row)
            session.flush()
            if in_charge is not None and overlapping_duty(session, staff_id=in_charge.id, row=row) is None:
                # One person, one place at a time: in charge of two groups that meet at once, they are put
                # on duty in the first planned only; the other shows no staff and the ratio flag (P9.2).
                session.add(DutyAssignment(session_id=row.id, staff_id=in_charge.id, assigned_by=actor))
                session.flush()
            made.append(row)
    if made:
        record(session, RosterChanged(school.id))  # coming sessions travel in the roster
    session.commit()
    for row in made:
        session.refresh(row)
    return made


def get_session(session: Session, *, school: School, session_id: int) -> CareSession:
    row = session.get(CareSession, session_id)
    if row is None or row.school_id != school.id:
        raise Missing("session.missing", id=session_id)
    return row


def sessions_between(session: Session, *, school: School, start: date, end: date, group_id: int | None = None) -> list[CareSession]:
    stmt = select(CareSession).where(CareSession.school_id == school.id, CareSession.day >= start, CareSession.day <= end)
    if group_id is not None:
        stmt = stmt.where(CareSession.group_id == group_id)
    return list(session.exec(stmt.order_by(CareSession.day, CareSession.starts_at, CareSession.id)))


def active_counts(session: Session, group_ids: list[int], day: date) -> Counter:
    """Students in each group's service on ``day``: a child withdrawn as of a later date is still
    expected until that date, and not from it (P7.4)."""
    if not group_ids:
        return Counter()
    stmt = (
        select(Enrollment.group_id, func.count(sa.distinct(Enrollment.student_id)))
        .where(col(Enrollment.group_id).in_(group_ids), enrollment_in_service(day))
        .group_by(Enrollment.group_id)
    )
    return Counter(dict(session.exec(stmt).all()))


def over_ratio(expected: int, staff_on_duty: int, settings: Settings) -> bool:
    """P9.2: more expected students than ``ratio_max`` per staff member on duty (none on duty counts)."""
    return expected > settings.ratio_max * staff_on_duty


def sessions_public(session: Session, *, school: School, rows: list[CareSession], settings: Settings) -> list[CareSessionPublic]:
    tz = clock.zone(school)
    ids = [r.id for r in rows]
    duty: dict[int, list[int]] = {}
    if ids:
        for d in session.exec(select(DutyAssignment).where(col(DutyAssignment.session_id).in_(ids)).order_by(DutyAssignment.staff_id)):
            duty.setdefault(d.session_id, []).append(d.staff_id)
    names = {g.id: g.name for g in session.exec(select(InterestGroup).where(InterestGroup.school_id == school.id))}
    groups = list({r.group_id for r in rows})
    expected = {day: active_counts(session, groups, day) for day in {r.day for r in rows}}  # each session on its own date
    return [
        CareSessionPublic(
            id=r.id, group_id=r.group_id, group=names.get(r.group_id, ""), day=r.day, place=r.place,
            starts_at=clock.as_utc(r.starts_at).astimezone(tz), ends_at=clock.as_utc(r.ends_at).astimezone(tz),
            staff=duty.get(r.id, []), expected=expected[r.day][r.group_id],
            over_ratio=over_ratio(expected[r.day][r.group_id], len(duty.get(r.id, [])), settings),
        )
        for r in rows
    ]


def overlapping_duty(session: Session, *, staff_id: int, row: CareSession) -> CareSession | None:
    """Another session of the same school and day, overlapping ``row`` in time, that this staff member
    is on duty in (the earliest), or None. Sessions that only touch (one ends as the other starts) do not
    overlap."""
    stmt = (
        select(CareSession)
        .join(DutyAssignment, col(DutyAssignment.session_id) == col(CareSession.id))
        .where(DutyAssignment.staff_id == staff_id, CareSession.school_id == row.school_id, CareSession.day == row.day,
               CareSession.id != row.id)
        .order_by(CareSession.starts_at, CareSession.id)
    )
    starts, ends = clock.as_utc(row.starts_at), clock.as_utc(row.ends_at)
    return next((o for o in session.exec(stmt) if clock.as_utc(o.starts_at) < ends and starts < clock.as_utc(o.ends_at)), None)


def assign_duty(session: Session, *, school: School, session_id: int, staff_id: int, actor: str) -> DutyAssignment:
    """Put a staff member on duty at a session (P6.3): one who may serve (P6.2), and who is not on duty
    in another session of the school at the same time."""
    row = get_session(session, school=school, session_id=session_id)
    person = staff_service.get_staff(session, school=school, staff_id=staff_id)
    staff_service.check_may_serve(session, person)  # P6.2
    stmt = select(DutyAssignment).where(DutyAssignment.session_id == row.id, DutyAssignment.staff_id == person.id)
    duty = session.exec(stmt).first()
    if duty is None:
        other = overlapping_duty(session, staff_id=person.id, row=row)
        if other is not None:
            tz = clock.zone(school)
            group = session.get(InterestGroup, other.group_id)
            raise Conflict("duty.overlap", name=person.name, group=group.name if group else "", id=other.id,
                           day=other.day, start=clock.as_utc(other.starts_at).astimezone(tz).strftime("%H:%M"),
                           end=clock.as_utc(other.ends_at).astimezone(tz).strftime("%H:%M"))
        duty = DutyAssignment(session_id=row.id, staff_id=person.id, assigned_by=actor)
        session.add(duty)
        record(session, RosterChanged(school.id))
        session.commit()
        session.refresh(duty)
    return duty


def unassign_duty(session: Session, *, school: School, session_id: int, staff_id: int, actor: str) -> None:
    row = get_session(session, school=school, session_id=session_id)
    stmt = select(DutyAssignment).where(DutyAssignment.session_id == row.id, DutyAssignment.staff_id == staff_id)
    duty = session.exec(stmt).first()
    if duty is None:
        raise Missing("duty.missing")
    session.delete(duty)
    record(session, RosterChanged(school.id))
    session.commit()
