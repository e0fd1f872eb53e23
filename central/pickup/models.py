"""Pickup's tables and shapes: one-time pickup codes (and the key of their digests), photos of children and guardians."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from central.core.columns import UTCDateTime


class PickupKey(SQLModel, table=True):
    """The per-school key of central's own code digests."""

    __tablename__ = "pickup_key"

    school_id: int = Field(foreign_key="school.id", primary_key=True)
    key: str = Field(max_length=64)  # hex, 32 bytes


class PickupCode(SQLModel, table=True):
    __tablename__ = "pickup_code"

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    day: date = Field(index=True)  # the school's local date the code is good for
    person: str = Field(max_length=100)
    code_hash: str = Field(max_length=64)
    # {kiosk code: hex digest} for every kiosk of the school when the code was issued.
    kiosk_digests: dict[str, str] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))
    issued_by: str = Field(max_length=100)
    # The guardian who issued it (None: the school). The code stands on that guardian's link: a custody
    # order, a lost right to pick up or an ended link voids it (P9.4), at central and at the gate.
    issuer_guardian_id: int | None = Field(default=None, foreign_key="guardian.id", index=True)
    issued_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    wrong_tries: int = 0
    used_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    used_by: str | None = Field(default=None, max_length=100)
    revoked_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))


class PickupCodeCreate(SQLModel):
    student: str = Field(min_length=1, max_length=32)  # student_no
    day: date
    person: str = Field(min_length=1, max_length=100)


class PickupCodePublic(SQLModel):
    id: int
    student: str
    day: date
    person: str
    issued_by: str
    issued_at: datetime
    used_at: datetime | None = None
    used_by: str | None = None
    revoked: bool = False


class PickupCodeIssued(PickupCodePublic):
    code: str  # shown once, to the issuer; central keeps only digests


class PickupCodeRedeem(SQLModel):
    student: str = Field(min_length=1, max_length=32)
    code: str = Field(min_length=1, max_length=32)


class Photo(SQLModel, table=True):
    __table_args__ = (
        sa.CheckConstraint("(student_id IS NULL) <> (guardian_id IS NULL)", name="photo_one_owner"),
    )

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    student_id: int | None = Field(default=None, foreign_key="student.id", unique=True)
    guardian_id: int | None = Field(default=None, foreign_key="guardian.id", unique=True)
    data: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    width: int
    height: int
    etag: str = Field(max_length=64)
    uploaded_by: str = Field(max_length=100)
    uploaded_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class PhotoPublic(SQLModel):
    width: int
    height: int
    etag: str
    uploaded_at: datetime


class PhotoListed(SQLModel):
    kind: str  # "students" or "guardians"
    id: str  # the id the kiosk's roster uses: student_no, or "g<guardian id>"
    etag: str
