"""A school's people and cards: schools, classes, students, guardians, the links between them, cards.

Each school-scoped row carries ``school_id``; a district holds many schools (P1.1).
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from central.core.clock import utcnow
from central.core.columns import utc_column


class School(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=200)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    roster_version: int = 0
    # The last published snapshot's people (JSON), from which the next delta is computed.
    roster_body: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    # The last place given in the school's feed (kiosks.models.Event.feed_pos): taken with a row lock by
    # the ingest, so the places follow the order the school's events were committed.
    feed_head: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class SchoolClass(SQLModel, table=True):
    __tablename__ = "school_class"
    __table_args__ = (sa.UniqueConstraint("school_id", "grade", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    grade: str = Field(max_length=32)
    name: str = Field(max_length=64)


class Student(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("school_id", "student_no"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    class_id: int = Field(foreign_key="school_class.id", index=True)
    student_no: str = Field(max_length=32)
    name: str = Field(max_length=100)
    poverty_registered: bool = False  # P7.3: pays nothing; never sent to a kiosk
    may_leave_alone: bool = False  # P9.4: written permission to leave alone


class Guardian(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    name: str = Field(max_length=100)
    phone: str = Field(default="", max_length=32)


class GuardianLink(SQLModel, table=True):
    __tablename__ = "guardian_link"
    __table_args__ = (
        sa.UniqueConstraint("guardian_id", "student_id"),
        # P9.4: a custody bar and the right to pick up never stand on one link (migration 0007).
        sa.CheckConstraint("NOT (barred AND may_pick_up)", name="guardian_link_barred_no_pickup"),
    )

    id: int | None = Field(default=None, primary_key=True)
    guardian_id: int = Field(foreign_key="guardian.id", index=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    relation: str = Field(default="", max_length=32)
    may_pick_up: bool = True
    barred: bool = False  # custody order: refused at the kiosk whatever else holds (P9.4)
    # The days this link holds (inclusive, school's local dates); None is open-ended.
    valid_from: date | None = None
    valid_until: date | None = None


class Card(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("school_id", "uid"),
        sa.CheckConstraint("(student_id IS NULL) <> (guardian_id IS NULL)", name="card_one_owner"),
    )

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    uid: str = Field(max_length=32)  # canonical: upper-case hex of the UID bytes
    student_id: int | None = Field(default=None, foreign_key="student.id", index=True)
    guardian_id: int | None = Field(default=None, foreign_key="guardian.id", index=True)


class Kiosk(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("school_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    code: str = Field(max_length=64)
    secret: str = Field(max_length=128)  # hex HMAC key shared with the kiosk
    acked_seq: int = 0  # highest contiguous seq stored
    last_hash: str = Field(default="", max_length=64)  # event_hash of event acked_seq
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
    # The gate's health (central/kiosks/health.py): when central last heard from it, and its last status
    # as sent (queue, seqs, roster version, clock offset, reader, guard), kept when it goes offline.
    last_seen: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    online: bool | None = None
    status: dict | None = Field(default=None, sa_column=sa.Column(sa.JSON, nullable=True))
    status_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    silence_reported_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
