"""A school's safety list (issue 14): one list of what a principal must review, read from what central
already stores, each item under a stable key its review steps attach to.

Where each kind of item comes from, and its key:

- ``pickup_refused``: a gate's ``pickup_denied`` event, by its reason (``barred`` first); ``event:<id>``
- ``code_reused`` / ``code_revoked``: a one-time pickup code used a second time, or used after it was
  revoked or voided (the ingest's ``pickup_code_reused`` / ``pickup_code_revoked`` incidents); ``incident:<id>``
- ``override``: a guard let a child through what the rules refused, with the typed reason; ``event:<id>``
- ``late_pickup``: a child still on site after the end plus grace (the child alert, once however many
  gates raised it); ``alert:<id>``
- ``unexcused_absence``: a child expected who never came (the ``absent`` child alert) on a day with no
  excuse (``absence_excuse``, 请假); ``alert:<id>``
- ``unknown_card``: a card no roster knows was tapped at a gate; ``event:<id>``
- ``bad_signature``: a message signed with another key than the gate's; ``incident:<id>``
- ``events_lost``: events of a gate that central acknowledged and then lost (its database restored from
  an older backup); the gate no longer has them (the ingest's ``events_lost``); ``incident:<id>``
- ``clock_skew``: a gate's clock off central's (``clock_skew`` and ``time_out_of_range`` incidents); ``incident:<id>``
- ``gate_silent``: nothing heard from a gate while a session ran (``gate_silent`` incidents); ``incident:<id>``
- ``gate_offline``: a gate that said it had lost central (its ``alert`` event, reason ``offline``),
  ``event:<id>``; and a gate offline now by its health (its will arrived), ``gate:<kiosk>:<ms of last_seen>``
  (one key per silence: when the gate comes back the item leaves the list, its review stays).

The order: by *section* (``SECTIONS``: refused pickups by reason with barred first, then code misuse,
overrides, late pickups, unexcused absences, unknown cards, bad signatures, events lost at central, clock skew, silent and offline gates), then
newest first, then the key. Every part of that order is fixed when the item is stored, so a page's
cursor (the last item's section, time and id) never skips or repeats an item, whatever arrives
between two pages: an item stored later lands either before the cursor (on the next first page) or
after it (on a page still to come).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from central.core import clock
from central.core.db import local_date
from central.core.errors import Conflict, Invalid, Missing
from central.kiosks.models import ChildAlert, Event, SafetyIncident
from central.programme.models import AbsenceExcuse
from central.safety.models import STEPS, SafetyReview
from central.schools.models import Kiosk, School, Student

#: the reasons of ``pickup_denied`` (docs/wire-protocol.md), in the order a principal reads them
REFUSALS = ("barred", "code_issuer_barred", "not_linked", "not_allowed", "link_not_valid",
            "code_issuer_not_allowed", "guard_refused", "code_locked", "code_wrong")
KINDS = ("pickup_refused", "code_reused", "code_revoked", "override", "late_pickup", "unexcused_absence", "unknown_card",
         "bad_signature", "events_lost", "clock_skew", "gate_silent", "gate_offline")
#: incident kinds as the ingest stores them -> the item's kind
INCIDENT_KINDS = {
    "pickup_code_reused": "code_reused", "pickup_code_revoked": "code_revoked", "bad_signature": "bad_signature",
    "events_lost": "events_lost",
    "clock_skew": "clock_skew", "time_out_of_range": "clock_skew", "gate_silent": "gate_silent",
}
MAX_PAGE = 500


@dataclass(frozen=True)
class Filters:
    day: date | None = None  # the school's date the item happened on
    kinds: tuple[str, ...] = ()  # empty: every kind
    gate: str | None = None
    child: str | None = None  # a student number


@dataclass
class Item:
    key: str
    kind: str
    section: int
    at: datetime  # UTC: when it happened (the gate's clock for events, central's for incidents)
    tie: str  # the source row's id, the last part of the order
    reason: str | None = None
    kiosk: str | None = None
    student: str | None = None
    name: str | None = None  # the child's name, filled in for the page
    guardian: str | None = None
    operator: str | None = None
    card: str | None = None
    note: str | None = None
    detail: str | None = None
    count: int = 1
    state: str = "open"
    review: dict[str, Any] | None = None  # the newest step: step, note, by, at
    steps: list[dict[str, Any]] = field(default_factory=list)  # every step, for one item

    def public(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in ("key", "kind", "reason", "at", "kiosk", "student", "name", "guardian",
                                                      "operator", "card", "note", "detail", "count", "state", "review")}
        return out


def _day_range(school: School, day: date) -> tuple[datetime, datetime]:
    if not date(2000, 1, 1) <= day <= date(2100, 12, 30):
        raise Invalid("safety.day", day=day.isoformat())
    start = datetime.combine(day, time(0), clock.zone(school))
    return start, start + timedelta(days=1)


# --- the sources, one per section ------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    kind: str
    fetch: Callable[..., list[Item]]  # (session, school, filters, after: (at, tie) | None, limit) -> items
    count: Callable[[Session, School], int]  # (session, school) -> how many of its items, of every day, are open


def _event_item(e: Event, code: str, kind: str) -> Item:
    return Item(key=f"event:{e.id}", kind=kind, section=0, at=clock.as_utc(e.at), tie=e.id, reason=e.reason,
                kiosk=code, student=e.student, guardian=e.guardian, operator=e.operator, card=e.card, note=e.note)


def _incident_item(i: SafetyIncident) -> Item:
    return Item(key=f"incident:{i.id}", kind=INCIDENT_KINDS[i.kind], section=0, at=clock.as_utc(i.created_at),
                tie=str(i.id), reason=i.kind, kiosk=i.kiosk, detail=i.detail, count=i.count)


def _alert_item(a: ChildAlert) -> Item:
    return Item(key=f"alert:{a.id}", kind="late_pickup", section=0, at=clock.as_utc(a.at), tie=str(a.id),
                reason="late_pickup", kiosk=a.kiosk, student=a.student, note=f"session:{a.session}", count=a.raised)


def _after(at_col, id_col, after: tuple[datetime, Any] | None):
    """Newest first, then by id: the rows after the cursor's (time, id)."""
    if after is None:
        return sa.true()
    at, tie = after
    return sa.or_(at_col < at, sa.and_(at_col == at, id_col > tie))


