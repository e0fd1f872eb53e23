"""Properties of the ledger for any sequence of valid postings and reversals (Hypothesis): debits equal
credits after every entry, replaying the lines reproduces every balance, a reversal restores the
balances from before its entry, and ``verify`` finds any single-row tamper.

The expected balances are the test's own replay (its own table of which side each account grows on),
never ``ledger.balances``. Each example posts to a school of its own in one database per test.
"""

from __future__ import annotations

import itertools
import shutil

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from central.billing import ledger
from central.billing.ledger import Line
from central.billing.models import LedgerEntry, LedgerLine
from central.core.db import make_engine
from central.schools import registry

# Written out here, not read from the code under test.
DEBIT_SIDE = {"bank", "receivable", "subsidy_receivable", "staff_pay", "volunteer_allowance", "training", "other_service_cost"}
CREDIT_SIDE = {"suspense", "refunds_payable", "staff_pay_payable", "fee_income", "subsidy_income"}
USES = {  # kind -> (accounts it may debit, accounts it may credit)
    "statement": (["receivable"], ["fee_income"]),
    "payment": (["bank", "suspense"], ["receivable", "suspense"]),
    "refund": (["fee_income", "refunds_payable"], ["refunds_payable", "receivable", "bank"]),
    "subsidy": (["subsidy_receivable", "bank"], ["subsidy_income", "subsidy_receivable"]),
    "staff_pay": (["staff_pay", "staff_pay_payable"], ["staff_pay_payable", "bank"]),
}
CATEGORIES = ["staff_pay", "volunteer_allowance", "training", "other_service_cost"]
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def postings(draw) -> tuple[str, str | None, list[Line]]:
    """A valid entry: 1-3 debit lines and 1-3 credit lines of the same total, on accounts its kind may use."""
    kind = draw(st.sampled_from([*USES, "spending"]))
    category = draw(st.sampled_from(CATEGORIES)) if kind == "spending" else None
    debit_to, credit_to = ([category], ["bank"]) if category else USES[kind]
    debits = draw(st.lists(st.integers(min_value=1, max_value=2_000_000), min_size=1, max_size=3))
    total = sum(debits)
    parts = draw(st.integers(min_value=1, max_value=min(3, total)))
    cuts = sorted(draw(st.lists(st.integers(min_value=1, max_value=total - 1), min_size=parts - 1, max_size=parts - 1, unique=True))) if parts > 1 else []
    credits = [b - a for a, b in zip([0, *cuts], [*cuts, total])]
    lines = [Line(draw(st.sampled_from(debit_to)), debit_fen=d) for d in debits]
    lines += [Line(draw(st.sampled_from(credit_to)), credit_fen=c) for c in credits]
    return kind, category, draw(st.permutations(lines))


operations = st.lists(
    st.one_of(postings().map(lambda p: ("post", p)), st.integers(min_value=0, max_value=99).map(lambda i: ("reverse", i))),
    min_size=1, max_size=10,
)


def effect(lines) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in lines:
        grows = line.debit_fen - line.credit_fen if line.account in DEBIT_SIDE else line.credit_fen - line.debit_fen
        out[line.account] = out.get(line.account, 0) + grows
    return out


def apply(model: dict[str, int], lines, sign: int = 1) -> None:
    for account, fen in effect(lines).items():
        model[account] += sign * fen


@pytest.fixture(scope="module")
def engine(tmp_path_factory, migrated_db):
    path = tmp_path_factory.mktemp("ledger") / "central.sqlite3"
    shutil.copy(migrated_db, path)
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # the tamper property edits rows as someone past the triggers would
        for table in ("ledger_entry", "ledger_line"):
            for verb in ("update", "delete"):
                conn.execute(sa.text(f"DROP TRIGGER {table}_no_{verb}"))
    yield engine
    engine.dispose()


_schools = itertools.count(1)


def new_school(session: Session):
    return registry.ensure_school(session, code=f"p{next(_schools)}")


