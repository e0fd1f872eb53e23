"""Keys that tap demo cards on a simulated reader (``schoolgate demo`` only)."""

from __future__ import annotations


class DemoKeys:
    """Keys that tap demo cards on a simulated reader, so a new user can play an afternoon."""

    def __init__(self, reader, roster) -> None:
        self.reader = reader
        self.students = [s for s in sorted(roster.students.values(), key=lambda s: s.id) if s.cards and s.enrolled][:9]
        self.last_student: str | None = None
        self.roster = roster

    def student(self, n: int) -> None:
        if n < len(self.students):
            self.last_student = self.students[n].id
            self.reader.present(self.students[n].cards[0])

    def guardian(self) -> None:
        """A guardian allowed to take the last child tapped taps their card."""
        for guardian in sorted(self.roster.guardians.values(), key=lambda g: g.id):
            if guardian.cards and any(x.student == self.last_student and x.may_pick_up and not x.barred for x in guardian.links):
                self.reader.present(guardian.cards[0])
                return

    def barred(self) -> None:
        """The guardian under a custody order taps, then the child they may not take."""
        for guardian in sorted(self.roster.guardians.values(), key=lambda g: g.id):
            link = next((x for x in guardian.links if x.barred), None)
            child = self.roster.students.get(link.student) if link else None
            if guardian.cards and child and child.cards:
                self.reader.present(guardian.cards[0])
                self.reader.present(child.cards[0])
                return

    def staff(self) -> None:
        """A teacher (staff who is not a guard) taps: on or off duty."""
        cards = [m.cards[0] for m in self.roster.staff.values() if m.cards and not m.guard]
        if cards:
            self.reader.present(cards[0])

    def guard(self) -> None:
        """The gate's guard taps their staff card: signed in at the console (again: signed out)."""
        cards = [m.cards[0] for m in self.roster.staff.values() if m.cards and m.guard]
        if cards:
            self.reader.present(cards[0])

    def unknown(self) -> None:
        self.reader.present("0BADCAFE")
