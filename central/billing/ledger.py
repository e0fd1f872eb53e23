"""The school service fund's earmarked ledger (收支两条线, P7.5): double-entry, append-only, hash-chained.

Every movement of the fund's money is an **entry** of two or more **lines**, each debiting or crediting
one account of the fund's small chart (``CHART``) in integer fen; the debits and the credits of an
entry are equal and above 0, and each line is one side only. ``post`` refuses anything else with a
localized error and adds nothing.

P7.5 is kept by the chart and the posting rules (``RULES``), not by a label: money leaves the fund
only as a refund, a staff payment or a **spending**, and a spending can only be booked to one of the
four uses P7.5 allows, each its own cost account — staff performance pay, volunteer allowances,
training, other necessary service costs. A "management fee" has no account to go to and is refused by
name.

Entries are never changed or removed: the ORM refuses it (``models.AppendOnly``), migration 0013's
triggers refuse it in the database, and the service has no path that does it. A mistake is put right
by ``reverse``: a new entry with the same lines on the other sides, naming the entry it takes back;
an entry is reversed at most once, and a reversal is final (post the entry anew instead).

**One chain per school.** Each school's entries carry ``seq`` (1, 2, …, no gaps) and ``prev_hash``,
the hash of the school's previous entry; ``hash`` is SHA-256 over the canonical JSON of the entry's
fields, its lines in order and the hash of the entry it reverses (``entry_hash``), as the audit log
does (central/core/audit.py). Per school rather than one global chain because each school's fund is
its own (the parents' committee of one school checks and may be handed its chain without any other
school's), because one school's writers then never wait on another's tail (a PostgreSQL advisory lock
per school), and because a break is reported in the school it is in while the others stay verified.
``verify`` walks every chain and names each chain's first entry that does not fit: an edited amount
or field (its hash), a removed entry (a gap in ``seq``), entries reordered (``prev_hash``), a line
removed or added (the hash). As with the audit log, cutting entries off a chain's end leaves a valid
shorter chain: the verdict gives each school's head (count and hash) to note elsewhere and compare.

``post`` and ``reverse`` add to the caller's session without committing, so a statement and its
entry commit together or not at all; ``record_spending`` and ``record_reversal`` are the API's, and
commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from central.billing.models import (
    BalancePublic,
    LedgerEntry,
    LedgerEntryPublic,
    LedgerLine,
    LedgerPage,
    LineIn,
    PayoutIn,
    ReverseIn,
    SpendingIn,
)
from central.core import clock
from central.core.bulk import copy_rows
from central.core.errors import Conflict, Invalid, Missing
from central.core.i18n import Items, Msg, t
from central.schools.models import School
from gateway.protocol import canonical_json

# Any constant: every writer of one database takes the same lock for a school's tail.
_PG_LOCK_KEY = 0x5347_4C45  # "SGLE"
MAX_LINE_FEN = 10**12  # 10 billion CNY: a line above it is a typo, and sums stay far inside BIGINT


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


# The service fund's accounts and the side each grows on: what it holds or spent grows by debits,
# what it owes or earned by credits. Labels: the catalogue's ``billing.account.<key>``.
CHART: dict[str, Side] = {
    "bank": Side.DEBIT,  # the fund's bank account and cash
    "receivable": Side.DEBIT,  # fees billed to families, not yet paid
    "subsidy_receivable": Side.DEBIT,  # government subsidy granted, not yet received (P7.1)
    "suspense": Side.CREDIT,  # money received and not matched to a statement yet: whose it is, unknown
    "refunds_payable": Side.CREDIT,  # refunds owed to families (P7.4)
    "staff_pay_payable": Side.CREDIT,  # performance pay owed to staff (P8.1)
    "fee_income": Side.CREDIT,
    "subsidy_income": Side.CREDIT,
    # P7.5: the only uses of the money; each is a spending category and its own cost account.
    "staff_pay": Side.DEBIT,  # staff performance pay
    "volunteer_allowance": Side.DEBIT,
    "training": Side.DEBIT,
    "other_service_cost": Side.DEBIT,  # other necessary service costs
}
SPENDING_CATEGORIES = ("staff_pay", "volunteer_allowance", "training", "other_service_cost")  # P7.5
INCOME_ACCOUNTS = ("fee_income", "subsidy_income")

REVERSAL = "reversal"
# Which accounts an entry of each kind may debit and credit. A spending debits its category's own
# account only (``_allowed``) and pays from the bank.
RULES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "statement": (frozenset({"receivable"}), frozenset({"fee_income"})),  # a month's fees billed
    # A family paid: matched at once, or held in suspense until finance matches it by hand.
    "payment": (frozenset({"bank", "suspense"}), frozenset({"receivable", "suspense"})),
    # P7.4: income given back, owed (refunds_payable) or taken off what is owed; then paid out.
    "refund": (frozenset({"fee_income", "refunds_payable"}), frozenset({"refunds_payable", "receivable", "bank"})),
    "subsidy": (frozenset({"subsidy_receivable", "bank"}), frozenset({"subsidy_income", "subsidy_receivable"})),  # P7.1
    # P8.1: a confirmed pay run owes the staff their shares and the volunteers their allowances; then paid out.
    "staff_pay": (frozenset({"staff_pay", "volunteer_allowance", "staff_pay_payable"}), frozenset({"staff_pay_payable", "bank"})),
    "spending": (frozenset(SPENDING_CATEGORIES), frozenset({"bank"})),  # P7.5
}
KINDS = (*RULES, REVERSAL)

_TEXT_LIMITS = {"ref": 64, "memo": 200, "actor": 100}


@dataclass(frozen=True)
class Line:
    """One side of an entry: ``debit_fen`` or ``credit_fen`` (integer fen, the other 0)."""

    account: str
    debit_fen: int = 0
    credit_fen: int = 0


def account_label(account: str, locale: str) -> str:
    return t(f"billing.account.{account}", locale)


def _kind(kind: str) -> Msg:
    return Msg(f"billing.kind.{kind}")


# --- the rules of an entry, pure ---------------------------------------------------------------------


def check_entry(*, kind: str, lines: Sequence[Line], category: str | None, ref: str, memo: str, actor: str) -> None:
    """Refuse (a localized 422) an entry that does not balance, moves nothing, uses an account its kind
    may not, or spends on what P7.5 does not allow."""
    if kind not in RULES:
        raise Invalid("billing.ledger_kind_unknown", kind=kind, kinds=Items(tuple(RULES)))
    for name, value in (("ref", ref), ("memo", memo), ("actor", actor)):
        if len(value) > _TEXT_LIMITS[name]:
            raise Invalid("billing.ledger_too_long", field=name, most=_TEXT_LIMITS[name])
    debits, credits = _allowed(kind, category)
    for number, line in enumerate(lines, start=1):
        _check_line(number, line)
        side, allowed = (Side.DEBIT, debits) if line.debit_fen else (Side.CREDIT, credits)
        if line.account not in allowed:
            raise Invalid("billing.ledger_account_refused", line=number, account=Msg(f"billing.account.{line.account}"),
                          side=Msg(f"billing.side.{side}"), kind=_kind(kind))
    _check_balance(lines)


def _allowed(kind: str, category: str | None) -> tuple[frozenset[str], frozenset[str]]:
    debits, credits = RULES[kind]
    if kind != "spending":
        if category is not None:
            raise Invalid("billing.category_not_spending", category=category, kind=_kind(kind))
        return debits, credits
    if category not in SPENDING_CATEGORIES:
        # P7.5: "nobody may skim management fees, divert the money, or book unrelated costs".
        raise Invalid("billing.category_refused", category=category or "", allowed=Msg("billing.spending_uses"))
    return frozenset({category}), credits


def _check_line(number: int, line: Line) -> None:
    for amount in (line.debit_fen, line.credit_fen):
        if type(amount) is not int:  # not a bool, not a float: fen are whole
            raise Invalid("billing.ledger_whole_fen", line=number, amount=repr(amount))
        if amount < 0:
            raise Invalid("billing.negative", amount=amount)
        if amount > MAX_LINE_FEN:
            raise Invalid("billing.ledger_line_too_large", line=number, amount=amount, most=MAX_LINE_FEN)
    if (line.debit_fen == 0) == (line.credit_fen == 0):
        raise Invalid("billing.ledger_line_sides", line=number)
    if line.account not in CHART:
        raise Invalid("billing.ledger_account_unknown", account=line.account)


def _check_balance(lines: Sequence[Line]) -> None:
    debits = sum(line.debit_fen for line in lines)
    credits = sum(line.credit_fen for line in lines)
    if debits != credits:
        raise Invalid("billing.ledger_unbalanced", debits=debits, credits=credits)
    if debits == 0:
        raise Invalid("billing.ledger_empty")


def entry_hash(*, school_id: int, seq: int, kind: str, ref: str, memo: str, category: str | None, reverses: str,
               actor: str, at: datetime, prev_hash: str, lines: Iterable[tuple[str, int, int]]) -> str:
    """SHA-256 of the entry's canonical JSON: its fields, its lines in order (account, debit, credit),
    the hash of the entry it reverses ("" for none) and the previous entry's hash."""
    fields: dict[str, Any] = {
        "school_id": school_id, "seq": seq, "kind": kind, "ref": ref, "memo": memo, "category": category,
        "reverses": reverses, "actor": actor, "at": clock.as_utc(at).isoformat(), "prev": prev_hash,
        "lines": [[account, debit, credit] for account, debit, credit in lines],
    }
    return hashlib.sha256(canonical_json(fields)).hexdigest()