class Book:
    """Runs operations against the ledger and keeps the test's own model of the balances."""

    def __init__(self, session: Session) -> None:
        self.session, self.school = session, new_school(session)
        self.model = dict.fromkeys(DEBIT_SIDE | CREDIT_SIDE, 0)
        self.posted: list[tuple[int, list[Line]]] = []  # reversible entries: (id, lines)

    def run(self, op) -> None:
        what, arg = op
        if what == "post":
            kind, category, lines = arg
            entry = ledger.post(self.session, school=self.school, kind=kind, ref="r", lines=lines, actor="p", category=category)
            self.posted.append((entry.id, lines))
            apply(self.model, lines)
        elif self.posted:
            entry_id, lines = self.posted.pop(arg % len(self.posted))
            ledger.reverse(self.session, school=self.school, entry_id=entry_id, actor="p", reason="更正")
            apply(self.model, lines, -1)

    def totals(self) -> tuple[int, int]:
        return self.session.execute(
            sa.select(sa.func.coalesce(sa.func.sum(LedgerLine.debit_fen), 0), sa.func.coalesce(sa.func.sum(LedgerLine.credit_fen), 0))
            .join(LedgerEntry, LedgerEntry.id == LedgerLine.entry_id).where(LedgerEntry.school_id == self.school.id)
        ).one()


@SETTINGS
@given(ops=operations)
def test_after_every_entry_debits_equal_credits_and_the_replay_reproduces_every_balance(engine, ops):
    with Session(engine) as session:
        book = Book(session)
        for op in ops:
            book.run(op)
            debits, credits = book.totals()
            assert debits == credits
            assert ledger.balances(session, school=book.school) == book.model
        session.commit()


@SETTINGS
@given(before=operations, entry=postings(), after=st.lists(postings(), max_size=3))
def test_reversing_an_entry_restores_the_balances_from_before_it_less_what_came_after(engine, before, entry, after):
    with Session(engine) as session:
        book = Book(session)
        for op in before:
            book.run(op)
        was = ledger.balances(session, school=book.school)
        book.run(("post", entry))
        target = book.posted[-1][0]
        later = dict.fromkeys(was, 0)
        for posting in after:
            book.run(("post", posting))
            apply(later, posting[2])
        ledger.reverse(session, school=book.school, entry_id=target, actor="p", reason="冲销")
        assert ledger.balances(session, school=book.school) == {a: was[a] + later[a] for a in was}
        session.commit()


def _rows(session: Session, school_id: int):
    entries = list(session.exec(select(LedgerEntry).where(LedgerEntry.school_id == school_id).order_by(LedgerEntry.seq)))
    lines = list(session.exec(select(LedgerLine).where(LedgerLine.entry_id.in_([e.id for e in entries])).order_by(LedgerLine.id)))
    return entries, lines


tampers = st.tuples(
    st.sampled_from(["amount", "account", "memo", "ref", "actor", "kind", "category", "at", "delete_entry", "delete_line",
                     "swap", "insert_line"]),
    st.integers(min_value=0, max_value=999), st.integers(min_value=0, max_value=999), st.integers(min_value=1, max_value=5_000),
)


