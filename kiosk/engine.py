"""The gate's decision engine: roster + today's state + what happened -> a decision.

Pure: no sqlite, no Textual, no clock of its own. The kiosk records a decision's event in its
outbox before anything is shown, folds the recorded event into ``GateState`` with ``fold`` (the
same fold rebuilds the state from the day's events after a restart), and the console only shows
what these functions returned.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from gateway import pickup as codes
from gateway import protocol
from kiosk.roster import Roster


@dataclass(frozen=True)
class Rules:
    """The gate's time rules; the defaults are the policy's, each overridable in the kiosk settings."""

    debounce: timedelta = timedelta(seconds=2)
    before_start: timedelta = timedelta(minutes=30)  # check-in opens this long before a session starts
    pair_window: timedelta = timedelta(seconds=30)  # a guardian's and a child's taps within this form a pickup
    absent_after: timedelta = timedelta(minutes=10)  # when the roster's session has no absent_after
    late_after: timedelta = timedelta(minutes=15)  # when the roster's session has no overdue_after
    offline_after: timedelta = timedelta(minutes=2)
    unacked_after: timedelta = timedelta(minutes=5)
    roster_max_age: timedelta = timedelta(hours=24)


RULES = Rules()
DEBOUNCE = RULES.debounce
GONE_KINDS = ("pickup", "self_dismiss", "checkout")
# Wrong one-time codes typed for one child in one day before the gate takes no more (central's
# MAX_WRONG_CODES): each is recorded as a pickup_denied event, so the count survives a restart and
# central sees the guessing, offline too.
MAX_WRONG_CODES = 5
ID4 = re.compile(r"^[0-9]{3}[0-9Xx]$")
# The note of a staff_on / staff_off event that signs a guard in at (out of) a gate's console: the
# console's events then carry that guard as ``operator`` (P9.3, 门卫登记 names who was at the gate).
GUARD_NOTE = "guard"


@dataclass
class Pending:
    """The first half of a pickup pair: who tapped, and when."""

    role: str  # "student" | "guardian"
    id: str
    at: datetime


@dataclass
class GateState:
    """What the kiosk knows of today beyond the roster: a fold of today's recorded events."""

    day: date
    kiosk: str = ""  # this gate: whose signed-in guard is ``guard``
    checked_in: dict[str, str | None] = field(default_factory=dict)  # student -> session id (None: admitted by override)
    gone: dict[str, str] = field(default_factory=dict)  # student -> how they left (pickup, self_dismiss, checkout)
    on_duty: set[str] = field(default_factory=set)  # staff ids
    visitors: dict[str, dict[str, str]] = field(default_factory=dict)  # visit id -> the visitor_in details
    used_codes: set[str] = field(default_factory=set)
    wrong_codes: dict[str, int] = field(default_factory=dict)  # student -> wrong codes typed today
    alerted: set[tuple[str, str, str, str]] = field(default_factory=set)
    last_tap: dict[str, datetime] = field(default_factory=dict)  # canonical uid -> last tap, for the debounce
    pending: list[Pending] = field(default_factory=list)  # first halves of pickup pairs, oldest first
    guards: dict[str, str] = field(default_factory=dict)  # kiosk -> the guard signed in at its console
    gates: dict[str, str] = field(default_factory=dict)  # student -> the gate (kiosk) the child came in through

    def on_site(self, student: str) -> bool:
        return student in self.checked_in and student not in self.gone

    @property
    def guard(self) -> str | None:
        """The staff id of the guard signed in at this gate's console, or None."""
        return self.guards.get(self.kiosk)


