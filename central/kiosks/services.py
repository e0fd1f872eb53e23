"""Service functions shared by the API, the pages and the command line (keyword-only)."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from central.core import audit, clock
from central.core.errors import Invalid
from central.kiosks.models import Event, KioskClock, SafetyIncident
from central.schools.models import Kiosk, School
from gateway import protocol


def register_kiosk(
    session: Session, *, school: School, kiosk: str, secret: str | None = None, actor: audit.Actor | str | None = None
) -> tuple[Kiosk, str]:
    """Register a kiosk (or give it a new secret). Returns the kiosk and its hex secret.

    The school must exist (``create_school``). Every registration is audited in ``actor``'s name
    (default: the session's actor): which kiosk, and whether its secret is new, replaced or
    unchanged; never the secret.
    """
    protocol.check_id(kiosk, "kiosk")
    if secret is not None:
        try:
            if len(bytes.fromhex(secret)) < 16:
                raise ValueError
        except ValueError:
            raise ValueError("a kiosk secret is at least 32 hex digits") from None
    secret = secret or secrets.token_hex(32)
    row = session.exec(select(Kiosk).where(Kiosk.school_id == school.id, Kiosk.code == kiosk)).first()
    if row is None:
        row, change = Kiosk(school_id=school.id, code=kiosk, secret=secret), "new"
    else:
        same = hmac.compare_digest(bytes.fromhex(row.secret), bytes.fromhex(secret))
        change = "unchanged" if same else "replaced"
        row.secret = secret
    session.add(row)
    session.flush()
    audit.record(
        session, actor=actor or session.info.get("actor", "system"), action="kiosk.secret", entity=f"kiosk:{row.id}",
        school_id=school.id, after={"school": school.code, "kiosk": kiosk, "secret": change},
    )
    session.commit()
    session.refresh(row)
    return row, secret


def list_events(
    session: Session,
    *,
    school: School,
    kiosk: str | None = None,
    kinds: list[str] | None = None,
    after_kiosk: str | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> list[dict]:
    """A school's events in (kiosk, seq) order, ``kinds`` only when given, after the cursor
    ``(after_kiosk, after_seq)``: the last event of the previous page.

    (kiosk, seq) is unique, so every event is on exactly one page. ``after_seq`` alone meant "seq
    above N" over every kiosk at once, which skips and repeats events with several kiosks; it still
    works with ``kiosk`` (one kiosk's events after seq N), and without a kiosk it is refused.
    """
    if after_kiosk is None:
        if kiosk is None and after_seq:
            raise Invalid("events_cursor_needs_kiosk")
        after_kiosk = kiosk
    # The school's kiosks in order first (a few), then each kiosk's events in seq order until the page
    # is full: each is a range of the (kiosk, seq) index, in every month's partition, whereas one query
    # ordered by the kiosk's code sorted the school's whole history for every page.
    gates = select(Kiosk.id, Kiosk.code).where(Kiosk.school_id == school.id).order_by(Kiosk.code)
    if after_kiosk is not None:
        gates = gates.where(Kiosk.code >= after_kiosk)
    if kiosk is not None:
        gates = gates.where(Kiosk.code == kiosk)
    found: list[tuple[Event, str]] = []
    for kiosk_id, code in session.exec(gates).all():
        stmt = select(Event).where(Event.school_id == school.id, Event.kiosk_id == kiosk_id).order_by(Event.seq).limit(limit - len(found))
        if code == after_kiosk:
            stmt = stmt.where(Event.seq > after_seq)
        if kinds:
            stmt = stmt.where(col(Event.kind).in_(kinds))
        found += [(event, code) for event in session.exec(stmt)]
        if len(found) >= limit:
            break
    clocks = _clocks(session, {(event.kiosk_id, event.boot) for event, _ in found if event.boot is not None})
    return [_event_public(event, code, school, clocks.get((event.kiosk_id, event.boot))) for event, code in found]


def _clocks(session: Session, keys: set[tuple[int, int]]) -> dict[tuple[int, int], int]:
    if not keys:
        return {}
    stmt = select(KioskClock).where(col(KioskClock.kiosk_id).in_({k for k, _ in keys}))
    return {(c.kiosk_id, c.boot): c.base_ms for c in session.exec(stmt) if (c.kiosk_id, c.boot) in keys}


def corrected_time(base_ms: int, mono: int, fallback: datetime) -> datetime:
    """A boot's monotonic reading on central's clock; ``fallback`` (the kiosk's own time) when the
    map gives no time within the protocol's years: one bad sample never breaks a read."""
    try:
        corrected = datetime.fromtimestamp((base_ms + mono) / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return fallback
    return corrected if protocol.EARLIEST <= corrected < protocol.LATEST else fallback


def _event_public(event: Event, kiosk: str, school: School, base_ms: int | None) -> dict:
    at = clock.as_utc(event.at)
    # Central's own estimate of when it happened: the kiosk's monotonic clock mapped onto
    # central's. Falls back to the kiosk's wall clock for a boot that never reached central.
    corrected = at
    if base_ms is not None and event.mono is not None:
        corrected = corrected_time(base_ms, event.mono, at)
    out = {
        "id": event.id,
        "school": school.code,
        "kiosk": kiosk,
        "seq": event.seq,
        "kind": event.kind,
        "at": at.isoformat(),
        "at_corrected": corrected.isoformat(timespec="milliseconds"),
        "received_at": clock.as_utc(event.received_at).isoformat(),
    }
    for name in ("card", "student", "guardian", "staff", "session", "reason", "operator", "note", "roster_version", "boot", "mono"):
        if getattr(event, name) is not None:
            out[name] = getattr(event, name)
    return out


def list_all_incidents(session: Session, *, no_school: bool = False, limit: int = 100) -> list[dict]:
    """Every school's incidents and those that name no known school (a topic with an unknown or
    malformed school id), newest first, each with its school's code or None: the district's view.
    ``no_school`` keeps only the latter, which no school's own list shows."""
    stmt = (
        select(SafetyIncident, School.code)
        .join(School, col(SafetyIncident.school_id) == School.id, isouter=True)
        .order_by(col(SafetyIncident.id).desc())
        .limit(limit)
    )
    if no_school:
        stmt = stmt.where(col(SafetyIncident.school_id).is_(None))
    return [{**incident.model_dump(exclude={"payload"}), "school": code} for incident, code in session.exec(stmt)]


def list_incidents(session: Session, *, school: School | None = None, limit: int = 100) -> list[SafetyIncident]:
    stmt = select(SafetyIncident).order_by(col(SafetyIncident.id).desc()).limit(limit)
    if school is not None:
        stmt = stmt.where(SafetyIncident.school_id == school.id)
    return list(session.exec(stmt))
