"""Billing's tables: a school's fee plan per term (P7.2)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from central.billing.rules import PlanKind
from central.core.clock import utcnow
from central.core.columns import utc_column


class FeePlanIn(SQLModel):
    kind: PlanKind = PlanKind.MONTHLY  # monthly (the default), or per service day attended
    amount_fen: int = Field(ge=0, le=10_000_000, description="fen a month (monthly) or a service day attended (per_day)")


class FeePlan(SQLModel, table=True):
    """A school's fee for one term; refused when set if it could charge above the district's cap."""

    __tablename__ = "fee_plan"
    __table_args__ = (sa.UniqueConstraint("school_id", "term_id"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    term_id: int = Field(foreign_key="term.id")
    kind: str = Field(max_length=16)
    amount_fen: int
    set_by: str = Field(max_length=100)
    set_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class FeePlanPublic(SQLModel):
    term_id: int
    term: str
    kind: PlanKind
    amount_fen: int
    set_by: str
    set_at: datetime
