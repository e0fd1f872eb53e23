"""What the gate shows: a decision as the guard reads it, and the state of the sync, as typed values.

``Shown`` is what every ``Kiosk`` action returns; the console reads its attributes, and
``kiosk run --no-ui`` prints ``Shown.as_json()``, one line per decision. That line is a contract
with whoever reads it (scripts, the demo's summary): its keys and their order are fixed by the
order of the fields below, and ``class_name`` is printed as ``class``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Shown:
    """One decision as shown at the gate (and printed by ``--no-ui``).

    ``outcome`` names the case (``checked_in``, ``pickup_barred``, …) and ``message`` is its text in
    the kiosk's language; ``tone`` is how it is shown (``allowed``, ``attention``, ``refused``,
    ``ignored``). ``event`` is the kind of the event recorded (None: nothing was recorded) and ``seq``
    its place in the outbox. ``confirm`` is the token of a pickup waiting for the guard's Enter.
    """

    at: str
    outcome: str
    tone: str
    message: str
    reader: str | None = None
    card: str | None = None
    student: str | None = None
    guardian: str | None = None
    staff: str | None = None
    session: str | None = None
    name: str | None = None
    class_name: str | None = field(default=None, metadata={"json": "class"})
    guardian_name: str | None = None
    relation: str | None = None
    phone: str | None = None
    person: str | None = None
    reason: str | None = None
    note: str | None = None
    event: str | None = None
    seq: int | None = None
    # the recorded event's id (UUIDv7, as on the wire and in central's events); None: nothing recorded
    event_id: str | None = None
    confirm: str | None = None
    alarm: bool = False
    overridable: bool = False

    # The --no-ui line's keys, in the order they have always been printed.
    JSON_ORDER = (
        "at", "reader", "card", "outcome", "tone", "student", "guardian", "staff", "session", "name", "class",
        "guardian_name", "relation", "phone", "person", "reason", "note", "event", "seq", "confirm", "alarm",
        "overridable", "message",
        "event_id",  # added by issue 13, last so that no key moves
    )

    def as_json(self) -> dict[str, Any]:
        """The decision as ``kiosk run --no-ui`` prints it (``json.dumps`` of this, one line)."""
        values = {f.metadata.get("json", f.name): getattr(self, f.name) for f in fields(self)}
        return {key: values[key] for key in self.JSON_ORDER}


@dataclass(frozen=True)
class SyncState:
    """The sync as the console's footer shows it."""

    online: bool
    queue: int
    roster_version: int
    roster_age_s: int | None
    roster_stale: bool
    # Why the broker will not have the kiosk: "login_refused", "refused", "subscription_refused"
    # (gateway.mqtt.Connection), or None: offline without one is the network or the broker down.
    # The catalogue says it as "link_" + problem.
    problem: str | None = None
    feed: str | None = None
    """The school's feed (``gateway.feed``): ``current``, ``catching_up`` or ``offline``; None without sync."""
