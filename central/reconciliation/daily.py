"""A day's reconciliation (issue 15): for each session, who was expected, who came, who left, and who
is **unresolved** — checked in with no departure recorded, a safety item — or present without being
expected (admitted by a guard's override), a review item.

``reconcile_session`` is the rule, pure: what the gates recorded for one session, in time order, and
who was expected. ``reconcile_day`` reads one school day (the school's date) and applies it to each
session of the day. Departures are the child's, whichever session they name: a child leaves once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session, col, select

from central.core import clock
from central.core.errors import Invalid
from central.kiosks.models import Event
from central.programme.models import CareSession, Enrollment, InterestGroup, enrollment_in_service
from central.schools.models import School, Student

ARRIVALS = ("checkin", "override")  # an override admits a child the rules refused (a guard's reason)
DEPARTURES = ("pickup", "self_dismiss", "checkout")


@dataclass(frozen=True)
class Tap:
    """One recorded event about a child, as the rule needs it."""

    at: datetime
    kind: str
    student: str
    session: str | None = None


@dataclass
class SessionResult:
    session: str
    group: str = ""
    expected: list[str] = field(default_factory=list)
    checked_in: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)  # expected, never checked in (excusing is not recorded yet)
    gone: list[str] = field(default_factory=list)  # checked in, then picked up or left alone
    unresolved: list[str] = field(default_factory=list)  # checked in, no departure after: a safety item
    unexpected: list[str] = field(default_factory=list)  # checked in without being expected: a review item


def reconcile_session(session_id: str, expected: Iterable[str], taps: Iterable[Tap]) -> SessionResult:
    """The rule. A child is in from an arrival for this session until a departure (any session's)
    later that day; the last of these decides whether they are gone or unresolved."""
    expected = set(expected)
    arrived: set[str] = set()
    inside: dict[str, bool] = {}
    for tap in sorted(taps, key=lambda tap: tap.at):
        if tap.kind in ARRIVALS and tap.session == session_id:
            arrived.add(tap.student)
            inside[tap.student] = True
        elif tap.kind in DEPARTURES and tap.student in inside:
            inside[tap.student] = False
    return SessionResult(
        session=session_id,
        expected=sorted(expected),
        checked_in=sorted(arrived),
        absent=sorted(expected - arrived),
        gone=sorted(s for s, now_in in inside.items() if not now_in),
        unresolved=sorted(s for s, now_in in inside.items() if now_in),
        unexpected=sorted(arrived - expected),
    )


def reconcile_day(session: Session, *, school: School, day: date) -> dict[str, Any]:
    """Every session of the school on ``day`` (its own date), reconciled."""
    if not date(2000, 1, 1) <= day <= date(2100, 12, 31):  # a day of no school year (and no datetime arithmetic)
        raise Invalid("reconcile.day", day=day.isoformat())
    zone = clock.zone(school)
    start = datetime.combine(day, time(0), zone)
    rows = session.exec(
        select(CareSession, InterestGroup.name)
        .join(InterestGroup, col(InterestGroup.id) == CareSession.group_id)
        .where(CareSession.school_id == school.id, CareSession.day == day)
        .order_by(col(CareSession.starts_at), col(CareSession.id))
    ).all()
    events = session.exec(
        select(Event).where(
            Event.school_id == school.id, col(Event.at) >= start, col(Event.at) < start + timedelta(days=1),
            col(Event.kind).in_(ARRIVALS + DEPARTURES), col(Event.student).is_not(None),
        )
    ).all()
    taps = [Tap(clock.as_utc(e.at), e.kind, e.student, e.session) for e in events]
    sessions = []
    for care, group in rows:
        expected = session.exec(
            select(Student.student_no)
            .join(Enrollment, col(Enrollment.student_id) == Student.id)
            .where(Enrollment.group_id == care.group_id, enrollment_in_service(day))
        ).all()
        result = reconcile_session(str(care.id), expected, taps)
        result.group = group
        sessions.append(asdict(result))
    return {
        "school": school.code,
        "day": day.isoformat(),
        "sessions": sessions,
        "unresolved": sum(len(s["unresolved"]) for s in sessions),  # safety items
        "unexpected": sum(len(s["unexpected"]) for s in sessions),  # review items
    }