@dataclass(frozen=True)
class Decision:
    """What the gate decided.

    ``outcome`` names the case (also the message key); ``tone`` is how the console shows it:
    ``allowed`` (green), ``attention`` (amber), ``refused`` (red) or ``ignored``. ``event`` is the
    event kind to record, or None when nothing happened that central must know. ``confirm`` means
    the event waits for the guard's confirmation; ``alarm`` asks for the loud alert (a barred
    guardian); ``overridable`` means the guard may admit anyway with a typed reason.
    """

    outcome: str
    tone: str
    card: str | None = None
    event: str | None = None
    student: str | None = None
    guardian: str | None = None
    staff: str | None = None
    session: str | None = None
    reason: str | None = None
    note: str | None = None
    person: str | None = None  # who takes the child when no guardian record does (a one-time code's named person)
    confirm: bool = False
    alarm: bool = False
    overridable: bool = False

    def event_fields(self) -> dict[str, str]:
        fields = {
            "card": self.card, "student": self.student, "guardian": self.guardian, "staff": self.staff,
            "session": self.session, "reason": self.reason, "note": self.note,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True)
class Alert:
    """A condition the guard must see; sent once as an ``alert`` event (reason = kind)."""

    kind: str  # absent, late_pickup, offline, unacked, roster_stale
    student: str | None = None
    session: str | None = None
    detail: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.student or "", self.session or "", self.detail or "")

    def decision(self) -> Decision:
        return Decision(f"alert_{self.kind}", "attention", event="alert", student=self.student, session=self.session,
                        reason=self.kind, note=self.detail)


# --- sessions ----------------------------------------------------------------------------------------


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def sessions_today(roster: Roster, day: date, student: str | None = None) -> list[protocol.RosterSession]:
    """Today's sessions (of one student's groups), earliest first."""
    groups = set(roster.students[student].groups) if student else None
    found = [s for s in roster.sessions.values() if s.date == day.isoformat() and (groups is None or s.group in groups)]
    return sorted(found, key=lambda s: (s.start, s.id))


def session_end(session: protocol.RosterSession) -> datetime:
    return _time(session.end)


def absent_after(session: protocol.RosterSession, rules: Rules = RULES) -> datetime:
    return _time(session.absent_after) if session.absent_after else _time(session.start) + rules.absent_after


def overdue_after(session: protocol.RosterSession, rules: Rules = RULES) -> datetime:
    return _time(session.overdue_after) if session.overdue_after else _time(session.end) + rules.late_after


def _window_session(roster: Roster, state: GateState, student: str, now: datetime, rules: Rules) -> tuple[str, str | None]:
    """("ok", session id) for the session whose check-in window holds now, else why not."""
    groups = set(roster.students[student].groups)
    # Any of the child's sessions whose window holds now, whatever its date: one that started
    # before midnight is still open after it.
    open_now = [s for s in roster.sessions.values()
                if s.group in groups and _time(s.start) - rules.before_start <= now <= _time(s.end)]
    if open_now:
        return "ok", min(open_now, key=lambda s: (s.end, s.id)).id
    today = sessions_today(roster, state.day, student)
    if not today:
        return "no_session_today", None
    if now < _time(today[0].start) - rules.before_start:
        return "too_early", today[0].id
    return "session_over", today[-1].id


# --- taps ----------------------------------------------------------------------------------------------


def decide(roster: Roster, state: GateState, uid: str, now: datetime, rules: Rules = RULES) -> Decision:
    """Decide one card tap."""
    uid = uid.upper()
    last = state.last_tap.get(uid)
    if last is not None and timedelta(0) <= now - last < rules.debounce:
        return Decision("repeat_tap", "ignored", uid)
    found = roster.lookup(uid)
    if found is None:
        return Decision("unknown_card", "attention", uid, event="unknown_card")
    role, person = found
    if role == "staff":
        if roster.staff[person].guard:
            # A guard's card signs them in at this gate's console, and the same card again out.
            if state.guard == person:
                return sign_out(state, uid)
            return Decision("guard_signed_in", "allowed", uid, event="staff_on", staff=person, note=GUARD_NOTE)
        if person in state.on_duty:
            return Decision("staff_off", "allowed", uid, event="staff_off", staff=person)
        return Decision("staff_on", "allowed", uid, event="staff_on", staff=person)
    if role == "guardian":
        partner = _partner(roster, state, "student", person, now, rules)
        if partner:
            return pickup(roster, state, partner.id, person, now, card=uid)
        guardian = roster.guardians[person]
        if guardian.links and all(link.barred for link in guardian.links):
            # Under a custody order for every child they are linked to: the guard must know at once.
            return Decision("guardian_barred", "refused", uid, event="alert", guardian=person, reason="barred_guardian",
                            alarm=True)
        return Decision("guardian_waiting", "attention", uid, guardian=person)
    partner = _partner(roster, state, "guardian", person, now, rules)
    if partner and (state.on_site(person) or _link(roster, partner.id, person)):
        return pickup(roster, state, person, partner.id, now, card=uid)
    return _student(roster, state, person, uid, now, rules)


