"""The kiosk's in-memory roster: card -> person lookups for the decision engine.

Built from central's snapshot (and deltas); holds only what the gate needs (POLICY.md: kiosks
hold no more than the gate needs): names, classes, cards, pickup links, masked phones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway import protocol


@dataclass(frozen=True)
class Roster:
    school: str
    version: int
    generated_at: str
    students: dict[str, protocol.RosterStudent] = field(default_factory=dict)
    guardians: dict[str, protocol.RosterGuardian] = field(default_factory=dict)
    # canonical card uid -> ("student" | "guardian", person id)
    cards: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def empty(cls, school: str) -> Roster:
        return cls(school=school, version=0, generated_at=datetime.now(UTC).isoformat())

    @classmethod
    def from_snapshot(cls, snap: protocol.RosterSnapshot) -> Roster:
        return cls._build(snap.school, snap.version, snap.generated_at, snap.students, snap.guardians)

    @classmethod
    def _build(cls, school, version, generated_at, students, guardians) -> Roster:
        cards: dict[str, tuple[str, str]] = {}
        for g in guardians:
            for uid in g.cards:
                cards[uid.upper()] = ("guardian", g.id)
        # A card listed for both a student and a guardian resolves to the student: a child's
        # check-in must never be mistaken for a pickup.
        for s in students:
            for uid in s.cards:
                cards[uid.upper()] = ("student", s.id)
        return cls(
            school=school,
            version=version,
            generated_at=generated_at,
            students={s.id: s for s in students},
            guardians={g.id: g for g in guardians},
            cards=cards,
        )

    def with_delta(self, delta: protocol.RosterDelta) -> Roster:
        students = dict(self.students)
        guardians = dict(self.guardians)
        for sid in delta.removed_students:
            students.pop(sid, None)
        for gid in delta.removed_guardians:
            guardians.pop(gid, None)
        students.update({s.id: s for s in delta.students})
        guardians.update({g.id: g for g in delta.guardians})
        return Roster._build(
            self.school, delta.to, datetime.now(UTC).isoformat(), students.values(), guardians.values()
        )

    def snapshot(self) -> protocol.RosterSnapshot:
        return protocol.RosterSnapshot(
            v=1,
            school=self.school,
            version=self.version,
            generated_at=self.generated_at,
            students=list(self.students.values()),
            guardians=list(self.guardians.values()),
        )

    def lookup(self, uid: str) -> tuple[str, str] | None:
        return self.cards.get(uid.upper())
