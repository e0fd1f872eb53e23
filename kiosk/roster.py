"""The kiosk's in-memory roster: card -> person lookups for the decision engine.

Built from central's snapshot (and deltas); holds only what the gate needs (POLICY.md: kiosks
hold no more than the gate needs): names, classes, cards, pickup links, masked phones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway import protocol


KINDS = ("students", "guardians", "staff", "sessions", "codes")


@dataclass(frozen=True)
class Roster:
    school: str
    version: int
    generated_at: str
    students: dict[str, protocol.RosterStudent] = field(default_factory=dict)
    guardians: dict[str, protocol.RosterGuardian] = field(default_factory=dict)
    staff: dict[str, protocol.RosterStaff] = field(default_factory=dict)
    # today's and the coming days' sessions: what offline absent and late-pickup alerts need
    sessions: dict[str, protocol.RosterSession] = field(default_factory=dict)
    # one-time pickup codes, each as keyed digests only (gateway/pickup.py)
    codes: dict[str, protocol.RosterCode] = field(default_factory=dict)
    # canonical card uid -> ("student" | "guardian" | "staff", id)
    cards: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def empty(cls, school: str) -> Roster:
        return cls(school=school, version=0, generated_at=datetime.now(UTC).isoformat())

    @classmethod
    def from_snapshot(cls, snap: protocol.RosterSnapshot) -> Roster:
        return cls._build(snap.school, snap.version, snap.generated_at, snap.students, snap.guardians, snap.staff, snap.sessions, snap.codes)

    @classmethod
    def _build(cls, school, version, generated_at, students, guardians, staff, sessions, codes=()) -> Roster:
        students, guardians, staff = list(students), list(guardians), list(staff)
        cards: dict[str, tuple[str, str]] = {}
        # Later kinds win a card listed twice: a child's tap must never be taken for a pickup or a
        # staff member's duty.
        for kind, people in (("staff", staff), ("guardian", guardians), ("student", students)):
            for person in people:
                for uid in person.cards:
                    cards[uid.upper()] = (kind, person.id)
        return cls(
            school=school,
            version=version,
            generated_at=generated_at,
            students={s.id: s for s in students},
            guardians={g.id: g for g in guardians},
            staff={m.id: m for m in staff},
            sessions={s.id: s for s in sessions},
            codes={c.id: c for c in codes},
            cards=cards,
        )

    def with_delta(self, delta: protocol.RosterDelta) -> Roster:
        merged = {}
        for kind in KINDS:
            current = dict(getattr(self, kind))
            for gone in getattr(delta, f"removed_{kind}"):
                current.pop(gone, None)
            current.update({item.id: item for item in getattr(delta, kind)})
            merged[kind] = current.values()
        return Roster._build(
            self.school, delta.to, datetime.now(UTC).isoformat(),
            merged["students"], merged["guardians"], merged["staff"], merged["sessions"], merged["codes"],
        )

    def snapshot(self) -> protocol.RosterSnapshot:
        return protocol.RosterSnapshot(
            v=1,
            school=self.school,
            version=self.version,
            generated_at=self.generated_at,
            students=list(self.students.values()),
            guardians=list(self.guardians.values()),
            staff=list(self.staff.values()),
            sessions=list(self.sessions.values()),
            codes=list(self.codes.values()),
        )

    def lookup(self, uid: str) -> tuple[str, str] | None:
        return self.cards.get(uid.upper())
