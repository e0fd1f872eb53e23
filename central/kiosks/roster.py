"""The roster kiosks copy: built from central's tables, versioned per school, published on change.

Each change publishes a delta (``from`` V-1 ``to`` V) and then the full snapshot, retained, so a
kiosk that missed a delta, or boots fresh, still ends at the newest version.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Session, select

from central.core import clock
from central.core.config import Settings
from central.pickup import codes as pickup
from central.programme import enrollment, schedule
from central.programme import staff as staff_service
from central.programme.models import DutyAssignment, InterestGroup, Staff
from central.schools.models import Card, Guardian, GuardianLink, School, SchoolClass, Student
from gateway import protocol

log = logging.getLogger(__name__)


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None: ...


def mask_phone(phone: str) -> str:
    """138****1234: enough for a guard to ask "is this your number?", no more."""
    digits = phone.strip()
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def build_people(
    session: Session, school: School, *, settings: Settings | None = None, today: date | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Students, guardians, staff, the coming sessions and live pickup codes as kiosks see them,
    sorted by id so equal rosters compare equal. ``today`` is the school's local date (default: now in its zone)."""
    settings = settings or Settings.model_construct()  # the defaults, without reading the environment
    today = today or clock.local_today(school)
    active = enrollment.active_groups(session, school=school, day=today)  # P7.4: a withdrawal counts from its date
    classes = {c.id: f"{c.grade}{c.name}" for c in session.exec(select(SchoolClass).where(SchoolClass.school_id == school.id))}
    cards_of: dict[tuple[str, int], list[str]] = defaultdict(list)
    for card in session.exec(select(Card).where(Card.school_id == school.id)):
        if card.student_id is not None:
            cards_of["s", card.student_id].append(card.uid)
        else:
            cards_of["g", card.guardian_id].append(card.uid)
    students = session.exec(select(Student).where(Student.school_id == school.id)).all()
    student_no = {s.id: s.student_no for s in students}
    links_of: dict[int, list[dict[str, Any]]] = defaultdict(list)
    guardians = session.exec(select(Guardian).where(Guardian.school_id == school.id)).all()
    relation_of: dict[int, str] = {}
    if guardians:
        stmt = select(GuardianLink).where(GuardianLink.guardian_id.in_([g.id for g in guardians]))
        for link in session.exec(stmt):
            relation_of.setdefault(link.guardian_id, link.relation)
            links_of[link.guardian_id].append(
                {
                    "student": student_no[link.student_id],
                    "may_pick_up": link.may_pick_up,
                    "barred": link.barred,
                    **({"valid_from": link.valid_from.isoformat()} if link.valid_from else {}),
                    **({"valid_until": link.valid_until.isoformat()} if link.valid_until else {}),
                }
            )
    return {
        "students": sorted(
            (
                {
                    "id": s.student_no,
                    "name": s.name,
                    "class": classes.get(s.class_id, ""),
                    "cards": sorted(cards_of["s", s.id]),
                    # P2.1: in the service only through an active enrollment, in these groups.
                    "enrolled": s.id in active,
                    "groups": sorted(str(g) for g in active.get(s.id, [])),
                    "may_leave_alone": s.may_leave_alone,
                }
                for s in students
            ),
            key=lambda p: p["id"],
        ),
        "guardians": sorted(
            (
                {
                    "id": f"g{g.id}",
                    "name": g.name,
                    "relation": relation_of.get(g.id, ""),
                    "phone_masked": mask_phone(g.phone),
                    "cards": sorted(cards_of["g", g.id]),
                    "links": sorted(links_of[g.id], key=lambda link: link["student"]),
                }
                for g in guardians
            ),
            key=lambda p: p["id"],
        ),
        "staff": _staff(session, school),
        "sessions": _sessions(session, school, settings, today),
        "codes": [{**c, "id": str(c["id"])} for c in pickup.roster_codes(session, school=school, today=today)],
    }


