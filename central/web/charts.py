"""``/charts/attendance``: attendance by day over the term, for the school or one group, as a chart drawn on
the server (SVG in the page: nothing to load, prints as it shows), with the same figures as a table.

Each service day of the term up to today (the days with a care session of the groups shown): the children
expected (an enrollment in service that day) and those who checked in for their session, as
``central.reconciliation.daily.reconcile_day`` counts them. The term is the school's term holding today,
else the last ``WEEKS`` weeks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session, col, select

from central.accounts import access as accounts
from central.accounts.access import Principal, Role
from central.core import clock
from central.programme.models import CareSession, InterestGroup, Term
from central.reconciliation.daily import reconcile_day
from central.schools.models import School
from central.web.pages import DbDep, PageError, caller, render, school_of

router = APIRouter(include_in_schema=False)
VIEWERS = frozenset({Role.SCHOOL_ADMIN, Role.DISTRICT, Role.TEACHER})
WEEKS = 8
#: the drawing's size (SVG user units; it scales to the page's width)
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 260, 36, 28, 12


@dataclass
class Day:
    day: date
    expected: int
    attended: int


@dataclass
class Bar:
    day: Day
    x: float
    width: float
    expected_y: float
    expected_h: float
    attended_y: float
    attended_h: float
    label: bool


def _groups(db: Session, principal: Principal, school: School) -> list[InterestGroup]:
    stmt = select(InterestGroup).where(InterestGroup.school_id == school.id).order_by(col(InterestGroup.name))
    if principal.role is Role.TEACHER:
        stmt = stmt.where(col(InterestGroup.id).in_(accounts.teacher_group_ids(principal)))
    return list(db.exec(stmt))


def _span(db: Session, school: School, today: date) -> tuple[date, date, str | None]:
    term = db.exec(select(Term).where(Term.school_id == school.id, Term.starts_on <= today, Term.ends_on >= today)
                   .order_by(col(Term.starts_on).desc())).first()
    if term is not None:
        return term.starts_on, today, term.name
    return today - timedelta(weeks=WEEKS), today, None


def attendance(db: Session, *, school: School, group_ids: list[int], start: date, end: date) -> list[Day]:
    """Per service day from ``start`` to ``end``: (expected, checked in) over the sessions of ``group_ids``."""
    sessions = db.exec(select(CareSession.id, CareSession.day).where(
        CareSession.school_id == school.id, col(CareSession.group_id).in_(group_ids), CareSession.day >= start, CareSession.day <= end))
    by_day: dict[date, set[str]] = {}
    for session_id, day in sessions:
        by_day.setdefault(day, set()).add(str(session_id))
    days = []
    for day in sorted(by_day):
        result = reconcile_day(db, school=school, day=day)
        shown = [s for s in result["sessions"] if s["session"] in by_day[day]]
        days.append(Day(day, sum(len(s["expected"]) for s in shown), sum(len(set(s["checked_in"]) & set(s["expected"])) for s in shown)))
    return days


def bars(days: list[Day]) -> tuple[list[Bar], int, list[tuple[float, int]]]:
    """The bars' geometry, the scale's top, and the scale's ticks (y, value)."""
    top = max([d.expected for d in days] + [d.attended for d in days] + [1])
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(days), 1)
    every = max(1, round(len(days) / 10))  # about ten dates under the axis
    out = []
    for i, d in enumerate(days):
        eh, ah = plot_h * d.expected / top, plot_h * d.attended / top
        x = LEFT + i * step
        out.append(Bar(d, round(x + step * 0.1, 1), round(step * 0.8, 1), round(TOP + plot_h - eh, 1), round(eh, 1),
                       round(TOP + plot_h - ah, 1), round(ah, 1), i % every == 0))
    ticks = [(round(TOP + plot_h - plot_h * v / top, 1), v) for v in sorted({0, top // 2, top})]
    return out, top, ticks


@router.get("/charts/attendance")
def attendance_chart(
    request: Request, db: DbDep, school: Annotated[str | None, Query(max_length=64)] = None,
    group: Annotated[int | None, Query(ge=1, le=2**31)] = None,
) -> HTMLResponse:
    principal = caller(request, db, VIEWERS)
    row = school_of(db, principal, school)
    groups = _groups(db, principal, row)
    if group is not None and group not in {g.id for g in groups}:
        raise PageError(404, "web.not_found")  # another school's group, or not the teacher's
    shown = [g.id for g in groups if group is None or g.id == group]
    today = clock.local_today(row)
    start, end, term = _span(db, row, today)
    days = attendance(db, school=row, group_ids=shown, start=start, end=end) if shown else []
    drawn, top, ticks = bars(days)
    title = next((g.name for g in groups if g.id == group), row.name)
    return render(request, "attendance.html", principal=principal, school=row, groups=groups, group=group, days=days, bars=drawn,
                  ticks=ticks, top=top, term=term, start=start, end=end, title=title, width=WIDTH, height=HEIGHT, left=LEFT,
                  bottom=HEIGHT - BOTTOM, expected=sum(d.expected for d in days), attended=sum(d.attended for d in days))
