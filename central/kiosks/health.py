"""Each gate's health, as central knows it: when it last heard from the gate, and the gate's last status.

The ingest notes every gate it hears from (``last_seen``: events or a status, not an old retained
one) and keeps the last status each gate sent (queue depth, last seq written and acked, roster
version, clock offset, reader state, the guard signed in), also when the gate's will says it went
offline: the values are the last known, and ``online`` says whether they are current.

A gate central has heard nothing from for ``gate_silent_minutes`` while a session of its school is
running is a ``gate_silent`` safety incident: children may be passing a gate nobody sees. It is
reported once per silence (``silence_reported_at``), again only after the gate spoke in between.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from central.core import clock
from central.kiosks.models import SafetyIncident
from central.programme.models import CareSession
from central.schools.models import Kiosk, School

log = logging.getLogger(__name__)
KIOSK = Kiosk.__table__
#: what central keeps of a status (the protocol's Status and its extensions): scalars, text cut short
HEALTH_KEYS = ("online", "at", "queue", "last_seq", "acked_seq", "roster_version", "clock_offset_ms", "reader", "guard", "boot", "refused")


def health_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """The health a status reports, from its decoded (and already validated) JSON."""
    kept = {}
    for key in HEALTH_KEYS:
        value = raw.get(key)
        if isinstance(value, bool | int | float):
            kept[key] = value
        elif isinstance(value, str):
            kept[key] = value[:100]
    return kept


def is_will(raw: dict[str, Any]) -> bool:
    """A kiosk's will: offline and no values (no ``at``), as ``gateway.protocol.Status.is_will``."""
    return raw.get("online") is False and "at" not in raw


def note(conn: sa.Connection, *, seen: set[int], statuses: dict[int, tuple[dict[str, Any], bool, bool]], at: datetime) -> None:
    """Record, in the ingest's transaction, the gates heard from and their statuses (kiosk id ->
    (the status's fields, online, retained)). A retained status is an old one: its values are kept
    if none newer is, but it says nothing of when the gate was last heard from."""
    heard = sorted(seen | {k for k, (_, _, retained) in statuses.items() if not retained})
    if heard:  # one statement executed for many: a city's batch hears from hundreds of gates
        conn.execute(KIOSK.update().where(KIOSK.c.id == sa.bindparam("k_id")).values(last_seen=at), [{"k_id": k} for k in heard])
    for kiosk_id, (fields, online, retained) in sorted(statuses.items()):
        query = KIOSK.update().where(KIOSK.c.id == kiosk_id)
        if is_will(fields):
            # The will carries no values (the kiosk sets it once per connection, docs/wire-protocol.md):
            # it says the gate went, and the last values stay as they were, with when they arrived.
            conn.execute(query.values(online=False))
            continue
        values = {"online": online, "status": health_fields(fields), "status_at": at}
        if retained:
            query = query.where(KIOSK.c.status_at.is_(None))  # never over a status heard live
        conn.execute(query.values(**values))


def is_silent(last_seen: datetime | None, now: datetime, limit: timedelta) -> bool:
    """The rule: heard from before, and not for longer than ``limit``. A gate never heard from is
    not silent (not installed yet), and one heard exactly ``limit`` ago is not silent yet."""
    return last_seen is not None and now - clock.as_utc(last_seen) > limit


def gates(session: Session, *, school: School, now: datetime, limit: timedelta) -> list[dict[str, Any]]:
    """Every gate of the school: online, last seen, last seq stored, its last status's values, silent."""
    rows = session.exec(select(Kiosk).where(Kiosk.school_id == school.id).order_by(col(Kiosk.code))).all()
    out = []
    for k in rows:
        status = k.status or {}
        out.append({
            "kiosk": k.code,
            "online": bool(k.online) and not is_silent(k.last_seen, now, limit),
            "last_seen": clock.as_utc(k.last_seen) if k.last_seen else None,
            "silent": is_silent(k.last_seen, now, limit),
            "last_seq_stored": k.acked_seq,
            "last_seq_written": status.get("last_seq"),
            "last_seq_acked": status.get("acked_seq"),
            "queue": status.get("queue"),
            "roster_version": status.get("roster_version"),
            "clock_offset_ms": status.get("clock_offset_ms"),
            "reader": status.get("reader"),
            "guard": status.get("guard"),
            "status_at": clock.as_utc(k.status_at) if k.status_at else None,
        })
    return out


def report_silent(session: Session, *, now: datetime, limit: timedelta) -> list[SafetyIncident]:
    """Store a ``gate_silent`` incident for each gate silent while a session of its school runs, once
    per silence. Returns the incidents stored (committed)."""
    running = select(CareSession.school_id).where(col(CareSession.starts_at) <= now, col(CareSession.ends_at) > now)
    candidates = session.exec(
        select(Kiosk).where(col(Kiosk.school_id).in_(running), col(Kiosk.last_seen).is_not(None)).order_by(col(Kiosk.id))
    ).all()
    stored = []
    for kiosk in candidates:
        if not is_silent(kiosk.last_seen, now, limit):
            continue
        last_seen = clock.as_utc(kiosk.last_seen)
        if kiosk.silence_reported_at is not None and clock.as_utc(kiosk.silence_reported_at) >= last_seen:
            continue  # reported already, and the gate has not spoken since
        minutes = int((now - last_seen).total_seconds() // 60)
        incident = SafetyIncident(
            school_id=kiosk.school_id, kiosk=kiosk.code, kind="gate_silent", created_at=now,
            detail=f"nothing from gate {kiosk.code} since {last_seen.isoformat(timespec='seconds')} "
                   f"({minutes} min) while a session runs",
        )
        # Through the table, not the row: the gate's health is sync churn, not a change to audit.
        session.execute(KIOSK.update().where(KIOSK.c.id == kiosk.id).values(silence_reported_at=now))
        session.add(incident)
        stored.append(incident)
    session.commit()
    for incident in stored:
        session.refresh(incident)
        log.warning("safety incident gate_silent: %s", incident.detail)
    return stored
