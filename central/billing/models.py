"""Billing's tables: a school's fee plan per term (P7.2); the monthly statements and the payments; staff pay:
the share setting, duty confirmations, pay runs (P8.1); the service fund's earmarked ledger (P7.5).

The ledger's two tables are append-only: the ORM refuses to update or delete a row of either (below),
migration 0014_ledger adds database triggers that refuse it too, and the hash chain (``ledger.verify``)
tells whoever got past both. The rules of posting live in ``central/billing/ledger.py``.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy import orm
from sqlmodel import Field, Session, SQLModel

from central.billing.rules import PlanKind
from central.core.clock import utcnow
from central.core.columns import RowId, utc_column
from central.core.errors import Conflict

MAX_INCOME_FEN = 1_000_000_000


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


class MatchIn(SQLModel):
    reference: str = Field(min_length=1, max_length=500, description="the issued statement's reference (SG202612-000123)")


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
# --- the earmarked ledger (收支两条线, P7.5) ------------------------------------------------------------


class LedgerEntry(SQLModel, table=True):
    """One balanced posting in a school's service fund; ``seq``/``prev_hash``/``hash`` chain the school's
    entries in the order they were posted (``central/billing/ledger.py``)."""

    __tablename__ = "ledger_entry"
    __table_args__ = (sa.UniqueConstraint("school_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    seq: int  # the entry's place in its school's chain, from 1, no gaps
    kind: str = Field(max_length=16)  # statement, payment, refund, subsidy, staff_pay, spending, reversal
    ref: str = Field(max_length=64)  # what it answers to: a statement's reference, an invoice number
    memo: str = Field(max_length=200)
    category: str | None = Field(default=None, max_length=32)  # P7.5's use of the money, for spending
    # A reversal names the entry it takes back; UNIQUE: an entry is reversed once.
    reverses_id: int | None = Field(default=None, foreign_key="ledger_entry.id", unique=True)
    actor: str = Field(max_length=100)
    at: datetime = Field(sa_column=utc_column(nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))


class LedgerLine(SQLModel, table=True):
    """One side of an entry: an account debited or credited, in integer fen."""

    __tablename__ = "ledger_line"
    __table_args__ = (
        sa.UniqueConstraint("entry_id", "line_no"),
        sa.CheckConstraint("debit_fen >= 0 AND credit_fen >= 0", name="ledger_line_not_negative"),
        sa.CheckConstraint("(debit_fen = 0) <> (credit_fen = 0)", name="ledger_line_one_sided"),
    )

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(foreign_key="ledger_entry.id", index=True)
    line_no: int  # from 1, in the order posted: the hash covers the order
    account: str = Field(max_length=32)
    debit_fen: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    credit_fen: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))


class AppendOnly(Conflict):
    """Something tried to change or remove a ledger row: a correction is a reversing entry (P7.5)."""


_LEDGER_TABLES = {LedgerEntry.__table__, LedgerLine.__table__}


def _refuse_change(_mapper, _connection, target) -> None:
    raise AppendOnly("billing.ledger_append_only", table=target.__tablename__)


for _model in (LedgerEntry, LedgerLine):
    sa.event.listen(_model, "before_update", _refuse_change)
    sa.event.listen(_model, "before_delete", _refuse_change)


@sa.event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_change(state: orm.ORMExecuteState) -> None:
    # session.execute(update(LedgerLine)...) skips the mapper events above.
    if (state.is_update or state.is_delete) and state.statement.table in _LEDGER_TABLES:
        raise AppendOnly("billing.ledger_append_only", table=state.statement.table.name)


class LineIn(SQLModel):
    account: str
    debit_fen: int = 0
    credit_fen: int = 0


class LedgerEntryPublic(SQLModel):
    id: int
    seq: int
    kind: str
    ref: str
    memo: str
    category: str | None
    reverses_id: int | None
    reversed_by_id: int | None
    actor: str
    at: datetime
    lines: list[LineIn]
    hash: str


class LedgerPage(SQLModel):
    entries: list[LedgerEntryPublic]
    next_after: int | None = Field(description="pass as ``after`` for the next page; null on the last")


class BalancePublic(SQLModel):
    account: str
    label: str
    side: str = Field(description="debit (assets, costs) or credit (what is owed, income): the side a balance grows on")
    balance_fen: int


class SpendingIn(SQLModel):
    category: str = Field(max_length=64, description="staff_pay, volunteer_allowance, training or other_service_cost (P7.5)")
    amount_fen: int = Field(ge=1, le=10_000_000_000)
    memo: str = Field(min_length=1, max_length=200)
    ref: str = Field(default="", max_length=64, description="an invoice or voucher number")


class PayoutIn(SQLModel):
    payable: str = Field(max_length=32, description="staff_pay_payable (staff pay, P8.1) or refunds_payable (refunds, P7.4)")
    amount_fen: int = Field(ge=1, le=10_000_000_000)
    memo: str = Field(min_length=1, max_length=200)
    ref: str = Field(default="", max_length=64, description="a bank transfer's number, a statement's reference")


class ReverseIn(SQLModel):
    reason: str = Field(min_length=1, max_length=200)
# --- staff pay (P8.1) ----------------------------------------------------------------------------


class StaffPaySettingIn(SQLModel):
    # P8.1: at least 80 % of (fee income + subsidy) goes to serving staff; a school may give more.
    # Bounds are the rule's (rules.staff_pool), so a share below 80 % is refused with its own message.
    share_percent: int = Field(default=80, description="% of (fee income + subsidy) paid to serving staff, 80 to 100")
    volunteer_allowance_fen: int = Field(default=0, ge=0, le=100_000, description="a volunteer's allowance per period served (P6.5)")


class StaffPaySetting(SQLModel, table=True):
    """A school's staff pay setting; a school without a row pays 80 % and no volunteer allowance."""

    __tablename__ = "staff_pay_setting"

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", unique=True)
    share_percent: int = 80
    volunteer_allowance_fen: int = 0
    set_by: str = Field(max_length=100)
    set_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class StaffPaySettingPublic(SQLModel):
    share_percent: int
    volunteer_allowance_fen: int
    set_by: str | None = None
    set_at: datetime | None = None


