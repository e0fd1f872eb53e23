"""Accounts' tables: users (one role each), login throttles, login tokens, and the log of every child read by staff."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from central.core import clock
from central.core.columns import UTCDateTime


class User(SQLModel, table=True):
    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL
    __table_args__ = (
        sa.CheckConstraint("(role = 'district') = (school_id IS NULL)", name="app_user_district_has_no_school"),
        sa.CheckConstraint("role <> 'guardian' OR guardian_id IS NOT NULL", name="app_user_guardian_link"),
    )

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    password_hash: str = Field(max_length=200)
    role: str = Field(max_length=16)
    school_id: int | None = Field(default=None, foreign_key="school.id", index=True)
    guardian_id: int | None = Field(default=None, foreign_key="guardian.id", index=True)
    # The staff row (central.programme.models.Staff) of a teacher. No foreign key in migration 0002: the staff
    # table arrives on a parallel migration branch; the merge migration may add one.
    staff_id: int | None = Field(default=None, index=True)
    active: bool = True
    # Unused since migration 0004 (wrong passwords are counted in LoginThrottle, per source); kept so
    # no migration has to rebuild this table on SQLite.
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    created_at: datetime = Field(default_factory=clock.utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))


class LoginThrottle(SQLModel, table=True):
    """Wrong passwords for one account from one source (an address; an IPv6 address by its /64)."""

    __tablename__ = "login_throttle"
    __table_args__ = (sa.UniqueConstraint("user_id", "source"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    source: str = Field(max_length=64)
    failures: int = 0
    """Tries claimed since the last lock or success: wrong ones and those still being checked."""
    lockouts: int = 0
    """Locks in a row from this source; the next lasts ``lock_for`` × 2**lockouts (capped)."""
    locked_until: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))


class AuthToken(SQLModel, table=True):
    __tablename__ = "auth_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    revoked: bool = False


class ChildRead(SQLModel, table=True):
    """One read of one child's record by a member of staff (who, which child, what, when)."""

    __tablename__ = "child_read_log"

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    actor: str = Field(max_length=100)
    what: str = Field(max_length=64)  # the route or view, e.g. "student", "student_list", "student_photo"
    at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
