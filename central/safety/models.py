"""Safety's table: the review of each item of a school's safety list, one row per step (issue 14).

The items themselves are not stored here: they are read from what central already keeps (the event
log, safety incidents, child alerts, the gates' health; ``items.py``), each under a stable key such
as ``event:<id>`` or ``incident:<id>``. A review step names its item by that key. Rows are only ever
added: the item's state is its newest step, and every step is in the audit log (``_AUDITED_TABLES``).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from central.core.clock import utcnow
from central.core.columns import utc_column

#: a review step and the state it leaves the item in
STEPS = {"acknowledge": "acknowledged", "follow_up": "follow_up", "close": "closed"}
STATES = ("open", "acknowledged", "follow_up", "closed")


class SafetyReview(SQLModel, table=True):
    __tablename__ = "safety_review"
    __table_args__ = (sa.Index("ix_safety_review_item", "school_id", "item"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id")
    item: str = Field(max_length=100)  # the item's key, e.g. event:<uuid>
    step: str = Field(max_length=16)  # acknowledge, follow_up, close
    state: str = Field(max_length=16)  # what the step leaves: acknowledged, follow_up, closed
    note: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False))
    by: str = Field(max_length=100)
    at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