# --- posting -----------------------------------------------------------------------------------------


def post(session: Session, *, school: School, kind: str, ref: str, lines: list[Line], actor: str, memo: str = "",
         category: str | None = None) -> LedgerEntry:
    """Append one balanced entry to the school's chain (not committed: it commits with the caller's change).

    Raises ``Invalid`` (a localized 422) if the entry breaks a rule of ``check_entry``; nothing is added then.
    """
    check_entry(kind=kind, lines=lines, category=category, ref=ref, memo=memo, actor=actor)
    return _append(session, school=school, kind=kind, ref=ref, memo=memo, category=category, actor=actor, lines=lines)


@dataclass(frozen=True)
class Posting:
    """One entry for ``post_many``."""

    kind: str
    ref: str
    lines: list[Line]
    memo: str = ""
    category: str | None = None


@dataclass(frozen=True)
class Posted:
    """An entry ``post_many`` appended, as stored."""

    id: int
    seq: int
    kind: str
    ref: str
    memo: str
    category: str | None
    actor: str
    at: datetime
    prev_hash: str
    hash: str


def post_many(session: Session, *, school: School, postings: Sequence[Posting], actor: str) -> list[Posted]:
    """Append entries in the order given, as ``post`` one by one would chain them, with one look at the
    school's tail and one batched insert of the entries and one of their lines: what issuing a month's
    statements posts (two thousand entries for a large school). Every entry is checked first; one that
    breaks a rule refuses the lot and nothing is added. Not committed.

    On PostgreSQL the rows skip the ORM: their ids are drawn from the sequence in one query and both
    tables are written with COPY (``bulk.copy_rows``; bench/district.py: the ORM's objects and its
    multi-row statements cost seconds a school); elsewhere the ORM inserts them."""
    for p in postings:
        check_entry(kind=p.kind, lines=p.lines, category=p.category, ref=p.ref, memo=p.memo, actor=actor)
    if not postings:
        return []
    _lock(session, school)
    tail = session.exec(
        select(LedgerEntry.seq, LedgerEntry.hash).where(LedgerEntry.school_id == school.id)
        .order_by(col(LedgerEntry.seq).desc()).limit(1)
    ).first()
    seq, prev = tail if tail else (0, "")
    at = clock.utcnow()
    chained = []
    for p in postings:
        seq += 1
        digest = entry_hash(
            school_id=school.id, seq=seq, kind=p.kind, ref=p.ref, memo=p.memo, category=p.category, reverses="",
            actor=actor, at=at, prev_hash=prev, lines=[(line.account, line.debit_fen, line.credit_fen) for line in p.lines],
        )
        chained.append((seq, prev, digest))
        prev = digest
    if session.get_bind().dialect.name == "postgresql":
        ids = [row[0] for row in session.execute(
            sa.text("SELECT nextval(pg_get_serial_sequence('ledger_entry', 'id')) FROM generate_series(1, :n)"), {"n": len(postings)})]
        copy_rows(session, "ledger_entry", ("id", "school_id", "seq", "kind", "ref", "memo", "category", "reverses_id", "actor", "at",
                                            "prev_hash", "hash"),
                  ((i, school.id, s, p.kind, p.ref, p.memo, p.category, None, actor, at, before, digest)
                   for i, p, (s, before, digest) in zip(ids, postings, chained)))
        copy_rows(session, "ledger_line", ("entry_id", "line_no", "account", "debit_fen", "credit_fen"),
                  ((i, number, line.account, line.debit_fen, line.credit_fen)
                   for i, p in zip(ids, postings) for number, line in enumerate(p.lines, start=1)))
    else:
        rows = [LedgerEntry(school_id=school.id, seq=s, kind=p.kind, ref=p.ref, memo=p.memo, category=p.category, actor=actor,
                            at=at, prev_hash=before, hash=digest) for p, (s, before, digest) in zip(postings, chained)]
        session.add_all(rows)
        session.flush()  # batched: the ids come back in one round trip where the back-end can
        session.add_all(LedgerLine(entry_id=entry.id, line_no=number, account=line.account, debit_fen=line.debit_fen,
                                   credit_fen=line.credit_fen)
                        for entry, p in zip(rows, postings) for number, line in enumerate(p.lines, start=1))
        session.flush()
        ids = [entry.id for entry in rows]
    return [Posted(i, s, p.kind, p.ref, p.memo, p.category, actor, at, before, digest)
            for i, p, (s, before, digest) in zip(ids, postings, chained)]


