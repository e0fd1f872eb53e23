"""partitions: on PostgreSQL event and safety_incident partitioned by month (native declarative
partitioning, a default partition for times outside the months made); on both back-ends the indexes
the pages read by (a school's day, a child's history, a school's incidents by time) (issue 17)

The months are made here for the rows already stored and for the current month and three ahead;
central makes more at every start and ``schoolgate central partitions --ahead N``
(central/kiosks/partitions.py). SQLite keeps one table of each.

Revision ID: 0022_partitions
Revises: 0017_notification
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0022_partitions"
down_revision = "0017_notification"
branch_labels = None
depends_on = None

INDEXES = [
    ("ix_event_school_at", "event", ["school_id", "at"]),
    ("ix_event_school_student_at", "event", ["school_id", "student", "at"]),
    ("ix_safety_incident_school_created", "safety_incident", ["school_id", "created_at"]),
]
AHEAD = 3
# A kiosk's wall clock may say anything from 2000 to 2099: months made for stored rows are capped,
# the rest stay in the default partition (central makes a month when it comes, moving its rows).
MOST_MONTHS = 120

# Refuses an update giving two events one (kiosk, seq) or one (school, feed place): the unique keys
# of a partitioned table hold its partition column, so they cannot say this alone. Ingest only
# inserts (seqs past the kiosk's acked_seq, moved by compare-and-set; places under the school's lock).
_TRIGGER = """
CREATE FUNCTION event_keys_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM event WHERE kiosk_id = NEW.kiosk_id AND seq = NEW.seq AND id <> NEW.id) THEN
        RAISE EXCEPTION 'kiosk % already has an event of seq %', NEW.kiosk_id, NEW.seq
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'event_kiosk_id_seq_key';
    END IF;
    IF NEW.feed_pos IS NOT NULL AND EXISTS (
        SELECT 1 FROM event WHERE school_id = NEW.school_id AND feed_pos = NEW.feed_pos AND id <> NEW.id
    ) THEN
        RAISE EXCEPTION 'school % already has an event at feed place %', NEW.school_id, NEW.feed_pos
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'event_feed_pos';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER event_keys_once BEFORE UPDATE OF kiosk_id, seq, school_id, feed_pos ON event
    FOR EACH ROW EXECUTE FUNCTION event_keys_once();