def _key(prefix: str, id_col):
    """SQL: an item's key from its source row's id, as ``_event_item`` and the others write it."""
    return sa.literal(prefix, sa.String).concat(sa.cast(id_col, sa.String))


def _events(kind: str, item_kind: str, reasons: tuple[str, ...] | None = None, *, other: tuple[str, ...] = ()):
    """Events of one kind (and reasons; ``other``: any reason but these) as items: ``fetch`` and ``count``."""

    def rows(school: School, f: Filters, *columns):
        stmt = (
            select(*columns).select_from(Event).join(Kiosk, col(Kiosk.id) == Event.kiosk_id)
            .where(Event.school_id == school.id, Event.kind == kind)
        )
        if reasons is not None:
            stmt = stmt.where(col(Event.reason).in_(reasons))
        if other:
            stmt = stmt.where(sa.or_(col(Event.reason).is_(None), col(Event.reason).not_in(other)))
        if f.gate is not None:
            stmt = stmt.where(Kiosk.code == f.gate)
        if f.child is not None:
            stmt = stmt.where(Event.student == f.child)
        if f.day is not None:
            start, end = _day_range(school, f.day)
            stmt = stmt.where(col(Event.at) >= start, col(Event.at) < end)
        return stmt

    def fetch(session: Session, school: School, f: Filters, after, limit: int) -> list[Item]:
        stmt = rows(school, f, Event, Kiosk.code).where(_after(col(Event.at), col(Event.id), after))
        found = session.exec(stmt.order_by(col(Event.at).desc(), col(Event.id)).limit(limit)).all()
        return [_event_item(e, code, item_kind) for e, code in found]

    def count(session: Session, school: School) -> int:
        return session.exec(rows(school, Filters(), sa.func.count()).where(_open(school, _key("event:", Event.id)))).one()

    return fetch, count


def _incidents(item_kind: str):
    kinds = tuple(k for k, v in INCIDENT_KINDS.items() if v == item_kind)

    def rows(school: School, f: Filters, *columns):
        stmt = select(*columns).select_from(SafetyIncident).where(SafetyIncident.school_id == school.id,
                                                                   col(SafetyIncident.kind).in_(kinds))
        if f.gate is not None:
            stmt = stmt.where(SafetyIncident.kiosk == f.gate)
        if f.day is not None:
            start, end = _day_range(school, f.day)
            stmt = stmt.where(col(SafetyIncident.created_at) >= start, col(SafetyIncident.created_at) < end)
        return stmt

    def fetch(session: Session, school: School, f: Filters, after, limit: int) -> list[Item]:
        if f.child is not None:
            return []  # an incident names a gate, not a child
        stmt = rows(school, f, SafetyIncident).where(
            _after(col(SafetyIncident.created_at), col(SafetyIncident.id), None if after is None else (after[0], int(after[1]))))
        found = session.exec(stmt.order_by(col(SafetyIncident.created_at).desc(), col(SafetyIncident.id)).limit(limit)).all()
        return [_incident_item(i) for i in found]

    def count(session: Session, school: School) -> int:
        stmt = rows(school, Filters(), sa.func.count()).where(_open(school, _key("incident:", SafetyIncident.id)))
        return session.exec(stmt).one()

    return fetch, count


