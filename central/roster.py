"""The roster kiosks copy: built from central's tables, versioned per school, published on change.

Each change publishes a delta (``from`` V-1 ``to`` V) and then the full snapshot, retained, so a
kiosk that missed a delta, or boots fresh, still ends at the newest version.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlmodel import Session, select

from central.models import Card, Guardian, GuardianLink, School, SchoolClass, Student
from gateway import protocol


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None: ...


def mask_phone(phone: str) -> str:
    """138****1234: enough for a guard to ask "is this your number?", no more."""
    digits = phone.strip()
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def build_people(session: Session, school: School) -> dict[str, list[dict[str, Any]]]:
    """Students and guardians as kiosks see them, sorted by id so equal rosters compare equal."""
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
                {"student": student_no[link.student_id], "may_pick_up": link.may_pick_up, "barred": link.barred}
            )
    return {
        "students": sorted(
            (
                {
                    "id": s.student_no,
                    "name": s.name,
                    "class": classes.get(s.class_id, ""),
                    "cards": sorted(cards_of["s", s.id]),
                    "enrolled": s.enrolled,
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
    }


@dataclass(frozen=True)
class RosterChange:
    school: str
    version: int
    snapshot: bytes
    delta: bytes | None


def _delta(old: dict, new: dict, school: str, version: int) -> dict[str, Any]:
    out: dict[str, Any] = {"v": 1, "school": school, "from": version - 1, "to": version}
    for kind in ("students", "guardians"):
        before = {p["id"]: p for p in old.get(kind, [])}
        after = {p["id"]: p for p in new[kind]}
        out[kind] = [p for pid, p in after.items() if before.get(pid) != p]
        out[f"removed_{kind}"] = sorted(set(before) - set(after))
    return out


def snapshot_payload(school: School, people: dict[str, Any]) -> bytes:
    return protocol.canonical_json(
        {
            "v": 1,
            "school": school.code,
            "version": school.roster_version,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **people,
        }
    )


def refresh(session: Session, school: School) -> RosterChange | None:
    """Bump the school's roster version if its people changed; commit; return what to publish."""
    people = build_people(session, school)
    body = protocol.canonical_json(people).decode()
    if school.roster_version and body == school.roster_body:
        return None
    old = json.loads(school.roster_body) if school.roster_body else {}
    school.roster_version += 1
    school.roster_body = body
    session.add(school)
    session.commit()
    delta = None
    if school.roster_version > 1:
        delta = protocol.canonical_json(_delta(old, people, school.code, school.roster_version))
    return RosterChange(school.code, school.roster_version, snapshot_payload(school, people), delta)


def current(school: School) -> RosterChange | None:
    """The last published snapshot, to retain again after a broker lost it."""
    if not school.roster_version:
        return None
    return RosterChange(school.code, school.roster_version, snapshot_payload(school, json.loads(school.roster_body)), None)


def publish(change: RosterChange, publisher: Publisher, topics: protocol.Topics) -> None:
    if change.delta is not None:
        publisher.publish(topics.roster_delta(change.school), change.delta)
    publisher.publish(topics.roster(change.school), change.snapshot, retain=True)
