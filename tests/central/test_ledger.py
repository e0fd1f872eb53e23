"""The service fund's earmarked ledger (central/billing/ledger.py, P7.5): balanced entries only, spending
only on P7.5's uses, no edit path, reversals, each school's hash chain verified — amounts by hand."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from sgtest import fresh_postgres_database
from sqlmodel import Session, select

from central.billing import ledger
from central.billing.ledger import Line
from central.billing.models import AppendOnly, LedgerEntry, LedgerLine
from central.core import clock
from central.core.db import make_engine, migrate
from central.core.errors import Conflict, Invalid, Missing
from central.schools import registry


@pytest.fixture(params=["sqlite"])
def engine(request, tmp_path, migrated_db):
    """A migrated database with schools s1 and s2 (``postgres`` as a param for the twin)."""
    if request.param == "postgres":
        with fresh_postgres_database() as url:
            engine = make_engine(url)
            migrate(engine)
            yield from _with_schools(engine)
    else:
        shutil.copy(migrated_db, tmp_path / "ledger.sqlite3")
        yield from _with_schools(make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}"))


def _with_schools(engine):
    with Session(engine, expire_on_commit=False) as session:
        registry.ensure_school(session, code="s1", name="示范小学")
        registry.ensure_school(session, code="s2", name="第二小学")
        session.commit()
    try:
        yield engine
    finally:
        engine.dispose()


def school(session: Session, code: str = "s1"):
    return registry.get_school(session, code)


BILLED = [Line("receivable", debit_fen=8_000), Line("fee_income", credit_fen=8_000)]
PAID = [Line("bank", debit_fen=8_000), Line("receivable", credit_fen=8_000)]
TRAINING = [Line("training", debit_fen=3_000), Line("bank", credit_fen=3_000)]


def a_month(session: Session, code: str = "s1") -> list[LedgerEntry]:
    """A month of one school: a statement of 80 CNY, its payment, 30 CNY of training."""
    s = school(session, code)
    made = [
        ledger.post(session, school=s, kind="statement", ref="SG203009-000001", lines=BILLED, actor="finance1"),
        ledger.post(session, school=s, kind="payment", ref="SG203009-000001", lines=PAID, actor="finance1"),
        ledger.post(session, school=s, kind="spending", ref="发票 0042", lines=TRAINING, actor="finance1",
                    memo="急救培训", category="training"),
    ]
    session.commit()
    return made


def count(session: Session) -> tuple[int, int]:
    return (len(session.exec(select(LedgerEntry)).all()), len(session.exec(select(LedgerLine)).all()))


# --- posting -----------------------------------------------------------------------------------------


def test_entries_are_posted_chained_and_replayed_into_balances(engine):
    with Session(engine, expire_on_commit=False) as session:
        first, second, third = a_month(session)
        assert [(e.seq, e.kind, e.category) for e in (first, second, third)] == [
            (1, "statement", None), (2, "payment", None), (3, "spending", "training")]
        assert first.prev_hash == "" and second.prev_hash == first.hash and third.prev_hash == second.hash
        assert len({first.hash, second.hash, third.hash}) == 3
        stored = session.exec(select(LedgerLine).where(LedgerLine.entry_id == third.id).order_by(LedgerLine.line_no)).all()
        assert [(line.line_no, line.account, line.debit_fen, line.credit_fen) for line in stored] == [
            (1, "training", 3_000, 0), (2, "bank", 0, 3_000)]
        assert ledger.balances(session, school=school(session)) == {
            "bank": 5_000, "receivable": 0, "subsidy_receivable": 0, "suspense": 0, "refunds_payable": 0, "staff_pay_payable": 0,
            "fee_income": 8_000, "subsidy_income": 0, "staff_pay": 0, "volunteer_allowance": 0, "training": 3_000,
            "other_service_cost": 0,
        }
        # Each school has its own chain from seq 1, and its own balances.
        other = ledger.post(session, school=school(session, "s2"), kind="subsidy", ref="财拨 2030-9",
                            lines=[Line("subsidy_receivable", 50_000), Line("subsidy_income", credit_fen=50_000)], actor="finance2")
        assert (other.seq, other.prev_hash) == (1, "")
        assert ledger.balances(session, school=school(session, "s2"))["subsidy_income"] == 50_000
        assert ledger.balances(session, school=school(session))["subsidy_income"] == 0


# (name, kind, lines, category, the English message)
REFUSED = [
    ("unbalanced", "statement", [Line("receivable", 8_000), Line("fee_income", credit_fen=7_999)], None,
     "the entry does not balance: debits 8000 fen, credits 7999 fen"),
    ("no lines", "statement", [], None, "the entry moves no money: its debits and credits must be above 0 fen"),
    ("a line on both sides", "payment", [Line("bank", 100, 100), Line("receivable", credit_fen=100)], None,
     "line 1: a line debits or credits more than 0 fen, one side only"),
    ("a line of nothing", "payment", [Line("bank", 100), Line("receivable", credit_fen=100), Line("bank")], None,
     "line 3: a line debits or credits more than 0 fen, one side only"),
    ("a negative line", "payment", [Line("bank", -100), Line("receivable", credit_fen=-100)], None,
     "an amount cannot be negative: -100"),
    ("fen are whole", "payment", [Line("bank", 80.5), Line("receivable", credit_fen=80.5)], None,
     "line 1: amounts are whole fen, not 80.5"),
    ("a bool is no amount", "payment", [Line("bank", True), Line("receivable", credit_fen=1)], None,
     "line 1: amounts are whole fen, not True"),
    ("a line past the most", "payment", [Line("bank", 10**12 + 1), Line("receivable", credit_fen=10**12 + 1)], None,
     "line 1: 1000000000001 fen is more than a line may move (1000000000000 fen)"),
    ("an account not in the chart", "payment", [Line("petty_cash", 100), Line("receivable", credit_fen=100)], None,
     "no account petty_cash in the service fund's chart of accounts"),
    ("a statement paid into the bank", "statement", [Line("receivable", 100), Line("bank", credit_fen=100)], None,
     "line 2: a statement entry may not credit the account bank and cash"),
    ("a management fee", "spending", [Line("other_service_cost", 5_000), Line("bank", credit_fen=5_000)], "management_fee",
     'spending under "management_fee" is refused: the service fees pay only for staff performance pay (staff_pay), '
     "volunteer allowances (volunteer_allowance), training (training) and other necessary service costs (other_service_cost) (P7.5)"),
    ("a made-up category", "spending", [Line("training", 5_000), Line("bank", credit_fen=5_000)], "banquet",
     'spending under "banquet" is refused: the service fees pay only for staff performance pay (staff_pay), '
     "volunteer allowances (volunteer_allowance), training (training) and other necessary service costs (other_service_cost) (P7.5)"),
    ("a spending with no category", "spending", [Line("training", 5_000), Line("bank", credit_fen=5_000)], None,
     'spending under "" is refused: the service fees pay only for staff performance pay (staff_pay), '
     "volunteer allowances (volunteer_allowance), training (training) and other necessary service costs (other_service_cost) (P7.5)"),
    ("training booked as another cost", "spending", [Line("other_service_cost", 5_000), Line("bank", credit_fen=5_000)], "training",
     "line 1: a spending entry may not debit the account other necessary service costs"),
    ("a spending not paid from the bank", "spending", [Line("training", 5_000), Line("receivable", credit_fen=5_000)], "training",
     "line 2: a spending entry may not credit the account fees receivable from families"),
    ("the fund's income diverted", "spending", [Line("training", 5_000), Line("fee_income", credit_fen=5_000)], "training",
     "line 2: a spending entry may not credit the account service fee income"),
    ("staff pay out of the receivables", "staff_pay", [Line("staff_pay", 5_000), Line("receivable", credit_fen=5_000)], None,
     "line 2: a staff pay entry may not credit the account fees receivable from families"),
    ("a category on a payment", "payment", [Line("bank", 100), Line("receivable", credit_fen=100)], "training",
     "a payment entry names no spending category (given: training)"),
    ("an unknown kind", "transfer", [Line("bank", 100), Line("receivable", credit_fen=100)], None,
     "no kind of entry transfer; the kinds are statement, payment, refund, subsidy, staff_pay, spending"),
    ("a reversal is made by reverse() only", "reversal", [Line("bank", 100), Line("receivable", credit_fen=100)], None,
     "no kind of entry reversal; the kinds are statement, payment, refund, subsidy, staff_pay, spending"),
]


@pytest.mark.parametrize(("kind", "lines", "category", "message"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_an_entry_that_breaks_a_rule_is_refused_and_nothing_is_added(engine, kind, lines, category, message):
    with Session(engine, expire_on_commit=False) as session:
        a_month(session)
        before = count(session)
        with pytest.raises(Invalid) as refused:
            ledger.post(session, school=school(session), kind=kind, ref="x", lines=lines, actor="finance1", category=category)
        assert refused.value.text("en") == message
        session.rollback()
        assert count(session) == before


def test_the_refusal_of_a_management_fee_reads_in_chinese_and_names_it(engine):
    with Session(engine, expire_on_commit=False) as session, pytest.raises(Invalid) as refused:
        ledger.post(session, school=school(session), kind="spending", ref="", category="management_fee", actor="finance1",
                    lines=[Line("other_service_cost", 5_000), Line("bank", credit_fen=5_000)])
    assert str(refused.value) == ("不得在“management_fee”项下支出：服务费只能用于教师绩效报酬（staff_pay）、志愿者补贴（volunteer_allowance）、"
                                  "培训（training）和其他必要服务支出（other_service_cost）（P7.5）")


def test_a_memo_past_its_length_is_refused(engine):
    with Session(engine, expire_on_commit=False) as session, pytest.raises(Invalid) as refused:
        ledger.post(session, school=school(session), kind="payment", ref="x", lines=PAID, actor="finance1", memo="备" * 201)
    assert refused.value.text("en") == "the entry's memo is longer than 200 characters"


# --- reversing ---------------------------------------------------------------------------------------


def test_a_reversal_swaps_the_sides_names_the_entry_and_restores_the_balances(engine):
    with Session(engine, expire_on_commit=False) as session:
        statement, payment, spending = a_month(session)
        s = school(session)
        back = ledger.reverse(session, school=s, entry_id=spending.id, actor="finance1", reason="发票作废")
        session.commit()
        assert (back.seq, back.kind, back.reverses_id, back.memo, back.ref, back.category, back.prev_hash) == (
            4, "reversal", spending.id, "发票作废", "发票 0042", "training", spending.hash)
        lines = session.exec(select(LedgerLine).where(LedgerLine.entry_id == back.id).order_by(LedgerLine.line_no)).all()
        assert [(line.account, line.debit_fen, line.credit_fen) for line in lines] == [("training", 0, 3_000), ("bank", 3_000, 0)]
        balances = ledger.balances(session, school=s)
        assert (balances["bank"], balances["training"], balances["fee_income"]) == (8_000, 0, 8_000)
        page = ledger.entries(session, school=s)
        assert [(e.seq, e.reversed_by_id) for e in page.entries] == [(1, None), (2, None), (3, back.id), (4, None)]


def test_an_entry_is_reversed_once_a_reversal_is_final_and_another_schools_entry_is_not_found(engine):
    with Session(engine, expire_on_commit=False) as session:
        _, payment, _ = a_month(session)
        theirs = a_month(session, "s2")[0]
        s = school(session)
        back = ledger.reverse(session, school=s, entry_id=payment.id, actor="finance1", reason="重复入账")
        session.commit()
        before = count(session)
        with pytest.raises(Conflict) as twice:
            ledger.reverse(session, school=s, entry_id=payment.id, actor="finance1", reason="再冲一次")
        assert twice.value.text("en") == f"entry {payment.id} was already reversed by entry {back.id}"
        with pytest.raises(Conflict) as final:
            ledger.reverse(session, school=s, entry_id=back.id, actor="finance1", reason="冲销错了")
        assert final.value.text("en") == f"entry {back.id} is itself a reversal: post the entry anew instead of reversing the reversal"
        with pytest.raises(Missing) as missing:
            ledger.reverse(session, school=s, entry_id=theirs.id, actor="finance1", reason="不是本校的")
        assert missing.value.text("en") == f"no ledger entry {theirs.id}"
        with pytest.raises(Invalid) as why:
            ledger.reverse(session, school=s, entry_id=a_month(session)[0].id, actor="finance1", reason="  ")
        assert why.value.text("en") == "a reversal says why"
        session.rollback()
        assert count(session) == (before[0] + 3, before[1] + 6)  # the third month's, nothing of the refusals


# --- no edit path --------------------------------------------------------------------------------------


def test_the_orm_refuses_to_change_or_remove_an_entry_or_a_line(engine):
    with Session(engine, expire_on_commit=False) as session:
        entry = a_month(session)[0]
        entry_id = entry.id
        entry.memo = "改过"
        with pytest.raises(AppendOnly, match="ledger_entry"):
            session.commit()
        session.rollback()
        session.delete(session.exec(select(LedgerLine).where(LedgerLine.entry_id == entry_id)).first())
        with pytest.raises(AppendOnly, match="ledger_line"):
            session.commit()
        session.rollback()
        for statement in (sa.update(LedgerLine).values(debit_fen=1), sa.delete(LedgerEntry),
                          sa.update(LedgerEntry).where(LedgerEntry.id == entry_id).values(memo="x")):
            with pytest.raises(AppendOnly) as refused:
                session.execute(statement)
            session.rollback()
        assert refused.value.text("en") == (
            "the ledger is append-only: a ledger_entry row is never changed or removed; a correction is a reversing entry (P7.5)")
        assert ledger.verify(session).ok


@pytest.mark.parametrize("engine", ["sqlite", "postgres"], indirect=True)
def test_the_database_refuses_changes_even_in_raw_sql_and_a_tamper_past_it_is_found(engine):
    """The PostgreSQL twin: the same posting, reversing, triggers and chain on both back-ends."""
    with Session(engine, expire_on_commit=False) as session:
        _, payment, spending = a_month(session)
        ledger.reverse(session, school=school(session), entry_id=payment.id, actor="finance1", reason="重复入账")
        session.commit()
        assert ledger.balances(session, school=school(session))["bank"] == -3_000
    for statement in ("UPDATE ledger_line SET debit_fen = 1 WHERE debit_fen > 0",
                      "DELETE FROM ledger_entry", "DELETE FROM ledger_line"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    if engine.dialect.name == "postgresql":
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE ledger_line"))
    with Session(engine, expire_on_commit=False) as session:
        verdict = ledger.verify(session)
        assert (verdict.ok, verdict.entries) == (True, 4)
    _tamper(engine, "UPDATE ledger_line SET credit_fen = 300 WHERE entry_id = :id AND credit_fen > 0", id=spending.id)
    with Session(engine, expire_on_commit=False) as session:
        verdict = ledger.verify(session)
    assert [(b.school, b.seq, b.entry_id, b.text("en")) for b in verdict.breaks] == [
        ("s1", 3, spending.id, "entry 3 does not match its hash (an amount, an account or a field was edited, or a line removed or added)")]


# --- verifying -----------------------------------------------------------------------------------------


def _tamper(engine, *statements: str, **params: object) -> None:
    """Whoever edits the ledger must first drop the triggers (and, to remove rows, the foreign keys)."""
    with engine.begin() as conn:
        for table in ("ledger_entry", "ledger_line"):
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}"))
            else:
                conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_no_update"))
                conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        for statement in statements:
            conn.execute(sa.text(statement), params)


def _breaks(engine) -> list[tuple[str, int | None, str]]:
    with Session(engine, expire_on_commit=False) as session:
        return [(b.school, b.seq, b.text("en")) for b in ledger.verify(session).breaks]


def _two_schools(engine) -> list[LedgerEntry]:
    with Session(engine, expire_on_commit=False) as session:
        ours = a_month(session) + a_month(session)
        a_month(session, "s2")
        return ours


HASH = "does not match its hash (an amount, an account or a field was edited, or a line removed or added)"

# (name, statements on s1's six entries, the break reported) — s2's chain stays intact in each.
TAMPERS = [
    ("an amount edited on both sides", [
        "UPDATE ledger_line SET debit_fen = 300 WHERE entry_id = {e2} AND debit_fen > 0",
        "UPDATE ledger_line SET credit_fen = 300 WHERE entry_id = {e2} AND credit_fen > 0"], ("s1", 2, f"entry 2 {HASH}")),
    ("an account changed", ["UPDATE ledger_line SET account = 'other_service_cost' WHERE entry_id = {e3} AND line_no = 1"],
     ("s1", 3, f"entry 3 {HASH}")),
    ("a memo changed", ["UPDATE ledger_entry SET memo = '管理费' WHERE id = {e3}"], ("s1", 3, f"entry 3 {HASH}")),
    ("a line removed", ["DELETE FROM ledger_line WHERE entry_id = {e4} AND line_no = 2"], ("s1", 4, f"entry 4 {HASH}")),
    ("an entry removed", ["DELETE FROM ledger_line WHERE entry_id = {e2}", "DELETE FROM ledger_entry WHERE id = {e2}"],
     ("s1", 3, "expected entry 2, found 3 (an entry was removed)")),
    ("an entry removed and the rest renumbered", [
        "DELETE FROM ledger_line WHERE entry_id = {e2}", "DELETE FROM ledger_entry WHERE id = {e2}",
        "UPDATE ledger_entry SET seq = seq - 1 WHERE school_id = {s1} AND seq > 2"],
     ("s1", 2, "entry 2 does not follow the hash of the entry before it (entries reordered or replaced)")),
    ("two entries swapped", [
        "UPDATE ledger_entry SET seq = 100 WHERE id = {e2}", "UPDATE ledger_entry SET seq = 2 WHERE id = {e3}",
        "UPDATE ledger_entry SET seq = 3 WHERE id = {e2}"],
     ("s1", 2, "entry 2 does not follow the hash of the entry before it (entries reordered or replaced)")),
    ("a line added", ["INSERT INTO ledger_line (entry_id, line_no, account, debit_fen, credit_fen) VALUES ({e5}, 3, 'bank', 1, 0)"],
     ("s1", 5, f"entry 5 {HASH}")),
]


@pytest.mark.parametrize(("statements", "found"), [case[1:] for case in TAMPERS], ids=[case[0] for case in TAMPERS])
def test_verify_names_the_first_entry_of_a_tampered_chain(engine, statements, found):
    ours = _two_schools(engine)
    assert _breaks(engine) == []
    ids = {f"e{n}": entry.id for n, entry in enumerate(ours, start=1)} | {"s1": ours[0].school_id}
    _tamper(engine, *(statement.format(**ids) for statement in statements))
    assert _breaks(engine) == [found]


def test_entries_cut_off_the_end_leave_a_shorter_chain_whose_head_differs(engine):
    ours = _two_schools(engine)
    with Session(engine, expire_on_commit=False) as session:
        noted = {head.school: (head.entries, head.hash) for head in ledger.verify(session).heads}
    assert noted["s1"] == (6, ours[-1].hash) and noted["s2"][0] == 3
    _tamper(engine, f"DELETE FROM ledger_line WHERE entry_id = {ours[-1].id}", f"DELETE FROM ledger_entry WHERE id = {ours[-1].id}")
    with Session(engine, expire_on_commit=False) as session:
        verdict = ledger.verify(session)
    assert verdict.ok and {head.school: (head.entries, head.hash) for head in verdict.heads} == {"s1": (5, ours[-2].hash), "s2": noted["s2"]}


# --- the public summary ------------------------------------------------------------------------------------


def test_the_spending_summary_counts_a_period_of_the_schools_dates(engine, monkeypatch):
    def at(when: datetime) -> None:
        monkeypatch.setattr(clock, "utcnow", lambda: when)

    with Session(engine, expire_on_commit=False) as session:
        s = school(session)
        at(datetime(2030, 8, 31, 15, 59, tzinfo=UTC))  # 23:59 on 31 August in Shanghai: not September's
        ledger.post(session, school=s, kind="spending", ref="", category="training", lines=TRAINING, actor="f")
        at(datetime(2030, 8, 31, 16, 0, tzinfo=UTC))  # 00:00 on 1 September in Shanghai
        ledger.post(session, school=s, kind="statement", ref="", lines=BILLED, actor="f")
        ledger.post(session, school=s, kind="staff_pay", ref="", actor="f",
                    lines=[Line("staff_pay", 6_400), Line("staff_pay_payable", credit_fen=6_400)])
        volunteers = ledger.post(session, school=s, kind="spending", ref="", category="volunteer_allowance", actor="f",
                                 lines=[Line("volunteer_allowance", 500), Line("bank", credit_fen=500)])
        at(datetime(2030, 9, 30, 15, 59, tzinfo=UTC))
        ledger.reverse(session, school=s, entry_id=volunteers.id, actor="f", reason="重复")
        ledger.post(session, school=s, kind="spending", ref="", category="other_service_cost", actor="f",
                    lines=[Line("other_service_cost", 1_250), Line("bank", credit_fen=1_250)])
        at(datetime(2030, 9, 30, 16, 0, tzinfo=UTC))  # 1 October in Shanghai
        ledger.post(session, school=s, kind="spending", ref="", category="training", lines=TRAINING, actor="f")
        session.commit()
        september = ledger.spending_summary(session, school=s, start=date(2030, 9, 1), end=date(2030, 9, 30))
    assert september.spent == {"staff_pay": 6_400, "volunteer_allowance": 0, "training": 0, "other_service_cost": 1_250}
    assert september.income == {"fee_income": 8_000, "subsidy_income": 0}
    assert september.total_spent == 7_650


def test_entries_posted_in_one_batch_chain_as_posted_one_by_one_and_a_bad_one_refuses_the_lot(engine):
    with Session(engine, expire_on_commit=False) as session:
        s1 = school(session)
        batch = [ledger.Posting("statement", f"SG203009-{n:06d}", [Line("receivable", 8_000), Line("fee_income", credit_fen=8_000)],
                                memo="2030-09") for n in (1, 2, 3)]
        batch.append(ledger.Posting("subsidy", "SG203009-000003", [Line("subsidy_receivable", 2_000), Line("subsidy_income", credit_fen=2_000)]))
        rows = ledger.post_many(session, school=s1, postings=batch, actor="finance1")
        session.commit()
        assert [(e.seq, e.kind, e.ref) for e in rows] == [
            (1, "statement", "SG203009-000001"), (2, "statement", "SG203009-000002"), (3, "statement", "SG203009-000003"),
            (4, "subsidy", "SG203009-000003")]
        assert [e.prev_hash for e in rows] == ["", rows[0].hash, rows[1].hash, rows[2].hash]
        one = ledger.post(session, school=s1, kind="payment", ref="SG203009-000001", actor="finance1",
                          lines=[Line("bank", 8_000), Line("receivable", credit_fen=8_000)])
        assert (one.seq, one.prev_hash) == (5, rows[3].hash)  # one by one goes on from the batch's tail
        session.commit()
        assert ledger.verify(session).ok
        assert (ledger.balances(session, school=s1)["receivable"], ledger.balances(session, school=s1)["fee_income"]) == (16_000, 24_000)
        bad = [batch[0], ledger.Posting("spending", "x", [Line("bank", 1), Line("fee_income", credit_fen=1)], category="management_fee")]
        with pytest.raises(Invalid):
            ledger.post_many(session, school=s1, postings=bad, actor="finance1")
        assert session.exec(select(LedgerEntry).where(LedgerEntry.school_id == s1.id)).all()[-1].seq == 5