def _child_alerts(item_kind: str, where: Callable[[School], tuple]):
    """Child alerts (those ``where`` gives conditions for) as items: ``fetch`` and ``count``."""

    def rows(school: School, f: Filters, *columns):
        stmt = select(*columns).select_from(ChildAlert).where(ChildAlert.school_id == school.id, *where(school))
        if f.gate is not None:
            stmt = stmt.where(ChildAlert.kiosk == f.gate)
        if f.child is not None:
            stmt = stmt.where(ChildAlert.student == f.child)
        if f.day is not None:
            start, end = _day_range(school, f.day)
            stmt = stmt.where(col(ChildAlert.at) >= start, col(ChildAlert.at) < end)
        return stmt

    def fetch(session: Session, school: School, f: Filters, after, limit: int) -> list[Item]:
        stmt = rows(school, f, ChildAlert).where(
            _after(col(ChildAlert.at), col(ChildAlert.id), None if after is None else (after[0], int(after[1]))))
        found = session.exec(stmt.order_by(col(ChildAlert.at).desc(), col(ChildAlert.id)).limit(limit)).all()
        return [replace(_alert_item(a), kind=item_kind, reason=a.kind) for a in found]

    def count(session: Session, school: School) -> int:
        return session.exec(rows(school, Filters(), sa.func.count()).where(_open(school, _key("alert:", ChildAlert.id)))).one()

    return fetch, count


def _unexcused(school: School) -> tuple:
    """SQL: an absent alert (a child expected at a session who never came) whose day, the school's date
    of the alert, carries no excuse (请假) for the child."""
    excused = sa.exists().where(
        AbsenceExcuse.school_id == school.id, col(AbsenceExcuse.student_id) == Student.id, Student.school_id == school.id,
        Student.student_no == ChildAlert.student, AbsenceExcuse.day == local_date(clock.zone(school).key, ChildAlert.at),
    )
    return ChildAlert.kind == "absent", ~excused


_late_pickups, _count_late_pickups = _child_alerts("late_pickup", lambda school: (ChildAlert.kind == "late_pickup",))
_unexcused_absences, _count_unexcused_absences = _child_alerts("unexcused_absence", _unexcused)


def _gate_key(code: str, last_seen: datetime) -> str:
    return f"gate:{code}:{int(clock.as_utc(last_seen).timestamp() * 1000)}"


def _offline_gates(session: Session, school: School, f: Filters, after, limit: int | None) -> list[Item]:
    """Gates whose health says offline now (a handful per school: filtered here, not in SQL); ``limit``
    None: every one."""
    if f.child is not None:
        return []
    rows = session.exec(
        select(Kiosk).where(Kiosk.school_id == school.id, col(Kiosk.online).is_(False), col(Kiosk.last_seen).is_not(None))
    ).all()
    items = [
        Item(key=_gate_key(k.code, k.last_seen), kind="gate_offline", section=0, at=clock.as_utc(k.last_seen), tie=k.code,
             reason="offline_now", kiosk=k.code)
        for k in rows if f.gate is None or k.code == f.gate
    ]
    if f.day is not None:
        start, end = _day_range(school, f.day)
        items = [i for i in items if start <= i.at < end]
    if after is not None:
        items = [i for i in items if i.at < after[0] or (i.at == after[0] and i.tie > after[1])]
    items.sort(key=lambda i: (-i.at.timestamp(), i.tie))
    return items[:limit]


def _count_offline_gates(session: Session, school: School) -> int:
    keys = {i.key for i in _offline_gates(session, school, Filters(), None, None)}
    closed = set(session.exec(_closed(school).where(col(SafetyReview.item).in_(keys)))) if keys else set()
    return len(keys - closed)