def reverse(session: Session, *, school: School, entry_id: int, actor: str, reason: str) -> LedgerEntry:
    """Take an entry back: a new entry with its lines on the other sides, naming it, ``reason`` as its memo.

    Missing (404) for an entry not of this school; Conflict (409) for one already reversed or itself a
    reversal. Not committed, like ``post``.
    """
    original = session.get(LedgerEntry, entry_id)
    if original is None or original.school_id != school.id:
        raise Missing("billing.ledger_entry_missing", id=entry_id)
    if original.kind == REVERSAL:
        raise Conflict("billing.ledger_reversal_final", id=entry_id)
    by = session.exec(select(LedgerEntry.id).where(LedgerEntry.reverses_id == original.id)).first()
    if by is not None:
        raise Conflict("billing.ledger_reversed_already", id=entry_id, by=by)
    reason = reason.strip()
    if not reason:
        raise Invalid("billing.ledger_reason_required")
    if len(reason) > _TEXT_LIMITS["memo"] or len(actor) > _TEXT_LIMITS["actor"]:
        raise Invalid("billing.ledger_too_long", field="reason", most=_TEXT_LIMITS["memo"])
    lines = [Line(line.account, debit_fen=line.credit_fen, credit_fen=line.debit_fen) for line in _lines_of(session, original.id)]
    return _append(session, school=school, kind=REVERSAL, ref=original.ref, memo=reason, category=original.category,
                   actor=actor, lines=lines, reverses=original)