def _partner(roster: Roster, state: GateState, role: str, tapped: str, now: datetime, rules: Rules) -> Pending | None:
    """The other half of a pickup pair for this tap: a pending tap of ``role`` within the window,
    a linked one first (a queue of parents at the gate), else the latest."""
    live = [p for p in state.pending if p.role == role and timedelta(0) <= now - p.at <= rules.pair_window]
    linked = [p for p in live if (_link(roster, tapped, p.id) if role == "student" else _link(roster, p.id, tapped))]
    return (linked or live or [None])[-1]


def _student(roster: Roster, state: GateState, sid: str, uid: str, now: datetime, rules: Rules) -> Decision:
    student = roster.students[sid]
    if sid in state.gone:
        return Decision("already_left", "attention", uid, student=sid)
    if state.on_site(sid):
        session = roster.sessions.get(state.checked_in[sid] or "")
        if student.may_leave_alone and session and now >= session_end(session):
            return Decision("self_dismissed", "allowed", uid, event="self_dismiss", student=sid, session=session.id)
        # On site: the first half of a pickup; a guardian's card within the pair window completes it.
        return Decision("already_checked_in", "attention", uid, student=sid, session=state.checked_in[sid])
    if not student.enrolled:
        return Decision("not_enrolled", "refused", uid, student=sid, reason="not_enrolled", overridable=True)
    why, session = _window_session(roster, state, sid, now, rules)
    if why != "ok":
        return Decision(why, "refused", uid, student=sid, session=session, reason=why, overridable=True)
    return Decision("checked_in", "allowed", uid, event="checkin", student=sid, session=session)


def _link(roster: Roster, guardian: str, student: str) -> protocol.RosterLink | None:
    found = roster.guardians.get(guardian)
    return next((link for link in found.links if link.student == student), None) if found else None


def _valid_on(link: protocol.RosterLink, day: date) -> bool:
    today = day.isoformat()
    return (link.valid_from is None or link.valid_from <= today) and (link.valid_until is None or today <= link.valid_until)


def pickup(roster: Roster, state: GateState, student: str, guardian: str, now: datetime, *, card: str | None = None) -> Decision:
    """A guardian asks to take a child (cards paired, or the guard picked them from the list)."""
    base = {"card": card, "student": student, "guardian": guardian}
    link = _link(roster, guardian, student)
    if link is not None and link.barred:
        # A custody order: refused loudly whatever else holds.
        return Decision("pickup_barred", "refused", event="pickup_denied", reason="barred", alarm=True, **base)
    if link is None:
        return Decision("pickup_not_linked", "refused", event="pickup_denied", reason="not_linked", **base)
    if not link.may_pick_up:
        return Decision("pickup_not_allowed", "refused", event="pickup_denied", reason="not_allowed", **base)
    if not _valid_on(link, state.day):
        return Decision("pickup_link_expired", "refused", event="pickup_denied", reason="link_not_valid", **base)
    return _take(state, student, "pickup_allowed", base)


def _take(state: GateState, student: str, outcome: str, base: dict[str, Any]) -> Decision:
    if student in state.gone:
        return Decision("already_left", "attention", **base)
    if not state.on_site(student):
        return Decision("not_on_site", "refused", reason="not_on_site", overridable=True, **base)
    return Decision(outcome, "allowed", event="pickup", session=state.checked_in[student], confirm=True, **base)


