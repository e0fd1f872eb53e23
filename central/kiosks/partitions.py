"""The event store by month on PostgreSQL: ``event`` and ``safety_incident`` are partitioned by range
of their time (native declarative partitioning), one partition a month, and a default partition
for whatever falls outside them (a kiosk whose wall clock says 2090).

Partitions are made ahead (``schoolgate central partitions --ahead N``, and at every start), so
ingest always writes into a month that exists. A month made after rows of it landed in the default
partition takes those rows along. Retention: a month wholly before the school years kept
(``SCHOOLGATE_EVENT_RETENTION_YEARS``, default 2: the current and the previous school year, which
start on 1 September) is detached and kept as a plain table ``archive_<partition>``, out of every
query, each move recorded in the audit log. SQLite keeps one table of each and nothing here applies.

On a partitioned table a unique key must hold the partition column: ``(kiosk_id, seq)`` is unique
with ``at``, which a resent event carries unchanged, so a duplicate delivery still collides; a
kiosk's events are stored once because ingest moves the kiosk's ``acked_seq`` by compare-and-set
(central/kiosks/ingest.py), and a trigger refuses an update that would give two events one seq or
one feed place.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session

from central.core import audit

log = logging.getLogger(__name__)

#: partitioned table -> its partition column
PARTITIONED = {"event": "at", "safety_incident": "created_at"}
#: the unique keys of the models as PostgreSQL holds them, with the partition column added
PG_UNIQUE = {
    "event": {("kiosk_id", "seq"): ("kiosk_id", "seq", "at"), ("school_id", "feed_pos"): ("school_id", "feed_pos", "at")},
    "safety_incident": {},
}
AHEAD = 3  # months made ahead at start
SCHOOL_YEAR_MONTH = 9  # a school year starts on 1 September
_NAME = re.compile(r"^(?P<table>event|safety_incident)_p(?P<year>\d{4})(?P<month>\d{2})$")


def month_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month.year:04d}{month.month:02d}"


def is_partition_name(name: str) -> bool:
    """Whether a table is one of the months (or the default, or an archived month) of a partitioned table."""
    return bool(_NAME.match(name.removeprefix("archive_"))) or name in {f"{t}_default" for t in PARTITIONED}


def partitioned(conn: sa.Connection, table: str = "event") -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return conn.execute(
        sa.text("SELECT EXISTS (SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
                "WHERE c.relname = :t AND c.relnamespace = current_schema()::regnamespace)"), {"t": table}
    ).scalar_one()


def months(conn: sa.Connection, table: str) -> list[datetime]:
    """The months ``table`` has a partition for, oldest first."""
    names = conn.execute(
        sa.text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :t"), {"t": table}
    ).scalars()
    found = [_NAME.match(n) for n in names]
    return sorted(datetime(int(m["year"]), int(m["month"]), 1, tzinfo=UTC) for m in found if m and m["table"] == table)


def create_month(conn: sa.Connection, table: str, month: datetime) -> str | None:
    """Make ``table``'s partition of ``month`` (UTC) unless it exists, moving that month's rows out of
    the default partition first (PostgreSQL refuses a partition whose rows sit in the default).
    Returns the name made, or None."""
    name, column = partition_name(table, month), PARTITIONED[table]
    if month in months(conn, table):
        return None
    start, end = month.isoformat(), add_months(month, 1).isoformat()
    default = f"{table}_default"
    conn.execute(sa.text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
    conn.execute(sa.text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    moved = conn.execute(
        sa.text(f"WITH gone AS (DELETE FROM {default} WHERE {column} >= :start AND {column} < :end RETURNING *) "
                f"INSERT INTO {name} SELECT * FROM gone"), {"start": start, "end": end}
    ).rowcount
    conn.execute(sa.text(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{start}') TO ('{end}')"))
    if moved:
        log.info("partition %s made with %d rows from %s", name, moved, default)
    return name


_LOCK_KEY = 0x5347_5054  # "SGPT": one maker of partitions at a time


def _take_turns(conn: sa.Connection) -> None:
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def ensure(engine: sa.Engine, *, ahead: int = AHEAD, now: datetime) -> list[str]:
    """Partitions of the current month and ``ahead`` months after it, for each partitioned table;
    the names made (none on SQLite, or when they all exist)."""
    made: list[str] = []
    with engine.begin() as conn:
        if not partitioned(conn):
            return made
        _take_turns(conn)  # workers starting together: one makes the month, the others find it
        for table in PARTITIONED:
            for n in range(ahead + 1):
                name = create_month(conn, table, add_months(month_start(now), n))
                if name:
                    made.append(name)
    return made


def retention_start(now: datetime, years: int) -> datetime:
    """The first month kept: 1 September of the school year ``years - 1`` before the current one."""
    now = now.astimezone(UTC)
    current = now.year if now.month >= SCHOOL_YEAR_MONTH else now.year - 1
    return datetime(current - (years - 1), SCHOOL_YEAR_MONTH, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Archived:
    table: str
    month: str  # YYYY-MM
    archive: str
    rows: int


def archive_old(engine: sa.Engine, *, years: int, now: datetime, actor: str = "system") -> list[Archived]:
    """Detach every month before ``retention_start`` and keep it as ``archive_<partition>``; each one
    recorded in the audit log in the same transaction."""
    keep_from = retention_start(now, years)
    done: list[Archived] = []
    with Session(engine) as session:
        conn = session.connection()
        if not partitioned(conn):
            return done
        _take_turns(conn)
        entries = []
        for table in PARTITIONED:
            for month in months(conn, table):
                if add_months(month, 1) > keep_from:
                    continue
                name = partition_name(table, month)
                archive = f"archive_{name}"
                rows = conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()
                conn.execute(sa.text(f"ALTER TABLE {table} DETACH PARTITION {name}"))
                conn.execute(sa.text(f"ALTER TABLE {name} RENAME TO {archive}"))
                item = Archived(table, f"{month.year:04d}-{month.month:02d}", archive, rows)
                done.append(item)
                entries.append(audit.Entry(
                    actor, "partition.archive", f"table:{table}",
                    before={"partition": name, "month": item.month, "rows": rows},
                    after={"archive": archive, "kept_from": keep_from.date().isoformat(), "retention_years": years},
                ))
        audit.record_many(session, entries)
        session.commit()
    for item in done:
        log.info("archived %s's month %s (%d rows) as %s", item.table, item.month, item.rows, item.archive)
    return done
