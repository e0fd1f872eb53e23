"""A month's reconciliation (central/reconciliation/monthly.py): the rule on hand-made months, then the
September of test_statements read from the database, and the lines over HTTP for finance."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session

from central.billing import payments
from central.billing.models import PaymentIn
from central.billing.statements import Month
from central.reconciliation.monthly import Billed, Left, MonthLine, reconcile_month
from central.reconciliation.monthly import monthly as reconcile
from central.schools import registry

from .test_statements import _bill, september  # noqa: F401 - the fixture
from .test_statements_api import _september


def _kinds(lines: list[MonthLine]) -> list[tuple]:
    return [(line.kind, line.student) for line in lines]


@pytest.mark.parametrize(
    ("billed", "attended", "left", "want"),
    [
        ([Billed("A", "甲", "R1", 8_000)], {"A": 3}, [], []),
        ([Billed("A", "甲", "R1", 8_000)], {}, [], [("billed_not_attended", "A")]),
        ([], {"X": 2}, [], [("attended_not_billed", "X")]),
        ([Billed("B", "乙", "R2", 0, exempt=True, forgone_fen=8_000)], {"B": 1}, [], [("exempt", "B")]),
        ([Billed("C", "丙", "R3", 8_000, paid_fen=8_000)], {"C": 4}, [Left("C", "丙", date(2030, 9, 23), 2_666)],
         [("withdrawn", "C")]),
        ([], {}, [Left("E", "戊", date(2030, 9, 23), 0)], [("withdrawn", "E")]),
        ([Billed("B", "乙", "R2", 0, exempt=True, forgone_fen=8_000), Billed("A", "甲", "R1", 8_000)], {"X": 1}, [],
         [("billed_not_attended", "A"), ("billed_not_attended", "B"), ("attended_not_billed", "X"), ("exempt", "B")]),
    ],
    ids=["billed and came: no line", "billed, never came", "came, not billed", "exempt", "withdrawn after paying",
         "withdrawn, never billed", "each kind in order"],
)
def test_each_child_lands_on_the_right_lines(billed, attended, left, want):
    assert _kinds(reconcile_month(billed, attended, {"X": "某"}, left)) == want


@pytest.mark.parametrize(
    ("billed", "refund", "payable"),
    [
        (Billed("C", "丙", "R3", 8_000, paid_fen=8_000), 2_666, 2_666),
        (Billed("C", "丙", "R3", 8_000, paid_fen=6_000), 2_666, 666),  # paid only part: back what passes the rest
        (Billed("C", "丙", "R3", 8_000), 2_666, 0),  # not paid: owes the rest, nothing back
        (Billed("C", "丙", "R3", 0, exempt=True, forgone_fen=8_000), 0, 0),  # exempt: charged nothing, nothing back
    ],
    ids=["paid", "paid part", "unpaid", "exempt"],
)
def test_a_withdrawal_gives_back_no_more_than_was_paid(billed, refund, payable):
    [line] = [x for x in reconcile_month([billed], {"C": 2}, {}, [Left("C", "丙", date(2030, 9, 23), 2_666)])
              if x.kind == "withdrawn"]
    assert (line.refund_fen, line.refund_payable_fen) == (refund, payable)


def test_a_school_month_from_the_database(september):  # noqa: F811 - the fixture
    engine, *_ = september
    run = _bill(engine, issue=True)
    s2 = next(s for s in run.statements if s.student == "S2")
    with Session(engine) as session:
        school = registry.get_school(session, "s1")
        payments.record_payment(session, school=school, actor="finance", data=PaymentIn(
            reference=s2.reference, amount_fen=8_000, paid_on=date(2030, 9, 3), channel="bank"))
        got = reconcile(session, school=school, month=Month(2030, 9), locale="en")
    assert [(x.kind, x.student, x.days_attended) for x in got.lines] == [
        ("billed_not_attended", "S2", 0), ("billed_not_attended", "S3", 0), ("billed_not_attended", "S6", 0),
        ("attended_not_billed", "S4", 1),  # came on 5 September without an enrollment
        ("withdrawn", "S2", 0),
        ("exempt", "S3", 0),
    ]
    withdrawn = next(x for x in got.lines if x.kind == "withdrawn")
    assert (withdrawn.refund_fen, withdrawn.recorded_refund_fen, withdrawn.paid_fen, withdrawn.refund_payable_fen) == (
        2_666, 2_666, 8_000, 2_666)
    assert withdrawn.text == ("学生S2 (S2): out from 2030-09-23 (" + s2.reference + "), refund 26.66 CNY, 26.66 CNY on the "
                              "statement, paid 80.00 CNY, to give back 26.66 CNY (P7.4)")
    assert got.counts == {"billed_not_attended": 3, "attended_not_billed": 1, "withdrawn": 1, "exempt": 1}


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_finance_reads_the_months_lines_in_its_language(world):
    _september(world)
    world.client.post("/api/v1/schools/s1/statements?month=2030-09", headers=world.as_("finance1"))
    got = world.client.get("/api/v1/schools/s1/reconciliation/monthly?month=2030-09", headers=world.as_("finance1"))
    assert got.status_code == 200, got.text
    lines = got.json()["lines"]
    assert [(x["kind"], x["student"]) for x in lines] == [
        ("billed_not_attended", "A1"), ("billed_not_attended", "B1"), ("exempt", "B1")]
    assert lines[2]["text"].startswith("学生B1（B1）：建档立卡，免收 80.00 元（SG203009-")