def _lock(session: Session, school: School) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # The school's writers take turns at its tail; SQLite has one writer, and UNIQUE(school_id, seq) holds.
        # Held to the transaction's end, and taken again by the same transaction at no cost.
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key, :school)"), {"key": _PG_LOCK_KEY, "school": school.id})


def _append(session: Session, *, school: School, kind: str, ref: str, memo: str, category: str | None, actor: str,
            lines: Sequence[Line], reverses: LedgerEntry | None = None) -> LedgerEntry:
    _lock(session, school)
    tail = session.exec(
        select(LedgerEntry.seq, LedgerEntry.hash).where(LedgerEntry.school_id == school.id)
        .order_by(col(LedgerEntry.seq).desc()).limit(1)
    ).first()
    seq, prev = (tail[0] + 1, tail[1]) if tail else (1, "")
    at = clock.utcnow()
    entry = LedgerEntry(school_id=school.id, seq=seq, kind=kind, ref=ref, memo=memo, category=category,
                        reverses_id=reverses.id if reverses else None, actor=actor, at=at, prev_hash=prev, hash="")
    entry.hash = entry_hash(
        school_id=school.id, seq=seq, kind=kind, ref=ref, memo=memo, category=category,
        reverses=reverses.hash if reverses else "", actor=actor, at=at, prev_hash=prev,
        lines=[(line.account, line.debit_fen, line.credit_fen) for line in lines],
    )
    session.add(entry)
    session.flush()
    session.add_all(LedgerLine(entry_id=entry.id, line_no=number, account=line.account, debit_fen=line.debit_fen,
                               credit_fen=line.credit_fen) for number, line in enumerate(lines, start=1))
    session.flush()
    return entry


