"""Reconciliation's tables: a school's annual report as filed (P7.6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from central.core.clock import utcnow
from central.core.columns import utc_column


class AnnualFiling(SQLModel, table=True):
    """What a school filed for a year: the report's figures as they were when filed (a later change to
    the year's records does not change what was filed; filing again replaces it, and is audited)."""

    __tablename__ = "annual_filing"
    __table_args__ = (sa.UniqueConstraint("school_id", "year"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    year: int
    figures: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    filed_by: str = Field(max_length=100)
    filed_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class AnnualFilingPublic(SQLModel):
    school: str
    year: int
    filed_by: str
    filed_at: datetime
    figures: dict[str, Any]


class AnnualReportOut(SQLModel):
    school: str
    year: int
    due_on: str  # P7.6: before February of the next year
    figures: dict[str, Any]  # as of now
    filed: AnnualFilingPublic | None = None


class DistrictSchoolLine(SQLModel):
    school: str
    name: str
    filed: bool
    filed_at: datetime | None = None
    figures: dict[str, Any] | None = None


class DistrictRollup(SQLModel):
    year: int
    due_on: str
    schools: list[DistrictSchoolLine]
    not_filed: list[str]  # school codes
    totals: dict[str, int]  # over the filed reports: counts and fen
