"""The live roster of a day's sessions: who is expected, on site, gone (with whom), absent (excused or
not), still on site past the end plus grace; staff on duty and present against children on site (P9.2).

Read from the school's stored events (the feed every gate follows), the sessions and their duty
schedule, the enrollments and the excused absences; the same for /teacher and /rollcall.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlmodel import Session, col, select

from central.accounts.access import Principal, Role
from central.core import clock
from central.core.config import Settings
from central.kiosks.models import Event
from central.programme import excuses
from central.programme.models import CareSession, DutyAssignment, Enrollment, InterestGroup, Staff, enrollment_in_service
from central.schools.models import Guardian, GuardianLink, Kiosk, School, SchoolClass, Student

#: the events that move a child or a member of staff on or off the site
MOVES = ("checkin", "checkout", "pickup", "self_dismiss", "staff_on", "staff_off")
GONE = ("checkout", "pickup", "self_dismiss")


@dataclass
class Child:
    student_no: str
    name: str
    class_name: str
    state: str = "expected"  # expected (not yet in), on_site, gone, absent
    since: datetime | None = None  # on site since / gone at (school's zone)
    gate: str = ""
    kind: str = ""  # how they left: pickup, self_dismiss, checkout
    by: str = ""  # who took the child
    relation: str = ""
    excused: bool = False
    excuse_note: str = ""
    overdue: bool = False  # still on site past the end plus the pickup grace


@dataclass
class SessionRoster:
    id: int
    group: str
    place: str
    starts_at: datetime  # school's zone
    ends_at: datetime
    children: list[Child] = field(default_factory=list)
    staff_on_duty: list[str] = field(default_factory=list)
    staff_present: list[str] = field(default_factory=list)
    ratio_max: int = 30

    def count(self, state: str) -> int:
        return sum(1 for c in self.children if c.state == state)

    @property
    def on_site(self) -> int:
        return self.count("on_site")

    @property
    def overdue(self) -> int:
        return sum(1 for c in self.children if c.overdue)

    @property
    def over_ratio(self) -> bool:
        """P9.2: more children on site than ``ratio_max`` per member of staff present (none present counts)."""
        return self.on_site > self.ratio_max * len(self.staff_present)


def day_bounds(school: School, day: date) -> tuple[datetime, datetime]:
    """The UTC instants a school's local ``day`` starts and ends at."""
    tz = clock.zone(school)
    start = datetime.combine(day, time(0), tz)
    return clock.as_utc(start), clock.as_utc(start + timedelta(days=1))


def sessions_for(session: Session, *, principal: Principal, school: School, day: date) -> list[CareSession]:
    """The day's sessions the caller looks after: a teacher's groups; every group for the school's admin
    and the district."""
    stmt = select(CareSession).where(CareSession.school_id == school.id, CareSession.day == day)
    if principal.role is Role.TEACHER:
        mine = select(InterestGroup.id).where(InterestGroup.school_id == school.id, InterestGroup.staff_id == principal.staff_id)
        stmt = stmt.where(col(CareSession.group_id).in_(mine))
    elif principal.role not in (Role.SCHOOL_ADMIN, Role.DISTRICT):
        return []
    return list(session.exec(stmt.order_by(CareSession.starts_at, CareSession.id)))


@dataclass
class Moves:
    """A school day's moves as the gates recorded them: each child's last (and when they came in last),
    and which staff (``st{id}``) are in."""

    last: dict[str, tuple[Event, str]] = field(default_factory=dict)
    first_in: dict[str, tuple[Event, str]] = field(default_factory=dict)
    staff_in: dict[str, bool] = field(default_factory=dict)

    def on_site(self) -> dict[str, tuple[Event, str]]:
        """Children on site now: student number -> (the check-in they are here since, its gate)."""
        return {no: self.first_in.get(no, seen) for no, seen in self.last.items() if seen[0].kind == "checkin"}


