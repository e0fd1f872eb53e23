"""Service functions shared by the API, the pages and the command line (keyword-only)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from central.models import Event, Kiosk, KioskClock, SafetyIncident, School
from gateway import protocol


class NotFound(LookupError):
    """A named school, kiosk or record does not exist."""


def get_school(session: Session, *, code: str) -> School:
    school = session.exec(select(School).where(School.code == code)).first()
    if school is None:
        raise NotFound(f"no school {code!r}")
    return school


def ensure_school(session: Session, *, code: str, name: str | None = None, timezone: str = "Asia/Shanghai") -> School:
    protocol.check_id(code, "school")
    school = session.exec(select(School).where(School.code == code)).first()
    if school is None:
        school = School(code=code, name=name or code, timezone=timezone)
        session.add(school)
        session.commit()
        session.refresh(school)
    return school


def register_kiosk(session: Session, *, school: str, kiosk: str, secret: str | None = None) -> tuple[Kiosk, str]:
    """Register a kiosk (or give it a new secret). Returns the kiosk and its hex secret."""
    protocol.check_id(kiosk, "kiosk")
    if secret is not None:
        try:
            if len(bytes.fromhex(secret)) < 16:
                raise ValueError
        except ValueError:
            raise ValueError("a kiosk secret is at least 32 hex digits") from None
    secret = secret or secrets.token_hex(32)
    found = get_school(session, code=school)
    row = session.exec(select(Kiosk).where(Kiosk.school_id == found.id, Kiosk.code == kiosk)).first()
    if row is None:
        row = Kiosk(school_id=found.id, code=kiosk, secret=secret)
    else:
        row.secret = secret
    session.add(row)
    session.commit()
    session.refresh(row)
    return row, secret


def list_events(
    session: Session, *, school: str, kiosk: str | None = None, after_seq: int = 0, limit: int = 100
) -> list[dict]:
    found = get_school(session, code=school)
    stmt = (
        select(Event, Kiosk.code)
        .join(Kiosk, col(Event.kiosk_id) == Kiosk.id)
        .where(Event.school_id == found.id, Event.seq > after_seq)
        .order_by(Kiosk.code, Event.seq)
        .limit(limit)
    )
    if kiosk is not None:
        stmt = stmt.where(Kiosk.code == kiosk)
    found = session.exec(stmt).all()
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


def _event_public(event: Event, kiosk: str, school: str, base_ms: int | None) -> dict:
    at = _utc(event.at)
    # Central's own estimate of when it happened: the kiosk's monotonic clock mapped onto
    # central's. Falls back to the kiosk's wall clock for a boot that never reached central.
    corrected = at
    if base_ms is not None and event.mono is not None:
        corrected = corrected_time(base_ms, event.mono, at)
    out = {
        "id": event.id,
        "school": school,
        "kiosk": kiosk,
        "seq": event.seq,
        "kind": event.kind,
        "at": at.isoformat(),
        "at_corrected": corrected.isoformat(timespec="milliseconds"),
        "received_at": _utc(event.received_at).isoformat(),
    }
    for name in ("card", "student", "guardian", "staff", "session", "reason", "operator", "note", "roster_version", "boot", "mono"):
        if getattr(event, name) is not None:
            out[name] = getattr(event, name)
    return out


def list_incidents(session: Session, *, school: str | None = None, limit: int = 100) -> list[SafetyIncident]:
    stmt = select(SafetyIncident).order_by(col(SafetyIncident.id).desc()).limit(limit)
    if school is not None:
        stmt = stmt.where(SafetyIncident.school_id == get_school(session, code=school).id)
    return list(session.exec(stmt))


def _utc(value):
    # SQLite hands back naive datetimes; every stored time is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