def pickup_by_code(
    roster: Roster, state: GateState, student: str, code: str, now: datetime, *, key: bytes, kiosk: str
) -> Decision:
    """A person without a card gives the one-time code issued at central for this child and today."""
    if state.wrong_codes.get(student, 0) >= MAX_WRONG_CODES:
        # Checked before the code: past the limit even the right code is not tried (no oracle).
        return Decision("code_locked", "refused", event="pickup_denied", reason="code_locked", student=student)
    typed = codes.normalize_code(code)
    for issued in sorted(roster.codes.values(), key=lambda c: c.id):
        if issued.student != student or issued.day != state.day.isoformat() or kiosk not in issued.digests:
            continue
        if codes.matches(key, issued.digests[kiosk], school=roster.school, verifier=kiosk, student=student,
                         day=state.day, code=typed):
            return _code_pickup(roster, state, student, issued)
    return Decision("code_wrong", "refused", event="pickup_denied", reason="code_wrong", student=student)


def _code_pickup(roster: Roster, state: GateState, student: str, issued: protocol.RosterCode) -> Decision:
    if issued.id in state.used_codes:
        return Decision("code_used", "refused", reason="code_used", student=student)
    if issued.issuer is not None:
        # P9.4: a guardian's code stands on that guardian's link as this roster has it now: a custody
        # order (or a lost right, an ended link) that arrived after the code voids it here too.
        link = _link(roster, issued.issuer, student)
        if link is None or link.barred or not link.may_pick_up or not _valid_on(link, state.day):
            barred = link is not None and link.barred
            return Decision("code_issuer_refused", "refused", event="pickup_denied", student=student,
                            guardian=issued.issuer, reason="code_issuer_barred" if barred else "code_issuer_not_allowed",
                            note=f"code:{issued.id}", person=issued.person, alarm=barred)
    decision = _take(state, student, "pickup_allowed", {"student": student, "person": issued.person})
    return replace(decision, note=f"code:{issued.id}", reason="code" if decision.event else decision.reason)


def recheck(roster: Roster, state: GateState, decision: Decision, now: datetime) -> Decision:
    """A pickup decided a while ago, decided again on the roster and the day as they are now: the
    guard's Enter must not record what has since become wrong (a custody order arrived, the child
    left with someone else, the code was used)."""
    if decision.guardian:
        return pickup(roster, state, decision.student or "", decision.guardian, now, card=decision.card)
    code_id = (decision.note or "").removeprefix("code:")
    issued = roster.codes.get(code_id) if (decision.note or "").startswith("code:") else None
    if issued and issued.student == decision.student and issued.day == state.day.isoformat():
        return _code_pickup(roster, state, issued.student, issued)
    return Decision("code_wrong", "refused", reason="code_wrong", student=decision.student)


def sign_out(state: GateState, card: str | None = None) -> Decision:
    """The guard signed in at this gate's console signs out (a key, or their card again)."""
    if state.guard is None:
        raise ValueError("guard_none_signed_in")
    return Decision("guard_signed_out", "allowed", card, event="staff_off", staff=state.guard, note=GUARD_NOTE)


def may_confirm(state: GateState) -> bool:
    """A pickup is confirmed only by a guard signed in at this gate: the event names who let the child go."""
    return state.guard is not None


def guard_refused(decision: Decision) -> Decision:
    """The guard refused a pickup the rules allowed (the person is not who the card says, …)."""
    return Decision("pickup_refused", "refused", decision.card, event="pickup_denied", student=decision.student,
                    guardian=decision.guardian, session=decision.session, reason="guard_refused", note=decision.note,
                    person=decision.person)


def override(roster: Roster, state: GateState, student: str, reason: str, now: datetime, rules: Rules = RULES) -> Decision:
    """The guard admits a refused child with a typed reason (an ``override`` event)."""
    reason = reason.strip()
    if not reason:
        raise ValueError("override_reason_required")
    if student in state.gone or state.on_site(student):
        raise ValueError("override_not_needed")  # a refusal from earlier in the day no longer holds
    _why, session = _window_session(roster, state, student, now, rules) if student in roster.students else ("", None)
    return Decision("override_checkin", "allowed", event="override", student=student, session=session,
                    reason=reason[:500], note="checkin")


