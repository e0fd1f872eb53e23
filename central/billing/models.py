"""Billing's tables: a school's fee plan per term (P7.2), the monthly statements and the payments."""

from __future__ import annotations

from datetime import date, datetime

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


# --- statements and payments (issue 15) -----------------------------------------------------------

STATEMENT_STATES = ("draft", "issued")  # a draft is redone by the next billing run; an issued one is kept
CHANNELS = ("bank", "wechat", "alipay", "cash")


class Statement(SQLModel, table=True):
    """One child's bill for one month of one school: what the plan charges (P7.2 cap, P7.3 exemption),
    the month's subsidy for the child (P7.1) and the refund a withdrawal earns (P7.4).

    ``reference`` (``SG202612-000123``) is what a parent writes in a transfer's memo; payments are
    matched by it. One statement per (school, child, month): billing a month again finds it.
    """

    __tablename__ = "statement"
    __table_args__ = (sa.UniqueConstraint("school_id", "student_id", "month"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    month: str = Field(max_length=7, index=True)  # YYYY-MM, the school's calendar month
    # Set in the transaction that makes the row (it holds the row's id); unique when set.
    reference: str | None = Field(default=None, max_length=32, sa_column_kwargs={"unique": True})
    state: str = Field(default="draft", max_length=16)
    term_id: int = Field(foreign_key="term.id")
    plan_kind: str = Field(max_length=16)
    plan_amount_fen: int
    cap_fen: int
    service_days: int  # the month's service days of the child's groups
    days_in_service: int  # of those, the days the child's enrollment held
    days_attended: int  # of those, the days the child checked in
    exempt: bool = False  # P7.3, for the whole month (docs/billing.md)
    charge_fen: int  # what the month costs the family
    forgone_fen: int = 0  # P7.3: what an exempt child would have paid
    subsidy_fen: int = 0  # P7.1: the month's government subsidy for this child
    withdrawn_on: date | None = None  # P7.4: the first day out, when the child left inside the month
    refund_fen: int = 0  # P7.4: the share of the charge given back for the service days left
    billed_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
    issued_by: str | None = Field(default=None, max_length=100)
    issued_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class Payment(SQLModel, table=True):
    """Money received for the service: recorded by hand or imported from a bank / WeChat Pay / Alipay
    statement file, and matched to a statement by its reference (``statement_id`` None: unmatched).

    ``dedupe_key`` makes a file imported twice add nothing: the file's transaction id when its column is
    mapped, else the row's (date, amount, reference, payer). Payments recorded by hand have none.
    """

    __tablename__ = "payment"
    __table_args__ = (sa.UniqueConstraint("school_id", "dedupe_key"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    statement_id: int | None = Field(default=None, foreign_key="statement.id", index=True)
    reference: str = Field(max_length=500)  # the reference or memo text as the payer wrote it
    amount_fen: int
    paid_on: date
    channel: str = Field(max_length=16)
    payer: str = Field(default="", max_length=200)
    txn_id: str | None = Field(default=None, max_length=100)
    dedupe_key: str | None = Field(default=None, max_length=400)
    source: str = Field(default="hand", max_length=200)  # "hand", or "file:<name>"
    recorded_by: str = Field(max_length=100)
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
    matched_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class StatementPublic(SQLModel):
    """A statement as finance and the school admin read it (the P7.3 flag is theirs alone)."""

    id: int
    reference: str
    month: str
    state: str
    student: str  # student_no
    name: str
    plan_kind: str
    plan_amount_fen: int
    service_days: int
    days_in_service: int
    days_attended: int
    exempt: bool
    charge_fen: int
    forgone_fen: int
    subsidy_fen: int
    withdrawn_on: date | None
    refund_fen: int
    paid_fen: int = 0  # matched payments
    balance_fen: int = 0  # still owed: charge - refund - paid, never below 0
    refund_payable_fen: int = 0  # P7.4: to give back, never more than was paid
    overpaid_fen: int = 0  # paid beyond the charge (not a P7.4 refund)


class BillingRun(SQLModel):
    """What billing a month did: statements made, redone, kept (issued ones), dropped (stale drafts)."""

    school: str
    month: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0  # drafts of children no longer in the service that month
    issued: int = 0
    kept: list[str] = []  # issued statements whose charge would now differ, or whose child left the month: listed
    refunds: list[str] = []  # issued statements that gained a P7.4 refund in this run
    children: int = 0
    exempt: int = 0
    charge_fen: int = 0
    forgone_fen: int = 0
    subsidy_fen: int = 0
    refund_fen: int = 0
    statements: list[StatementPublic] = []


class PaymentIn(SQLModel):
    reference: str = Field(min_length=1, max_length=500)
    amount_fen: int = Field(gt=0, le=100_000_000)
    paid_on: date
    channel: str = Field(max_length=16, description="bank, wechat, alipay or cash")
    payer: str = Field(default="", max_length=200)


class PaymentPublic(SQLModel):
    id: int
    reference: str
    amount_fen: int
    paid_on: date
    channel: str
    payer: str
    txn_id: str | None
    source: str
    statement: str | None = None  # the matched statement's reference
    recorded_by: str
