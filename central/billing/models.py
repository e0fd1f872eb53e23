"""Billing's tables: a school's fee plan per term (P7.2) and the service fund's earmarked ledger (P7.5).

The ledger's two tables are append-only: the ORM refuses to update or delete a row of either (below),
migration 0013 adds database triggers that refuse it too, and the hash chain (``ledger.verify``) tells
whoever got past both. The rules of posting live in ``central/billing/ledger.py``.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm
from sqlmodel import Field, Session, SQLModel

from central.billing.rules import PlanKind
from central.core.clock import utcnow
from central.core.columns import utc_column
from central.core.errors import Conflict


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


class ReverseIn(SQLModel):
    reason: str = Field(min_length=1, max_length=200)