SECTIONS: tuple[Section, ...] = (
    *(Section("pickup_refused", *_events("pickup_denied", "pickup_refused", (reason,))) for reason in REFUSALS),
    Section("pickup_refused", *_events("pickup_denied", "pickup_refused", other=REFUSALS)),
    Section("code_reused", *_incidents("code_reused")),
    Section("code_revoked", *_incidents("code_revoked")),
    Section("override", *_events("override", "override")),
    Section("late_pickup", _late_pickups, _count_late_pickups),
    Section("unexcused_absence", _unexcused_absences, _count_unexcused_absences),
    Section("unknown_card", *_events("unknown_card", "unknown_card")),
    Section("bad_signature", *_incidents("bad_signature")),
    Section("events_lost", *_incidents("events_lost")),
    Section("clock_skew", *_incidents("clock_skew")),
    Section("gate_silent", *_incidents("gate_silent")),
    Section("gate_offline", *_events("alert", "gate_offline", ("offline",))),
    Section("gate_offline", _offline_gates, _count_offline_gates),
)


# --- the cursor --------------------------------------------------------------------------------------


def encode_cursor(item: Item) -> str:
    raw = json.dumps([item.section, item.at.isoformat(), item.tie], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, datetime, str]:
    """The (section, time, id) after which the page starts; a cursor this module did not make is a 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        section, at, tie = json.loads(raw)
        at = datetime.fromisoformat(at)
        if not (isinstance(section, int) and 0 <= section < len(SECTIONS) and isinstance(tie, str) and at.tzinfo):
            raise ValueError
        if SECTIONS[section].fetch in _INTEGER_IDS and not (tie.isascii() and tie.isdigit() and len(tie) < 11):
            raise ValueError
        return section, clock.as_utc(at), tie
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise Invalid("safety.cursor") from None


_INTEGER_IDS = {s.fetch for s in SECTIONS if s.kind in INCIDENT_KINDS.values() or s.kind in ("late_pickup", "unexcused_absence")}


# --- the list, one item, the review --------------------------------------------------------------------


@dataclass
class Page:
    items: list[Item]
    next: str | None  # the cursor of the next page; None: this was the last


def list_items(session: Session, *, school: School, filters: Filters = Filters(), cursor: str | None = None,
               limit: int = 100) -> Page:
    """One page of the school's safety items in the list's order, after ``cursor``."""
    limit = max(1, min(limit, MAX_PAGE))
    unknown = set(filters.kinds) - set(KINDS)
    if unknown:
        raise Invalid("safety.kind", kind=", ".join(sorted(unknown)), allowed=", ".join(KINDS))
    if filters.day is not None:
        _day_range(school, filters.day)  # a day out of range is refused even when no section is read
    start, after = (0, None) if cursor is None else (lambda c: (c[0], (c[1], c[2])))(decode_cursor(cursor))
    found: list[Item] = []
    for index in range(start, len(SECTIONS)):
        section = SECTIONS[index]
        if filters.kinds and section.kind not in filters.kinds:
            continue
        rows = section.fetch(session, school, filters, after if index == start else None, limit + 1 - len(found))
        found += [replace(item, section=index) for item in rows]
        if len(found) > limit:
            break
    page = found[:limit]
    _attach(session, school=school, items=page)
    return Page(page, encode_cursor(page[-1]) if len(found) > limit else None)


def all_items(session: Session, *, school: School, filters: Filters = Filters(), most: int = 10_000) -> list[Item]:
    """Every item the filters keep, in the list's order, at most ``most`` (the exports)."""
    out: list[Item] = []
    cursor = None
    while len(out) < most:
        page = list_items(session, school=school, filters=filters, cursor=cursor, limit=min(MAX_PAGE, most - len(out)))
        out += page.items
        if page.next is None:
            break
        cursor = page.next
    return out


def count_open(session: Session, *, school: School) -> int:
    """How many of the school's items, of every day, are open (``_open``): counted by the database,
    section by section, with the criteria that list them."""
    return sum(section.count(session, school) for section in SECTIONS)


def _attach(session: Session, *, school: School, items: Iterable[Item]) -> None:
    """Each item's review state (its newest step) and the child's name."""
    items = list(items)
    if not items:
        return
    keys = sorted({i.key for i in items})
    steps: dict[str, SafetyReview] = {}
    for row in session.exec(
        select(SafetyReview).where(SafetyReview.school_id == school.id, col(SafetyReview.item).in_(keys))
        .order_by(col(SafetyReview.id))
    ):
        steps[row.item] = row  # the newest wins
    numbers = sorted({i.student for i in items if i.student})
    names = {}
    if numbers:
        names = dict(session.exec(
            select(Student.student_no, Student.name).where(Student.school_id == school.id, col(Student.student_no).in_(numbers))
        ).all())
    for item in items:
        item.name = names.get(item.student) if item.student else None
        row = steps.get(item.key)
        if row is not None:
            item.state = row.state
            item.review = _step(row)