def _lines_of(session: Session, entry_id: int) -> list[LedgerLine]:
    return list(session.exec(select(LedgerLine).where(LedgerLine.entry_id == entry_id).order_by(col(LedgerLine.line_no))))


# --- reading -----------------------------------------------------------------------------------------


def balances(session: Session, *, school: School) -> dict[str, int]:
    """Every account of the chart → its balance in fen on the side it grows on, by replaying the
    school's lines (an account never used is 0). Debit-side balances sum to the credit-side ones."""
    totals = session.exec(
        select(LedgerLine.account, func.sum(LedgerLine.debit_fen), func.sum(LedgerLine.credit_fen))
        .join(LedgerEntry, col(LedgerEntry.id) == LedgerLine.entry_id)
        .where(LedgerEntry.school_id == school.id).group_by(LedgerLine.account)
    ).all()
    out = dict.fromkeys(CHART, 0)
    for account, debit, credit in totals:
        debit, credit = int(debit or 0), int(credit or 0)
        out[account] = debit - credit if CHART.get(account, Side.DEBIT) is Side.DEBIT else credit - debit
    return out


def balances_public(session: Session, *, school: School, locale: str) -> list[BalancePublic]:
    return [BalancePublic(account=account, label=account_label(account, locale), side=CHART[account], balance_fen=fen)
            for account, fen in balances(session, school=school).items()]


def entries(session: Session, *, school: School, after: int = 0, limit: int = 50) -> LedgerPage:
    """The school's entries in chain order, ``limit`` after ``seq`` = ``after``, each with its lines and
    the reversal that took it back, if any."""
    rows = list(session.exec(
        select(LedgerEntry).where(LedgerEntry.school_id == school.id, LedgerEntry.seq > after)
        .order_by(col(LedgerEntry.seq)).limit(limit + 1)
    ))
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [row.id for row in rows]
    lines: dict[int, list[LineIn]] = {i: [] for i in ids}
    reversed_by: dict[int, int] = {}
    if ids:
        for line in session.exec(select(LedgerLine).where(col(LedgerLine.entry_id).in_(ids)).order_by(LedgerLine.entry_id, LedgerLine.line_no)):
            lines[line.entry_id].append(LineIn(account=line.account, debit_fen=line.debit_fen, credit_fen=line.credit_fen))
        for by, of in session.exec(select(LedgerEntry.id, LedgerEntry.reverses_id).where(col(LedgerEntry.reverses_id).in_(ids))):
            reversed_by[of] = by
    public = [_public(row, lines[row.id], reversed_by.get(row.id)) for row in rows]
    return LedgerPage(entries=public, next_after=rows[-1].seq if more else None)


def _public(row: LedgerEntry, lines: list[LineIn], reversed_by: int | None) -> LedgerEntryPublic:
    return LedgerEntryPublic(id=row.id, seq=row.seq, kind=row.kind, ref=row.ref, memo=row.memo, category=row.category,
                             reverses_id=row.reverses_id, reversed_by_id=reversed_by, actor=row.actor,
                             at=clock.as_utc(row.at), lines=lines, hash=row.hash)


# --- the API's: one change, committed ------------------------------------------------------------------


def record_spending(session: Session, *, school: School, data: SpendingIn, actor: str) -> LedgerEntryPublic:
    """Finance records money paid from the bank for one of P7.5's uses; anything else is refused by name."""
    entry = post(session, school=school, kind="spending", ref=data.ref, memo=data.memo, category=data.category, actor=actor,
                 lines=[Line(data.category, debit_fen=data.amount_fen), Line("bank", credit_fen=data.amount_fen)])
    session.commit()
    return _committed(session, entry)


# What is paid out of the bank to settle what the fund owes, and the entry kind that books it.
PAYABLES = {"staff_pay_payable": "staff_pay", "refunds_payable": "refund"}


