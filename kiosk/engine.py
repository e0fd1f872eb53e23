"""The gate's decision engine: roster + today's state + a tap -> a decision.

Pure: no sqlite, no Textual, no clock of its own. The kiosk records the decision's event in its
outbox before anything is shown, and the console only shows what ``decide`` returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from kiosk.roster import Roster

DEBOUNCE = timedelta(seconds=2)


@dataclass
class GateState:
    """What the kiosk knows of today beyond the roster."""

    day: date
    checked_in: set[str] = field(default_factory=set)
    # canonical uid -> when it was last tapped, for the debounce
    last_tap: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """What the gate decided about one tap.

    ``outcome`` names the case (also the message key); ``tone`` is how the console shows it:
    ``allowed`` (green), ``attention`` (amber), ``refused`` (red) or ``ignored``. ``event`` is the
    event kind to record, or None when nothing happened that central must know.
    """

    outcome: str
    tone: str
    card: str
    event: str | None = None
    student: str | None = None
    guardian: str | None = None
    staff: str | None = None
    reason: str | None = None

    def event_fields(self) -> dict[str, str]:
        fields = {
            "card": self.card, "student": self.student, "guardian": self.guardian, "staff": self.staff, "reason": self.reason,
        }
        return {k: v for k, v in fields.items() if v is not None}


def decide(roster: Roster, state: GateState, uid: str, now: datetime) -> Decision:
    uid = uid.upper()
    last = state.last_tap.get(uid)
    if last is not None and timedelta(0) <= now - last < DEBOUNCE:
        return Decision("repeat_tap", "ignored", uid)
    found = roster.lookup(uid)
    if found is None:
        return Decision("unknown_card", "attention", uid, event="unknown_card")
    role, person = found
    if role == "staff":
        # Duty on and off (P6.3) is the console's work (a later issue); the tap is shown, not recorded.
        return Decision("staff_card", "attention", uid, staff=person)
    if role == "guardian":
        # Pickup verification is the console's work (a later issue); the tap is shown, not recorded.
        return Decision("guardian_card", "attention", uid, guardian=person)
    student = roster.students[person]
    if not student.enrolled:
        return Decision("not_enrolled", "refused", uid, student=person, reason="not_enrolled")
    if person in state.checked_in:
        return Decision("already_checked_in", "attention", uid, student=person)
    return Decision("checked_in", "allowed", uid, event="checkin", student=person)


def remember(state: GateState, decision: Decision, now: datetime) -> None:
    """Fold a recorded decision into today's state."""
    state.last_tap[decision.card] = now
    if decision.event == "checkin" and decision.student:
        state.checked_in.add(decision.student)