# An item is open until its newest review step (the highest id, as ``_attach`` reads it) closes it:
# acknowledged and followed-up items are still open. ``_attach`` says so of the items it is handed;
# these say it in SQL, for counting the items without reading them.


def _closed(school: School):
    """The keys of the school's closed items."""
    newest = select(sa.func.max(SafetyReview.id)).where(SafetyReview.school_id == school.id).group_by(SafetyReview.item)
    return select(SafetyReview.item).where(SafetyReview.school_id == school.id, SafetyReview.state == STEPS["close"],
                                           col(SafetyReview.id).in_(newest))


def _open(school: School, key) -> sa.ColumnElement[bool]:
    """SQL: the item under ``key`` (a key column or expression of its source row) is open."""
    return key.not_in(_closed(school))


def _step(row: SafetyReview) -> dict[str, Any]:
    return {"step": row.step, "state": row.state, "note": row.note, "by": row.by, "at": clock.as_utc(row.at)}


def named_students(session: Session, *, school: School, items: Iterable[Item]) -> list[Student]:
    """The children the items name, as rows (to log their reads)."""
    numbers = sorted({i.student for i in items if i.student})
    if not numbers:
        return []
    return list(session.exec(select(Student).where(Student.school_id == school.id, col(Student.student_no).in_(numbers))))


def get_item(session: Session, *, school: School, key: str) -> Item:
    """One item of this school by its key, with every review step; another school's, or a key that
    names no safety item (a check-in event, say), is not found."""
    item = _find(session, school=school, key=key)
    if item is None:
        raise Missing("safety.item_not_found", item=key[:100])
    _attach(session, school=school, items=[item])
    item.steps = [_step(r) for r in session.exec(
        select(SafetyReview).where(SafetyReview.school_id == school.id, SafetyReview.item == key).order_by(col(SafetyReview.id))
    )]
    return item


def _find(session: Session, *, school: School, key: str) -> Item | None:
    source, _, ref = key.partition(":")
    if source == "event":
        row = session.exec(select(Event, Kiosk.code).join(Kiosk, col(Kiosk.id) == Event.kiosk_id)
                           .where(Event.id == ref[:36], Event.school_id == school.id)).first()
        if row is None:
            return None
        event, code = row
        kinds = {"pickup_denied": "pickup_refused", "override": "override", "unknown_card": "unknown_card"}
        kind = kinds.get(event.kind) or ("gate_offline" if event.kind == "alert" and event.reason == "offline" else None)
        return None if kind is None else _event_item(event, code, kind)
    if source in ("incident", "alert") and ref.isascii() and ref.isdigit() and len(ref) < 11:
        if source == "incident":
            incident = session.get(SafetyIncident, int(ref))
            if incident is None or incident.school_id != school.id or incident.kind not in INCIDENT_KINDS:
                return None
            return _incident_item(incident)
        alert = session.get(ChildAlert, int(ref))
        if alert is None or alert.school_id != school.id:
            return None
        if alert.kind == "absent":  # an item while its day has no excuse
            found = _unexcused_absences(session, school, Filters(child=alert.student), (clock.as_utc(alert.at), str(alert.id - 1)), 1)
            return found[0] if found and found[0].key == key else None
        return _alert_item(alert) if alert.kind == "late_pickup" else None
    if source == "gate":
        code, _, _ms = ref.rpartition(":")
        return next((i for i in _offline_gates(session, school, Filters(gate=code), None, 10) if i.key == key), None)
    return None


def review(session: Session, *, school: School, key: str, step: str, note: str, actor: str) -> Item:
    """One review step on one item (acknowledge, follow_up, close), with its note. A closed item takes
    no more steps. The step is a row of its own, audited with its actor and time."""
    if step not in STEPS:
        raise Invalid("safety.step", step=step, allowed=", ".join(STEPS))
    item = get_item(session, school=school, key=key)
    if item.state == "closed":
        raise Conflict("safety.closed", item=key)
    session.add(SafetyReview(school_id=school.id, item=key, step=step, state=STEPS[step], note=note, by=actor,
                             at=clock.utcnow()))
    session.commit()
    return get_item(session, school=school, key=key)