def record_payout(session: Session, *, school: School, data: PayoutIn, actor: str) -> LedgerEntryPublic:
    """Finance records money paid from the bank to settle what the fund owes: staff pay a confirmed run
    booked (P8.1), or refunds owed to families (P7.4). Refused beyond what the account owes now (read
    under the school's ledger lock, so two payouts at once cannot both take the last of it)."""
    if data.payable not in PAYABLES:
        raise Invalid("billing.payout_account", account=data.payable, accounts=Items(tuple(PAYABLES)))
    _lock(session, school)
    owed = balances(session, school=school)[data.payable]
    if data.amount_fen > owed:
        raise Conflict("billing.payout_beyond", amount=data.amount_fen, owed=owed, account=Msg(f"billing.account.{data.payable}"))
    entry = post(session, school=school, kind=PAYABLES[data.payable], ref=data.ref, memo=data.memo, actor=actor,
                 lines=[Line(data.payable, debit_fen=data.amount_fen), Line("bank", credit_fen=data.amount_fen)])
    session.commit()
    return _committed(session, entry)


def record_reversal(session: Session, *, school: School, entry_id: int, data: ReverseIn, actor: str) -> LedgerEntryPublic:
    """Finance takes an entry back, saying why (the reversal's memo)."""
    entry = reverse(session, school=school, entry_id=entry_id, actor=actor, reason=data.reason)
    session.commit()
    return _committed(session, entry)


def _committed(session: Session, entry: LedgerEntry) -> LedgerEntryPublic:
    lines = [LineIn(account=line.account, debit_fen=line.debit_fen, credit_fen=line.credit_fen) for line in _lines_of(session, entry.id)]
    return _public(entry, lines, None)


# --- the public spending summary (P7.5: "spending is published regularly") -----------------------------


@dataclass(frozen=True)
class SpendingSummary:
    """What a school's fund took in and spent on each of P7.5's uses between two of its dates
    (both included): totals only, never a memo, a name or an entry."""

    start: date
    end: date
    spent: dict[str, int]  # category -> fen, in SPENDING_CATEGORIES order
    income: dict[str, int]  # fee_income, subsidy_income -> fen

    @property
    def total_spent(self) -> int:
        return sum(self.spent.values())


def spending_summary(session: Session, *, school: School, start: date, end: date) -> SpendingSummary:
    """Net movement on the cost and income accounts of entries posted on the school's dates ``start``
    to ``end``: a reversal in the period takes its entry's amount back."""
    zone = clock.zone(school)
    since = datetime.combine(start, time(0), tzinfo=zone)
    until = datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone)
    totals = session.exec(
        select(LedgerLine.account, func.sum(LedgerLine.debit_fen), func.sum(LedgerLine.credit_fen))
        .join(LedgerEntry, col(LedgerEntry.id) == LedgerLine.entry_id)
        .where(LedgerEntry.school_id == school.id, LedgerEntry.at >= since, LedgerEntry.at < until,
               col(LedgerLine.account).in_([*SPENDING_CATEGORIES, *INCOME_ACCOUNTS]))
        .group_by(LedgerLine.account)
    ).all()
    net = {account: int(debit or 0) - int(credit or 0) for account, debit, credit in totals}
    return SpendingSummary(
        start, end,
        spent={c: net.get(c, 0) for c in SPENDING_CATEGORIES},
        income={a: -net.get(a, 0) for a in INCOME_ACCOUNTS},
    )


# --- verifying the chains ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """The first entry of a school's chain that does not fit; ``reason`` is a catalogue key."""

    school: str
    seq: int | None
    entry_id: int | None
    reason: str
    params: dict[str, Any] = field(default_factory=dict)

    def text(self, locale: str) -> str:
        return t(self.reason, locale, **self.params)


@dataclass(frozen=True)
class Head:
    school: str
    entries: int
    hash: str


@dataclass(frozen=True)
class Verdict:
    entries: int  # entries walked and found to fit
    heads: list[Head]
    breaks: list[Break]

    @property
    def ok(self) -> bool:
        return not self.breaks

    def as_dict(self, locale: str) -> dict[str, Any]:
        return {
            "ok": self.ok, "entries": self.entries,
            "heads": [vars(head) for head in self.heads],
            "breaks": [{"school": b.school, "seq": b.seq, "entry_id": b.entry_id, "reason": b.text(locale)} for b in self.breaks],
        }