def day_moves(session: Session, *, school: School, day: date) -> Moves:
    """Every move of the school's ``day`` at any gate, in the order they happened (then as the feed stored them)."""
    start, end = day_bounds(school, day)
    moves = Moves()
    rows = session.exec(
        select(Event, Kiosk.code).join(Kiosk, col(Kiosk.id) == Event.kiosk_id)
        .where(Event.school_id == school.id, col(Event.kind).in_(MOVES), Event.at >= start, Event.at < end)
        .order_by(col(Event.at), col(Event.feed_pos))
    )
    for event, gate in rows:
        if event.kind in ("staff_on", "staff_off") and event.staff:
            moves.staff_in[event.staff] = event.kind == "staff_on"
        elif event.student:
            if event.kind == "checkin" and (event.student not in moves.last or moves.last[event.student][0].kind in GONE):
                moves.first_in[event.student] = (event, gate)  # back in after leaving: on site since then
            moves.last[event.student] = (event, gate)
    return moves


def build(session: Session, *, school: School, rows: list[CareSession], settings: Settings, now: datetime) -> list[SessionRoster]:
    """The live roster of each session of ``rows`` (one school, one day) as of ``now``."""
    if not rows:
        return []
    day = rows[0].day
    tz = clock.zone(school)
    groups = {g.id: g for g in session.exec(select(InterestGroup).where(InterestGroup.school_id == school.id))}
    members: dict[int, set[int]] = defaultdict(set)
    stmt = select(Enrollment.group_id, Enrollment.student_id).where(
        col(Enrollment.group_id).in_([r.group_id for r in rows]), enrollment_in_service(day)
    )
    for group_id, student_id in session.exec(stmt):
        members[group_id].add(student_id)
    ids = sorted(set().union(*members.values())) if members else []
    students = {s.id: s for s in session.exec(select(Student).where(col(Student.id).in_(ids)))} if ids else {}
    classes = {c.id: f"{c.grade}{c.name}" for c in session.exec(select(SchoolClass).where(SchoolClass.school_id == school.id))}
    excused = excuses.excused_on(session, school=school, day=day, student_ids=ids)
    staff_names = {s.id: s.name for s in session.exec(select(Staff).where(Staff.school_id == school.id))}
    duty: dict[int, list[int]] = defaultdict(list)
    for d in session.exec(select(DutyAssignment).where(col(DutyAssignment.session_id).in_([r.id for r in rows])).order_by(DutyAssignment.staff_id)):
        duty[d.session_id].append(d.staff_id)

    moves = day_moves(session, school=school, day=day)
    last, first_in, staff_in = moves.last, moves.first_in, moves.staff_in
    found = takers(session, [e.guardian for e, _ in last.values() if e.kind == "pickup" and e.guardian])

    out = []
    for row in rows:
        starts, ends = clock.as_utc(row.starts_at), clock.as_utc(row.ends_at)
        roster = SessionRoster(
            id=row.id, group=groups[row.group_id].name if row.group_id in groups else "", place=row.place,
            starts_at=starts.astimezone(tz), ends_at=ends.astimezone(tz),
            staff_on_duty=[staff_names.get(s, "") for s in duty.get(row.id, [])],
            staff_present=[staff_names.get(s, "") for s in duty.get(row.id, []) if staff_in.get(f"st{s}")],
            ratio_max=settings.ratio_max,
        )
        for sid in sorted(members.get(row.group_id, ()), key=lambda i: students[i].student_no):
            s = students[sid]
            child = Child(student_no=s.student_no, name=s.name, class_name=classes.get(s.class_id, ""))
            if sid in excused:
                child.excused, child.excuse_note = True, excused[sid].note
            seen = last.get(s.student_no)
            if seen and seen[0].kind == "checkin":
                event, gate = first_in.get(s.student_no, seen)
                child.state, child.since, child.gate = "on_site", clock.as_utc(event.at).astimezone(tz), gate
                child.overdue = now > ends + timedelta(minutes=settings.pickup_grace_minutes)
            elif seen:
                event, gate = seen
                child.state, child.since, child.gate, child.kind = "gone", clock.as_utc(event.at).astimezone(tz), gate, event.kind
                if event.kind == "pickup":
                    child.by, child.relation = taker(found, event, sid)
            elif child.excused or now > starts + timedelta(minutes=settings.checkin_grace_minutes):
                child.state = "absent"
            roster.children.append(child)
        out.append(roster)
    return out