class DutyConfirmationIn(SQLModel):
    staff_id: RowId
    day: date
    reason: str = Field(min_length=1, max_length=500)


class DutyConfirmation(SQLModel, table=True):
    """The school admin's word that a staff member served their planned duty on a day they did not tap
    (a forgotten card, a gate down): it counts that day's planned sessions as served (P6.3, P8.1)."""

    __tablename__ = "duty_confirmation"
    __table_args__ = (sa.UniqueConstraint("staff_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    day: date  # the school's local date
    reason: str = Field(max_length=500)
    confirmed_by: str = Field(max_length=100)
    confirmed_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class DutyConfirmationPublic(SQLModel):
    id: int
    staff_id: int
    day: date
    reason: str
    planned_periods: int
    confirmed_by: str
    confirmed_at: datetime


class StaffPayRun(SQLModel, table=True):
    """One school's staff pay for one month: the pool, and a line per staff member. Made again while
    a draft (the month's records changed); final once confirmed."""

    __tablename__ = "staff_pay_run"
    __table_args__ = (sa.UniqueConstraint("school_id", "month"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    month: str = Field(max_length=7)  # YYYY-MM
    state: str = Field(default="draft", max_length=16)  # draft, confirmed
    fee_income_fen: int
    subsidy_fen: int
    share_percent: int
    pool_fen: int  # share_percent % of (fee income + subsidy), split by periods
    periods: int  # periods served by staff who share the pool
    allowance_fen: int  # volunteers' allowances, paid apart from the pool
    made_by: str = Field(max_length=100)
    made_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
    confirmed_by: str | None = Field(default=None, max_length=100)
    confirmed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class StaffPayLine(SQLModel, table=True):
    __tablename__ = "staff_pay_line"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="staff_pay_run.id", index=True)
    staff_id: int = Field(foreign_key="staff.id")
    name: str = Field(max_length=100)
    kind: str = Field(max_length=16)  # the staff member's kind (teacher, volunteer, …)
    periods_tapped: int
    periods_confirmed: int
    share_fen: int  # their part of the pool (0 for a volunteer)
    allowance_fen: int  # a volunteer's allowance (0 for everyone else)


class StaffPayLinePublic(SQLModel):
    staff_id: int
    name: str
    kind: str
    periods: int
    periods_tapped: int
    periods_confirmed: int
    share_fen: int
    allowance_fen: int


class StaffPayIn(SQLModel):
    # The month's income is its issued statements'; a figure given here counts only where it is higher
    # (P8.1: the share is of at least what the records show). At most 10 million CNY each, far above any
    # school's month, so every sum stays inside the 32-bit columns.
    fee_income_fen: int | None = Field(default=None, ge=0, le=MAX_INCOME_FEN)
    subsidy_fen: int | None = Field(default=None, ge=0, le=MAX_INCOME_FEN)


class StaffPayRunPublic(SQLModel):
    school: str
    month: str
    state: str
    fee_income_fen: int
    subsidy_fen: int
    share_percent: int
    pool_fen: int
    periods: int
    allowance_fen: int
    made_by: str
    made_at: datetime
    confirmed_by: str | None
    confirmed_at: datetime | None
    lines: list[StaffPayLinePublic]