def tamper(conn, entries, lines, how) -> tuple[int | None, str]:
    """One tamper of one row (a swap: the order of two); the seq the first break must name, or None
    when it cut the chain's last entry (then the head must differ); and a note for a failure."""
    kind, i, j, fen = how
    entry, line = entries[i % len(entries)], lines[i % len(lines)]
    seq_of = {e.id: e.seq for e in entries}
    run = lambda sql, **p: conn.execute(sa.text(sql), p)  # noqa: E731
    if kind == "amount":
        side = "debit_fen" if line.debit_fen else "credit_fen"
        run(f"UPDATE ledger_line SET {side} = {side} + :fen WHERE id = :id", fen=fen, id=line.id)
        return seq_of[line.entry_id], f"{side} of line {line.id} + {fen}"
    if kind == "account":
        other = "training" if line.account != "training" else "bank"
        run("UPDATE ledger_line SET account = :a WHERE id = :id", a=other, id=line.id)
        return seq_of[line.entry_id], f"account of line {line.id} -> {other}"
    if kind in ("memo", "ref", "actor", "kind"):
        old = getattr(entry, kind)
        new = old[:-1] + ("x" if old[-1:] != "x" else "y")
        run(f"UPDATE ledger_entry SET {kind} = :v WHERE id = :id", v=new, id=entry.id)
        return entry.seq, f"{kind} of entry {entry.seq} -> {new!r}"
    if kind == "category":
        run("UPDATE ledger_entry SET category = :v WHERE id = :id", v="management_fee", id=entry.id)
        return entry.seq, f"category of entry {entry.seq}"
    if kind == "at":
        run("UPDATE ledger_entry SET at = :v WHERE id = :id", v=entry.at.replace(tzinfo=None, microsecond=(entry.at.microsecond + 1) % 1_000_000), id=entry.id)
        return entry.seq, f"time of entry {entry.seq}"
    if kind == "delete_entry":
        run("DELETE FROM ledger_line WHERE entry_id = :id", id=entry.id)
        run("DELETE FROM ledger_entry WHERE id = :id", id=entry.id)
        return (entry.seq + 1 if entry.seq < len(entries) else None), f"entry {entry.seq} removed"
    if kind == "delete_line":
        run("DELETE FROM ledger_line WHERE id = :id", id=line.id)
        return seq_of[line.entry_id], f"line {line.id} removed"
    if kind == "insert_line":
        run("INSERT INTO ledger_line (entry_id, line_no, account, debit_fen, credit_fen) VALUES (:e, 99, 'bank', :fen, 0)", e=entry.id, fen=fen)
        return entry.seq, f"a line added to entry {entry.seq}"
    # swap: two entries trade places in the chain
    first, second = i % len(entries), j % len(entries)
    if first == second:
        second = (first + 1) % len(entries)
    first, second = sorted((first, second))
    a, b = entries[first], entries[second]
    run("UPDATE ledger_entry SET seq = -1 WHERE id = :id", id=a.id)
    run("UPDATE ledger_entry SET seq = :s WHERE id = :id", s=a.seq, id=b.id)
    run("UPDATE ledger_entry SET seq = :s WHERE id = :id", s=b.seq, id=a.id)
    return a.seq, f"entries {a.seq} and {b.seq} swapped"


@settings(SETTINGS, max_examples=25)
@given(ops=operations.filter(lambda ops: any(what == "post" for what, _ in ops)), how=tampers)
def test_verify_finds_any_single_row_tamper(engine, ops, how):
    with Session(engine, expire_on_commit=False) as session:
        book = Book(session)
        for op in ops:
            book.run(op)
        session.commit()
        code, school_id = book.school.code, book.school.id
        entries, lines = _rows(session, school_id)
        if how[0] == "swap" and len(entries) < 2:
            how = ("memo", *how[1:])
    noted = _verdict(engine, code)
    assert noted == (None, len(entries), entries[-1].hash)
    with engine.connect() as conn:
        # Outside a transaction, or SQLite ignores it (the driver begins none for a PRAGMA).
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
        conn.commit()
        with conn.begin():
            expected, note = tamper(conn, entries, lines, how)
        conn.exec_driver_sql("PRAGMA foreign_keys = ON")
        conn.commit()
    broken, count, head = _verdict(engine, code)
    if expected is None:  # the last entry cut off: a shorter valid chain, told by its head
        assert broken is None and (count, head) == (len(entries) - 1, entries[-2].hash if len(entries) > 1 else ""), note
    else:
        assert broken == expected, note


def _verdict(engine, code: str) -> tuple[int | None, int, str]:
    """For one school: the seq of its chain's first break (None if intact), and its head."""
    with Session(engine) as session:
        verdict = ledger.verify(session)
    broken = [b.seq for b in verdict.breaks if b.school == code]
    heads = {h.school: (h.entries, h.hash) for h in verdict.heads}
    return (broken[0] if broken else None, *heads.get(code, (0, "")))