def staff_id(staff_pk: int) -> str:
    return f"st{staff_pk}"


def _staff(session: Session, school: School) -> list[dict[str, Any]]:
    """Staff who may serve now, with their cards: they tap in and out like students (P6.3).
    Third-party staff appear only once their vendor is fully approved (P6.2). ``guard``: may sign in
    at a gate kiosk as the guard on duty, whose staff id the gate's events carry as ``operator``."""
    cards = staff_service.cards_of(session, school=school)
    rows = session.exec(select(Staff).where(Staff.school_id == school.id).order_by(Staff.id))
    return [
        # "guard" only where true: rosters of staff who may not sign in at a gate stay as they were.
        {"id": staff_id(s.id), "name": s.name, "kind": s.kind, "cards": cards.get(s.id, []),
         **({"guard": True} if staff_service.may_guard_gate(s) else {})}
        for s in rows
        if staff_service.may_serve(session, s)
    ]


def _sessions(session: Session, school: School, settings: Settings, today: date) -> list[dict[str, Any]]:
    rows = schedule.sessions_between(
        session, school=school, start=today, end=today + timedelta(days=settings.roster_days_ahead)
    )
    if not rows:
        return []
    names = {g.id: g.name for g in session.exec(select(InterestGroup).where(InterestGroup.school_id == school.id))}
    duty: dict[int, list[str]] = defaultdict(list)
    for d in session.exec(select(DutyAssignment).where(DutyAssignment.session_id.in_([r.id for r in rows]))):
        duty[d.session_id].append(staff_id(d.staff_id))

    def rfc(value: datetime) -> str:
        return value.isoformat(timespec="seconds").replace("+00:00", "Z")

    return [
        {
            "id": str(r.id),
            "group": str(r.group_id),
            "group_name": names.get(r.group_id, ""),
            "place": r.place,
            "date": r.day.isoformat(),
            "start": rfc(clock.as_utc(r.starts_at)),
            "end": rfc(clock.as_utc(r.ends_at)),
            # Safety invariants 4 and 3: absent after the check-in grace, overdue after the pickup grace.
            "absent_after": rfc(clock.as_utc(r.starts_at) + timedelta(minutes=settings.checkin_grace_minutes)),
            "overdue_after": rfc(clock.as_utc(r.ends_at) + timedelta(minutes=settings.pickup_grace_minutes)),
            "staff": sorted(duty.get(r.id, [])),
        }
        for r in rows
    ]


@dataclass(frozen=True)
class RosterChange:
    school: str
    version: int
    snapshot: bytes
    delta: bytes | None


def _delta(old: dict, new: dict, school: str, version: int) -> dict[str, Any]:
    out: dict[str, Any] = {"v": 1, "school": school, "from": version - 1, "to": version}
    for kind in ("students", "guardians", "staff", "sessions", "codes"):
        before = {p["id"]: p for p in old.get(kind, [])}
        after = {p["id"]: p for p in new.get(kind, [])}
        out[kind] = [p for pid, p in after.items() if before.get(pid) != p]
        out[f"removed_{kind}"] = sorted(set(before) - set(after))
    return out


def snapshot_payload(school: School, people: dict[str, Any]) -> bytes:
    header = {
        "v": 1,
        "school": school.code,
        "version": school.roster_version,
        "generated_at": clock.utcnow().isoformat(timespec="seconds"),
    }
    return protocol.snapshot_payload(header, people)