def takers(session: Session, refs: list[str]) -> dict[tuple[str, int | None], tuple[str, str]]:
    """(guardian ref ``g{id}``, student id) -> (the guardian's name, their relation to that child)."""
    ids = {int(r[1:]) for r in refs if r.startswith("g") and r[1:].isdigit()}
    if not ids:
        return {}
    out: dict[tuple[str, int | None], tuple[str, str]] = {
        (f"g{g.id}", None): (g.name, "") for g in session.exec(select(Guardian).where(col(Guardian.id).in_(ids)))
    }
    for guardian, link in session.exec(
        select(Guardian, GuardianLink).join(GuardianLink, col(GuardianLink.guardian_id) == Guardian.id).where(col(Guardian.id).in_(ids))
    ):
        out[f"g{guardian.id}", link.student_id] = (guardian.name, link.relation)
    return out


def taker(found: dict[tuple[str, int | None], tuple[str, str]], event: Event, student_id: int) -> tuple[str, str]:
    """Who took the child in a ``pickup`` event, from ``takers(...)``: (name, relation to this child); a
    one-time code's holder is in the event's note, with no relation."""
    name, relation = found.get((event.guardian, student_id)) or found.get((event.guardian, None)) or ("", "")
    return name or (event.note or ""), relation


@dataclass
class Place:
    group: str  # "" for children on site outside any of the day's sessions
    place: str
    children: list[Child]
    staff_on_duty: list[str]


@dataclass
class RollCall:
    """Emergency roll call: every child on site now, by the session (group and place) they are in."""

    places: list[Place]
    staff_present: list[str]

    @property
    def total(self) -> int:
        return sum(len(p.children) for p in self.places)


def roll_call(session: Session, *, school: School, day: date, settings: Settings, now: datetime) -> RollCall:
    """Every child of the school on site now, from every gate: by session (group and place), and those
    on site outside the day's sessions last; with the staff present."""
    rows = list(session.exec(
        select(CareSession).where(CareSession.school_id == school.id, CareSession.day == day).order_by(CareSession.starts_at, CareSession.id)
    ))
    places, placed = [], set()
    for r in build(session, school=school, rows=rows, settings=settings, now=now):
        here = [c for c in r.children if c.state == "on_site" and c.student_no not in placed]
        placed |= {c.student_no for c in here}
        places.append(Place(group=r.group, place=r.place, children=here, staff_on_duty=r.staff_on_duty))
    moves = day_moves(session, school=school, day=day)
    tz = clock.zone(school)
    rest = {no: seen for no, seen in moves.on_site().items() if no not in placed}
    if rest:
        classes = {c.id: f"{c.grade}{c.name}" for c in session.exec(select(SchoolClass).where(SchoolClass.school_id == school.id))}
        found = session.exec(select(Student).where(Student.school_id == school.id, col(Student.student_no).in_(list(rest))))
        others = [
            Child(student_no=s.student_no, name=s.name, class_name=classes.get(s.class_id, ""), state="on_site",
                  since=clock.as_utc(rest[s.student_no][0].at).astimezone(tz), gate=rest[s.student_no][1])
            for s in sorted(found, key=lambda s: s.student_no)
        ]
        places.append(Place(group="", place="", children=others, staff_on_duty=[]))
    names = {f"st{s.id}": s.name for s in session.exec(select(Staff).where(Staff.school_id == school.id))}
    present = sorted(names.get(ref, ref) for ref, inside in moves.staff_in.items() if inside)
    return RollCall(places=places, staff_present=present)
