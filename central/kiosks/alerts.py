"""Alerts about a child, stored once per school, child, session and kind, whichever gate raises them.

Every gate of a school sees the same children (through the school's feed, ``feed.py``), so several
gates may each raise "absent" for one child. Each gate's ``alert`` event is stored like any other (a
gate's chain is never cut); the alert itself is kept once, with the first gate's event and how many
gates raised it, and only the first raises ``ChildAlertRaised`` (what notifications subscribe to).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from central.core import clock
from central.core.events import ChildAlertRaised
from central.kiosks.models import ChildAlert
from central.schools.models import School

ALERT = ChildAlert.__table__
#: the alerts a gate raises about one child in one session (the others — offline, unacked — are the gate's own)
CHILD_KINDS = ("absent", "late_pickup")
KEY = ("school_id", "kind", "student", "session")


def record(conn: sa.Connection, rows: list[dict[str, Any]], kiosk_codes: dict[int, str]) -> list[ChildAlertRaised]:
    """In the ingest's transaction: keep the child alerts among the stored event rows, once each.
    Returns the alerts no gate had raised before (to publish once committed)."""
    found = {}
    for row in rows:
        if row["kind"] == "alert" and row.get("reason") in CHILD_KINDS and row.get("student") and row.get("session"):
            key = (row["school_id"], row["reason"], row["student"], row["session"])
            if key in found:
                found[key]["raised"] += 1
                continue
            found[key] = {"school_id": row["school_id"], "kind": row["reason"], "student": row["student"],
                          "session": row["session"], "at": row["at"], "kiosk": kiosk_codes[row["kiosk_id"]],
                          "event_id": row["id"], "raised": 1}
    if not found:
        return []
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    new = conn.execute(
        insert(ALERT).values(list(found.values())).on_conflict_do_nothing(index_elements=list(KEY))
        .returning(*(ALERT.c[name] for name in KEY))
    ).all()
    first = {tuple(r) for r in new}
    for key, values in found.items():
        if key not in first:  # raised before, by this gate or another
            conn.execute(
                ALERT.update().where(*(ALERT.c[name] == value for name, value in zip(KEY, key, strict=True)))
                .values(raised=ALERT.c.raised + values["raised"])
            )
    return [ChildAlertRaised(school_id=v["school_id"], kind=v["kind"], student=v["student"], session=v["session"],
                             kiosk=v["kiosk"]) for k, v in found.items() if k in first]


def on_day(session: Session, *, school: School, day: date) -> list[ChildAlert]:
    """The school's child alerts first raised on ``day`` (the school's date), oldest first."""
    start = datetime.combine(day, time(0), clock.zone(school))
    return list(session.exec(
        select(ChildAlert)
        .where(ChildAlert.school_id == school.id, col(ChildAlert.at) >= start, col(ChildAlert.at) < start + timedelta(days=1))
        .order_by(col(ChildAlert.at), col(ChildAlert.id))
    ))
