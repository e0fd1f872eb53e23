"""The school's feed: every event central stores, in one order per school, for every gate of the school.

A school has several gates; what one gate saw, the others must know (a child checked in at gate 2 is on
site for gate 1). The ingest gives each event it stores the next place in its school's feed
(``Event.feed_pos``, 1, 2, …) in the transaction that stores it, taking the school's row lock to do so
(``School.feed_head``): two batches of one school are placed in the order they commit, so a gate that
has read up to place N has seen every event placed at or below N. Once committed, the batch is published on
``{prefix}/{school}/feed`` (QoS 1, signed by central); a gate that was away asks for what follows its
last place (``after``): ``GET /api/v1/kiosks/{school}/{kiosk}/feed?after=N``, signed like its other requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from central.core import clock
from central.kiosks.models import Event
from central.schools.models import Kiosk, School
from gateway import protocol

SCHOOL = School.__table__
#: events in one feed message: well inside the protocol's MAX_BATCH
PER_MESSAGE = 500

# PostgreSQL: the schools' rows locked in id order (two batches locking the same schools never wait on
# each other in a circle), then their heads moved on in one update, read back as it writes them.
LOCK_SCHOOLS = sa.text("SELECT count(*) FROM (SELECT id FROM school WHERE id = ANY(CAST(:ids AS integer[])) ORDER BY id FOR UPDATE) AS locked")
MOVE_HEADS = sa.text(
    "UPDATE school SET feed_head = school.feed_head + v.n FROM unnest(CAST(:ids AS integer[]), CAST(:counts AS integer[])) "
    "AS v(id, n) WHERE school.id = v.id RETURNING school.id, school.feed_head"
)


def place(conn: sa.Connection, rows: list[dict[str, Any]]) -> dict[int, int]:
    """Give each row (an event about to be stored) its place in its school's feed, in the rows' order.

    Returns each school's new head. Schools are taken in id order, so two batches that lock the same
    schools never wait on each other in a circle.
    """
    by_school: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_school.setdefault(row["school_id"], []).append(row)
    if not by_school:
        return {}
    order = sorted(by_school)
    counts = [len(by_school[school_id]) for school_id in order]
    if conn.dialect.name == "postgresql":
        # Two statements whatever the number of schools: the rows locked in id order, then all moved on
        # at once from two arrays (a city's batch holds a hundred schools; an executemany of their updates
        # was a tenth of the ingest's CPU, psycopg's own for each row).
        conn.execute(LOCK_SCHOOLS, {"ids": order})
        heads = dict(conn.execute(MOVE_HEADS, {"ids": order, "counts": counts}).all())
    else:
        # One statement executed for many, then the heads read back: the rows stay locked by this
        # transaction's update until it commits.
        conn.execute(
            sa.update(SCHOOL).where(SCHOOL.c.id == sa.bindparam("s_id")).values(feed_head=SCHOOL.c.feed_head + sa.bindparam("s_n")),
            [{"s_id": school_id, "s_n": n} for school_id, n in zip(order, counts)],
        )
        heads = dict(conn.execute(sa.select(SCHOOL.c.id, SCHOOL.c.feed_head).where(SCHOOL.c.id.in_(order))).all())
    for school_id in order:
        mine, head = by_school[school_id], heads[school_id]
        for offset, row in enumerate(mine):
            row["feed_pos"] = head - len(mine) + 1 + offset
    return {school_id: heads[school_id] for school_id in order}


def entry(row: dict[str, Any], kiosk: str) -> dict[str, Any]:
    """One stored event (a row of the event table, as a dict) as the feed carries it."""
    at = row["at"]
    return {
        **{name: row.get(name) for name in protocol.FEED_FIELDS if name not in ("kiosk", "at")},
        "pos": row["feed_pos"],
        "kiosk": kiosk,
        "at": clock.as_utc(at).isoformat(timespec="milliseconds") if isinstance(at, datetime) else at,
    }


def messages(school: str, entries: list[dict[str, Any]], head: int) -> Iterable[dict[str, Any]]:
    """The feed messages of one school's stored batch, at most PER_MESSAGE events each."""
    for start in range(0, len(entries), PER_MESSAGE):
        yield protocol.feed_message(school, entries[start : start + PER_MESSAGE], head)


def after(session: Session, *, school: School, after: int, limit: int = PER_MESSAGE) -> dict[str, Any]:
    """The school's feed after place ``after``: at most ``limit`` events, and the head (a catch-up)."""
    session.refresh(school)  # the head as committed now, not as this session first read it
    rows = session.exec(
        select(Event, Kiosk.code)
        .join(Kiosk, col(Kiosk.id) == Event.kiosk_id)
        .where(Event.school_id == school.id, col(Event.feed_pos) > after)
        .order_by(col(Event.feed_pos))
        .limit(min(limit, PER_MESSAGE))
    ).all()
    return protocol.feed_message(school.code, [entry(event.model_dump(), code) for event, code in rows], school.feed_head)