def override_pickup(state: GateState, decision: Decision, reason: str) -> Decision:
    """The guard takes a child not seen on site into their care for a pickup: the override is recorded
    first (the child is then on site), then the pickup is decided again and waits for confirmation."""
    reason = reason.strip()
    if not reason:
        raise ValueError("override_reason_required")
    if decision.outcome != "not_on_site" or decision.student in state.gone or state.on_site(decision.student or ""):
        raise ValueError("override_not_needed")
    return Decision("override_pickup", "attention", decision.card, event="override", student=decision.student,
                    guardian=decision.guardian, reason=reason[:500], note="pickup", person=decision.person)


def visitor_in(name: str, id4: str, purpose: str, visiting: str, visit: str) -> Decision:
    """门卫登记: a visitor signs in (name, last 4 of the ID number, purpose, person visited)."""
    name, id4, purpose, visiting = ("".join(ch for ch in v if ch.isprintable()).strip() for v in (name, id4, purpose, visiting))
    if not name or len(name) > 50:
        raise ValueError("visitor_name_required")
    if not ID4.match(id4):
        raise ValueError("visitor_id4_invalid")
    if not purpose or not visiting:
        raise ValueError("visitor_purpose_required")
    note = json.dumps({"visit": visit, "name": name, "id4": id4.upper(), "visiting": visiting[:50]}, ensure_ascii=False,
                      sort_keys=True)
    return Decision("visitor_in", "allowed", event="visitor_in", reason=purpose[:200], note=note)


def visitor_out(state: GateState, visit: str) -> Decision:
    details = state.visitors.get(visit)
    if details is None:
        raise ValueError("visitor_not_on_site")
    note = json.dumps({"visit": visit, "name": details["name"]}, ensure_ascii=False, sort_keys=True)
    return Decision("visitor_out", "allowed", event="visitor_out", note=note)


# --- state ---------------------------------------------------------------------------------------------


def remember(state: GateState, decision: Decision, now: datetime, rules: Rules = RULES) -> None:
    """Fold a shown tap decision into the debounce and the pickup pairing."""
    if decision.card:
        state.last_tap[decision.card] = now
    used = {("student", decision.student), ("guardian", decision.guardian)}
    state.pending = [p for p in state.pending if (p.role, p.id) not in used and now - p.at <= rules.pair_window]
    if decision.outcome in ("guardian_waiting", "guardian_barred"):
        state.pending.append(Pending("guardian", decision.guardian or "", now))
    elif decision.outcome == "already_checked_in":
        state.pending.append(Pending("student", decision.student or "", now))


def fold(state: GateState, event: dict[str, Any]) -> None:
    """Apply one recorded event (just written, or replayed from today's log) to the state.

    The other gates' events of the school's feed are folded the same way (the school's view): a child
    checked in at any gate is on site, gone through any gate is gone; only a guard's sign-in stays with
    the gate it was made at (``guards`` by the event's kiosk).
    """
    kind, student = event["kind"], event.get("student")
    if kind == "checkin" or (kind == "override" and event.get("note") == "checkin"):
        state.checked_in.setdefault(student, event.get("session"))
        state.gates.setdefault(student, event.get("kiosk", ""))
        state.gone.pop(student, None)
    elif kind == "override" and event.get("note") == "pickup" and student not in state.gone:
        state.checked_in.setdefault(student, None)  # in the guard's care at the gate, for the pickup
        state.gates.setdefault(student, event.get("kiosk", ""))
    elif kind in GONE_KINDS and student:
        state.gone[student] = kind
        note = event.get("note") or ""
        if note.startswith("code:"):
            state.used_codes.add(note[5:])
    elif kind == "pickup_denied" and student and event.get("reason") == "code_wrong":
        state.wrong_codes[student] = state.wrong_codes.get(student, 0) + 1
    elif kind == "staff_on":
        state.on_duty.add(event["staff"])
        if event.get("note") == GUARD_NOTE:
            state.guards[event.get("kiosk", "")] = event["staff"]
    elif kind == "staff_off":
        state.on_duty.discard(event["staff"])
        if event.get("note") == GUARD_NOTE and state.guards.get(event.get("kiosk", "")) == event["staff"]:
            del state.guards[event.get("kiosk", "")]
    elif kind in ("visitor_in", "visitor_out"):
        details = json.loads(event.get("note") or "{}")
        if kind == "visitor_in":
            state.visitors[details["visit"]] = {**details, "purpose": event.get("reason", ""), "at": event["at"]}
        else:
            state.visitors.pop(details.get("visit", ""), None)
    elif kind == "alert":
        state.alerted.add((event.get("reason", ""), student or "", event.get("session") or "", event.get("note") or ""))


