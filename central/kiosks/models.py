"""The gates: registered kiosks, the events they sent (the event log), their clocks, safety incidents."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from central.core.clock import utcnow
from central.core.columns import utc_column


class Event(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("kiosk_id", "seq"),
        sa.UniqueConstraint("school_id", "feed_pos", name="event_feed_pos"),
        # The reads of the pages: a school's day, a child's history (a kiosk's seqs: the unique key).
        # On PostgreSQL the table is partitioned by month of ``at`` (central/kiosks/partitions.py).
        sa.Index("ix_event_school_at", "school_id", "at"),
        sa.Index("ix_event_school_student_at", "school_id", "student", "at"),
    )

    id: str = Field(primary_key=True, max_length=36)  # UUIDv7 from the kiosk
    school_id: int = Field(foreign_key="school.id", index=True)
    kiosk_id: int = Field(foreign_key="kiosk.id")
    seq: int
    kind: str = Field(max_length=16)
    at: datetime = Field(sa_column=utc_column(nullable=False))  # kiosk wall clock, in UTC
    received_at: datetime = Field(sa_column=utc_column(nullable=False))
    card: str | None = Field(default=None, max_length=64)
    student: str | None = Field(default=None, max_length=64)
    guardian: str | None = Field(default=None, max_length=64)
    staff: str | None = Field(default=None, max_length=64)
    session: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=500)
    operator: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=500)
    roster_version: int | None = None
    # The kiosk's boot counter and ms since that boot (monotonic); with KioskClock they give the
    # event's time on central's clock when the kiosk's wall clock was wrong.
    boot: int | None = None
    mono: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    prev: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    sig: str = Field(max_length=64)
    # Its place in the school's feed (1, 2, …: the order central stored the school's events), which every
    # gate of the school follows (``School.feed_head`` is the last place given).
    feed_pos: int | None = None


class KioskClock(SQLModel, table=True):
    """How one boot of a kiosk's monotonic clock maps onto central's clock.

    ``base`` is the central time at mono 0, estimated as the least (received - mono) seen for
    the boot: a message can only arrive after it was sent, so the least is the tightest.
    """

    __tablename__ = "kiosk_clock"
    __table_args__ = (sa.UniqueConstraint("kiosk_id", "boot"),)

    id: int | None = Field(default=None, primary_key=True)
    kiosk_id: int = Field(foreign_key="kiosk.id", index=True)
    boot: int
    base_ms: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))  # epoch ms, UTC
    skew_reported_ms: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))


class SafetyIncident(SQLModel, table=True):
    __tablename__ = "safety_incident"
    # On PostgreSQL partitioned by month of ``created_at`` (central/kiosks/partitions.py).
    __table_args__ = (sa.Index("ix_safety_incident_school_created", "school_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int | None = Field(default=None, foreign_key="school.id", index=True)
    kiosk: str | None = Field(default=None, max_length=64)
    seq: int | None = None
    kind: str = Field(max_length=32)  # malformed_payload, bad_signature, broken_chain, events_lost, unknown_kiosk, …
    detail: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    topic: str = Field(default="", max_length=300)
    payload: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
    # How many incidents this row stands for: past a few of one kind and kiosk in a window, ingest
    # counts the rest on one row (invented kiosk names, forged seqs) instead of a row each.
    count: int = Field(default=1, sa_column=sa.Column(sa.Integer, nullable=False, server_default="1"))


class ChildAlert(SQLModel, table=True):
    """An alert about one child in one session (absent after the start, still on site after the end),
    stored once however many gates raise it: the first gate's event, and how many gates raised it."""

    __tablename__ = "child_alert"
    __table_args__ = (sa.UniqueConstraint("school_id", "kind", "student", "session", name="child_alert_once"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    kind: str = Field(max_length=32)  # absent, late_pickup
    student: str = Field(max_length=64)  # the student number, as in the event
    session: str = Field(max_length=64)
    at: datetime = Field(sa_column=utc_column(nullable=False))  # the first gate's event time
    kiosk: str = Field(max_length=64)  # the first gate to raise it
    event_id: str = Field(max_length=36)
    raised: int = Field(default=1, sa_column=sa.Column(sa.Integer, nullable=False, server_default="1"))  # gates (events) that raised it