def verify(session: Session) -> Verdict:
    """Walk every school's chain in ``seq`` order; each chain's first entry that does not fit is a ``Break``
    (and the rest of that chain is not walked), the other chains are still checked."""
    e, rev, ln, sc = (LedgerEntry.__table__, LedgerEntry.__table__.alias("rev"), LedgerLine.__table__, School.__table__)
    query = (
        sa.select(e.c.id, e.c.school_id, sc.c.code, e.c.seq, e.c.kind, e.c.ref, e.c.memo, e.c.category, e.c.actor, e.c.at,
                  e.c.prev_hash, e.c.hash, e.c.reverses_id, rev.c.hash.label("rev_hash"), rev.c.school_id.label("rev_school"),
                  rev.c.seq.label("rev_seq"), ln.c.account, ln.c.debit_fen, ln.c.credit_fen)
        .select_from(e.join(sc, sc.c.id == e.c.school_id).outerjoin(rev, rev.c.id == e.c.reverses_id)
                     .outerjoin(ln, ln.c.entry_id == e.c.id))
        .order_by(e.c.school_id, e.c.seq, ln.c.line_no)
    )
    heads: list[Head] = []
    breaks: list[Break] = []
    walked = 0
    chain: _Chain | None = None
    for entry, lines in _grouped(session.execute(query.execution_options(yield_per=2000))):
        if chain is None or chain.school_id != entry.school_id:
            if chain is not None:
                heads.append(chain.head())
            chain = _Chain(entry.school_id, entry.code)
        if chain.broken:
            continue
        problem = chain.check(entry, lines)
        if problem:
            breaks.append(problem)
        else:
            walked += 1
    if chain is not None:
        heads.append(chain.head())
    orphan = session.execute(
        sa.select(ln.c.id).select_from(ln.outerjoin(e, e.c.id == ln.c.entry_id)).where(e.c.id.is_(None)).limit(1)
    ).scalar()
    if orphan is not None:
        breaks.append(Break("", None, None, "billing.verify.orphan", {"line": orphan}))
    return Verdict(walked, heads, breaks)


def _grouped(rows) -> Iterable[tuple[Any, list[tuple[str, int, int]]]]:
    """The query's rows (one per line) as (entry, its lines)."""
    current, lines = None, []
    for row in rows:
        if current is not None and row.id != current.id:
            yield current, lines
            lines = []
        current = row
        if row.account is not None:
            lines.append((row.account, int(row.debit_fen), int(row.credit_fen)))
    if current is not None:
        yield current, lines


@dataclass
class _Chain:
    school_id: int
    code: str
    count: int = 0
    prev: str = ""
    broken: bool = False

    def head(self) -> Head:
        return Head(self.code, self.count, self.prev)

    def check(self, entry, lines: list[tuple[str, int, int]]) -> Break | None:
        problem = self._problem(entry, lines)
        if problem:
            self.broken = True
            return Break(self.code, entry.seq, entry.id, *problem)
        self.count, self.prev = entry.seq, entry.hash
        return None

    def _problem(self, entry, lines) -> tuple[str, dict[str, Any]] | None:
        if entry.seq != self.count + 1:
            return "billing.verify.gap", {"expected": self.count + 1, "found": entry.seq}
        if entry.prev_hash != self.prev:
            return "billing.verify.prev", {"seq": entry.seq}
        if entry.reverses_id is not None and (entry.rev_school != entry.school_id or entry.rev_seq is None or entry.rev_seq >= entry.seq):
            return "billing.verify.reverses", {"seq": entry.seq}
        again = entry_hash(
            school_id=entry.school_id, seq=entry.seq, kind=entry.kind, ref=entry.ref, memo=entry.memo,
            category=entry.category, reverses=entry.rev_hash or "", actor=entry.actor, at=entry.at,
            prev_hash=entry.prev_hash, lines=lines,
        )
        if again != entry.hash:
            return "billing.verify.hash", {"seq": entry.seq}
        debits, credits = sum(line[1] for line in lines), sum(line[2] for line in lines)
        if debits != credits or debits == 0:
            return "billing.verify.unbalanced", {"seq": entry.seq, "debits": debits, "credits": credits}
        return None