# --- alerts and counts ---------------------------------------------------------------------------------


def due_alerts(
    roster: Roster,
    state: GateState,
    now: datetime,
    *,
    offline_since: datetime | None = None,
    oldest_unacked: datetime | None = None,
    rules: Rules = RULES,
) -> list[Alert]:
    """Alerts whose time has come and that were not raised before today."""
    found: list[Alert] = []
    for session in sessions_today(roster, state.day):
        members = [s for s in roster.students.values() if s.enrolled and session.group in s.groups]
        if now >= absent_after(session, rules):
            found += [Alert("absent", s.id, session.id) for s in members if s.id not in state.checked_in and s.id not in state.gone]
        if now >= overdue_after(session, rules):
            found += [Alert("late_pickup", sid, session.id) for sid, sess in state.checked_in.items()
                      if sess == session.id and sid not in state.gone]
    if offline_since is not None and now - offline_since >= rules.offline_after:
        found.append(Alert("offline", detail=offline_since.isoformat(timespec="seconds")))
    if oldest_unacked is not None and now - oldest_unacked >= rules.unacked_after:
        found.append(Alert("unacked", detail=oldest_unacked.isoformat(timespec="seconds")))
    if roster_stale(roster, now, rules):
        found.append(Alert("roster_stale", detail=state.day.isoformat()))
    return [a for a in found if a.key not in state.alerted]


def roster_stale(roster: Roster, now: datetime, rules: Rules = RULES) -> bool:
    """Older than a day: shown on the banner. Barred lists in the copy the kiosk has still apply."""
    if roster.version == 0:
        return False
    return now - _time(roster.generated_at) > rules.roster_max_age


@dataclass(frozen=True)
class Counts:
    expected: int
    on_site: int
    gone: int
    absent: int


def counts(roster: Roster, state: GateState, now: datetime, rules: Rules = RULES) -> Counts:
    """Expected / on site / gone / absent for today's sessions."""
    today = sessions_today(roster, state.day)
    expected: set[str] = set()
    absent: set[str] = set()
    for session in today:
        members = {s.id for s in roster.students.values() if s.enrolled and session.group in s.groups}
        expected |= members
        if now >= absent_after(session, rules):
            absent |= {sid for sid in members if sid not in state.checked_in and sid not in state.gone}
    on_site = sum(1 for sid in state.checked_in if sid not in state.gone)
    return Counts(len(expected), on_site, len(state.gone), len(absent))


def roll_call(roster: Roster, state: GateState) -> list[tuple[protocol.RosterSession | None, list[str]]]:
    """Every child on site now, by session (None: admitted without one), for an emergency."""
    by_session: dict[str | None, list[str]] = {}
    for sid, session in state.checked_in.items():
        if sid not in state.gone:
            by_session.setdefault(session if session in roster.sessions else None, []).append(sid)
    order = sorted(by_session, key=lambda s: (s is None, roster.sessions[s].start if s else "", s or ""))
    return [(roster.sessions.get(s) if s else None, sorted(by_session[s])) for s in order]


def authorised(roster: Roster, student: str, day: date) -> list[tuple[protocol.RosterGuardian, protocol.RosterLink]]:
    """The guardians a guard may hand this child to today (for the no-card path), barred ones left out."""
    found = []
    for guardian in roster.guardians.values():
        link = _link(roster, guardian.id, student)
        if link and link.may_pick_up and not link.barred and _valid_on(link, day):
            found.append((guardian, link))
    return sorted(found, key=lambda pair: pair[0].id)


def barred(roster: Roster, student: str) -> list[protocol.RosterGuardian]:
    return [g for g in roster.guardians.values() if (link := _link(roster, g.id, student)) and link.barred]