"""


def _add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _months(conn, table: str, column: str) -> list[datetime]:
    now = datetime.now(UTC)
    current = datetime(now.year, now.month, 1, tzinfo=UTC)
    wanted = {_add_months(current, n) for n in range(AHEAD + 1)}
    stored = conn.execute(sa.text(
        f"SELECT DISTINCT date_trunc('month', {column} AT TIME ZONE 'UTC') FROM {table}_unpartitioned"
    )).scalars()
    near = sorted((datetime(m.year, m.month, 1, tzinfo=UTC) for m in stored), key=lambda m: abs((m - current).days))
    wanted.update(near[:MOST_MONTHS])
    return sorted(wanted)


def _partition(conn, table: str, column: str, keys: list[str], extra: list[str]) -> None:
    """Rebuild ``table`` as partitioned by month of ``column``, with its rows, keys and indexes."""
    conn.execute(sa.text(f"ALTER TABLE {table} RENAME TO {table}_unpartitioned"))
    for name in keys:
        conn.execute(sa.text(f"ALTER TABLE {table}_unpartitioned DROP CONSTRAINT {name}"))
    for name in extra:
        conn.execute(sa.text(f"DROP INDEX {name}"))
    conn.execute(sa.text(f"CREATE TABLE {table} (LIKE {table}_unpartitioned INCLUDING DEFAULTS) PARTITION BY RANGE ({column})"))
    conn.execute(sa.text(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT"))
    for month in _months(conn, table, column):
        name = f"{table}_p{month.year:04d}{month.month:02d}"
        conn.execute(sa.text(
            f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM ('{month.isoformat()}') TO ('{_add_months(month, 1).isoformat()}')"
        ))


def _copy_and_drop(conn, table: str) -> None:
    conn.execute(sa.text(f"INSERT INTO {table} SELECT * FROM {table}_unpartitioned"))
    conn.execute(sa.text(f"DROP TABLE {table}_unpartitioned"))


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        _partition(conn, "event", "at", ["event_pkey", "event_kiosk_id_seq_key", "event_feed_pos",
                                         "event_school_id_fkey", "event_kiosk_id_fkey"], ["ix_event_school_id"])
        for statement in (
            "ALTER TABLE event ADD CONSTRAINT event_pkey PRIMARY KEY (id, at)",
            "ALTER TABLE event ADD CONSTRAINT event_kiosk_id_seq_key UNIQUE (kiosk_id, seq, at)",
            "ALTER TABLE event ADD CONSTRAINT event_feed_pos UNIQUE (school_id, feed_pos, at)",
            "ALTER TABLE event ADD CONSTRAINT event_school_id_fkey FOREIGN KEY (school_id) REFERENCES school (id)",
            "ALTER TABLE event ADD CONSTRAINT event_kiosk_id_fkey FOREIGN KEY (kiosk_id) REFERENCES kiosk (id)",
            "CREATE INDEX ix_event_school_id ON event (school_id)",
        ):
            conn.execute(sa.text(statement))
        _copy_and_drop(conn, "event")
        conn.execute(sa.text(_TRIGGER))
        conn.execute(sa.text("ALTER SEQUENCE safety_incident_id_seq OWNED BY NONE"))
        _partition(conn, "safety_incident", "created_at", ["safety_incident_pkey", "safety_incident_school_id_fkey"],
                   ["ix_safety_incident_school_id"])
        for statement in (
            "ALTER TABLE safety_incident ADD CONSTRAINT safety_incident_pkey PRIMARY KEY (id, created_at)",
            "ALTER TABLE safety_incident ADD CONSTRAINT safety_incident_school_id_fkey FOREIGN KEY (school_id) REFERENCES school (id)",
            "CREATE INDEX ix_safety_incident_school_id ON safety_incident (school_id)",
        ):
            conn.execute(sa.text(statement))
        _copy_and_drop(conn, "safety_incident")
        conn.execute(sa.text("ALTER SEQUENCE safety_incident_id_seq OWNED BY safety_incident.id"))
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def _unpartition(conn, table: str) -> None:
    conn.execute(sa.text(f"CREATE TABLE {table}_plain (LIKE {table} INCLUDING DEFAULTS)"))
    conn.execute(sa.text(f"INSERT INTO {table}_plain SELECT * FROM {table}"))
    conn.execute(sa.text(f"DROP TABLE {table}"))  # and its partitions (archived months are tables of their own)
    conn.execute(sa.text(f"ALTER TABLE {table}_plain RENAME TO {table}"))


def downgrade() -> None:
    conn = op.get_bind()
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("DROP TRIGGER event_keys_once ON event"))
        conn.execute(sa.text("DROP FUNCTION event_keys_once()"))
        _unpartition(conn, "event")
        for statement in (
            "ALTER TABLE event ADD CONSTRAINT event_pkey PRIMARY KEY (id)",
            "ALTER TABLE event ADD CONSTRAINT event_kiosk_id_seq_key UNIQUE (kiosk_id, seq)",
            "ALTER TABLE event ADD CONSTRAINT event_feed_pos UNIQUE (school_id, feed_pos)",
            "ALTER TABLE event ADD CONSTRAINT event_school_id_fkey FOREIGN KEY (school_id) REFERENCES school (id)",
            "ALTER TABLE event ADD CONSTRAINT event_kiosk_id_fkey FOREIGN KEY (kiosk_id) REFERENCES kiosk (id)",
            "CREATE INDEX ix_event_school_id ON event (school_id)",
        ):
            conn.execute(sa.text(statement))
        conn.execute(sa.text("ALTER SEQUENCE safety_incident_id_seq OWNED BY NONE"))
        _unpartition(conn, "safety_incident")
        for statement in (
            "ALTER TABLE safety_incident ADD CONSTRAINT safety_incident_pkey PRIMARY KEY (id)",
            "ALTER TABLE safety_incident ADD CONSTRAINT safety_incident_school_id_fkey FOREIGN KEY (school_id) REFERENCES school (id)",
            "CREATE INDEX ix_safety_incident_school_id ON safety_incident (school_id)",
            "ALTER SEQUENCE safety_incident_id_seq OWNED BY safety_incident.id",
        ):
            conn.execute(sa.text(statement))