def refresh(
    session: Session, school: School, *, settings: Settings | None = None, today: date | None = None
) -> RosterChange | None:
    """Bump the school's roster version if its people or coming sessions changed; commit; return what to publish.

    The bump is conditional on the version read (compare and set), so two refreshes at once (the
    timer and an API change, or two processes) never publish two different rosters as one version.
    """
    for _attempt in range(5):
        session.refresh(school)
        version, stored = school.roster_version, school.roster_body
        people = build_people(session, school, settings=settings, today=today)
        body = protocol.canonical_json(people).decode()
        if version and body == stored:
            return None
        bumped = session.execute(
            sa.update(School)
            .where(School.id == school.id, School.roster_version == version)
            .values(roster_version=version + 1, roster_body=body)
        ).rowcount
        session.commit()
        if bumped != 1:
            continue  # someone else published a version meanwhile: build on theirs
        session.refresh(school)
        delta = None
        if version:
            old = json.loads(stored) if stored else {}
            delta = protocol.canonical_json(_delta(old, people, school.code, version + 1))
        return RosterChange(school.code, version + 1, snapshot_payload(school, people), delta)
    raise RuntimeError(f"roster of {school.code} kept changing under five refreshes")


def refresh_and_publish(
    session: Session, school: School, *, settings: Settings, publisher: Publisher, topics: protocol.Topics
) -> RosterChange | None:
    """Refresh and publish as one step in this process, so versions reach the broker in order."""
    with _publishing:
        change = refresh(session, school, settings=settings)
        if change is not None:
            publish(change, publisher, topics)
        return change


_publishing = threading.Lock()


def current(school: School) -> RosterChange | None:
    """The last published snapshot, to retain again after a broker lost it."""
    if not school.roster_version:
        return None
    return RosterChange(school.code, school.roster_version, snapshot_payload(school, json.loads(school.roster_body)), None)


def publish(change: RosterChange, publisher: Publisher, topics: protocol.Topics) -> None:
    if change.delta is not None:
        publisher.publish(topics.roster_delta(change.school), change.delta)
    publisher.publish(topics.roster(change.school), change.snapshot, retain=True)


def refresh_all(engine, *, settings: Settings, publisher: Publisher, topics: protocol.Topics, today: date | None = None) -> list[RosterChange]:
    """Refresh every school's roster and publish what changed: run on a timer (central/main.py, every
    ``roster_refresh_minutes``), so what kiosks hold moves on with the days even when nobody edits
    anything: the coming sessions, and who is enrolled, since a withdrawal as of a later date takes
    the child off the roster only when that date arrives (P7.4). Each school on its own: one that
    fails is logged and the others are still refreshed."""
    changes = []
    with Session(engine) as session:
        for school in session.exec(select(School).order_by(School.id)).all():
            if not _publishable(school):
                continue
            try:
                with _publishing:
                    change = refresh(session, school, settings=settings, today=today)
                    if change is not None:
                        publish(change, publisher, topics)
                        changes.append(change)
            except Exception:  # noqa: BLE001 - one school's failure must not keep the others' rosters back
                session.rollback()
                log.exception("roster of school %r (id %s) not refreshed", school.code, school.id)
    return changes


def republish_all(engine, *, publisher: Publisher, topics: protocol.Topics) -> list[str]:
    """Retain every school's last snapshot again (a broker without persistence forgot them when it
    restarted); the codes of the schools published. Each school on its own, as in ``refresh_all``."""
    published = []
    with Session(engine) as session:
        for school in session.exec(select(School).order_by(School.id)).all():
            if not _publishable(school):
                continue
            try:
                change = current(school)
                if change is not None:
                    publish(change, publisher, topics)
                    published.append(school.code)
            except Exception:  # noqa: BLE001 - as in refresh_all
                log.exception("roster of school %r (id %s) not republished", school.code, school.id)
    return published


def _publishable(school: School) -> bool:
    """A school whose code cannot name an MQTT topic (stored before imports checked it) has no roster
    to send; said once per round, plainly, instead of a traceback that stops every school after it."""
    try:
        protocol.check_id(school.code, "school")
    except protocol.ProtocolError:
        log.error(
            "school %r (id %s) has an id kiosks cannot use in MQTT topics ([A-Za-z0-9_-]{1,64}); its roster is "
            "not published, the other schools' are", school.code, school.id,
        )
        return False
    return True
