"""/finance without a browser (issue 15): finance bills and issues a month from the page, matches a
payment waiting in suspense by hand, pays out what the fund owes; the school admin reads; nobody else
opens it. The same services as the API (tests/central/test_statements_api.py, test_payments.py, test_ledger_api.py)."""

from __future__ import annotations

import re
from datetime import date

from sqlmodel import select

from central.billing import payments, statements
from central.billing.models import Payment, PaymentIn, Statement
from central.schools import registry

from .test_pages import csrf_of, log_in, pages  # noqa: F401  (pages: the fixture)
from .test_statements_api import _september


def _rows(html: str) -> dict[str, tuple[str, ...]]:
    """Each statement row: student -> (state, charge, refund, paid, balance), as the page shows them."""
    out = {}
    for row in re.findall(r'<tr data-reference="[^"]+" data-state="[^"]+">(.*?)</tr>', html, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        out[cells[1]] = (cells[3], *cells[4:])
    return out


def _balance(html: str, account: str) -> str:
    return re.search(rf'<tr data-account="{account}"><th scope="row">[^<]*</th><td>([^<]*)</td>', html).group(1)


def _error(html: str) -> str:
    return re.search(r'<p class="error" role="alert">([^<]*)</p>', html).group(1)


def test_finance_bills_matches_by_hand_and_pays_out_from_the_page(pages):
    _september(pages)
    log_in(pages.client, "finance1")
    page = pages.client.get("/finance?month=2030-09")
    assert page.status_code == 200 and "本月尚无账单" in page.text
    csrf = csrf_of(page.text)
    billed = pages.client.post("/finance/bill", data={"csrf": csrf, "month": "2030-09", "issue": "yes"})
    assert billed.status_code == 200, billed.text
    assert "新建 2，重算 0，出具 2" in billed.text
    # Each owes the month's 80.00: B1's family was registered poor (P7.3) only on 8 October, the page's today
    assert _rows(billed.text) == {"A1": ("已开具", "80.00", "0.00", "0.00", "80.00"), "B1": ("已开具", "80.00", "0.00", "0.00", "80.00")}
    with pages.session() as session:
        a1 = session.exec(select(Statement).where(Statement.student_id == pages.ids["A1"])).one()
    # A transfer whose memo names no statement: booked in suspense, waiting.
    with pages.session() as session:
        session.info["actor"] = "finance"
        paid = payments.record_payment(session, school=registry.get_school(session, "s1"), actor="finance", data=PaymentIn(
            reference="王父 九月课后服务", amount_fen=8_000, paid_on=date(2030, 9, 5), channel="bank", payer="王父"))
    assert paid.statement is None
    page = pages.client.get("/finance?month=2030-09")
    assert f'data-payment="{paid.id}"' in page.text and _balance(page.text, "suspense") == "80.00"
    wrong = pages.client.post("/finance/match", data={"csrf": csrf, "month": "2030-09", "payment": paid.id,
                                                      "reference": "SG203009-999999"})
    assert wrong.status_code == 404 and "SG203009-999999" in _error(wrong.text)
    assert 'value="SG203009-999999"' in wrong.text  # what was typed is kept
    matched = pages.client.post("/finance/match", data={"csrf": csrf, "month": "2030-09", "payment": paid.id,
                                                        "reference": a1.reference.lower()})
    assert matched.status_code == 200 and f"80.00 元已匹配到账单 {a1.reference}" in matched.text
    assert _rows(matched.text)["A1"] == ("已开具", "80.00", "0.00", "80.00", "0.00")
    assert (_balance(matched.text, "suspense"), _balance(matched.text, "receivable"), _balance(matched.text, "bank")) == (
        "0.00", "80.00", "80.00")  # B1's 80.00 still owed
    assert "没有未匹配的收款" in matched.text
    # A1 leaves: a refund of 20.00 of what was paid is owed back (P7.4); finance pays it out, not a fen more.
    with pages.session() as session:
        session.info["actor"] = "finance"
        school = registry.get_school(session, "s1")
        statements.grant_refund(session, school=school, statement=session.get(Statement, a1.id), refund_fen=2_000,
                                withdrawn_on=a1.created_at.date(), actor="finance")
        session.commit()
    form = {"csrf": csrf, "month": "2030-09", "payable": "refunds_payable", "memo": "退A1九月余款", "ref": a1.reference}
    too_much = pages.client.post("/finance/payout", data=form | {"amount": "20.01"})
    assert too_much.status_code == 409 and "2000" in _error(too_much.text)
    assert 'value="20.01"' in too_much.text
    not_money = pages.client.post("/finance/payout", data=form | {"amount": "二十"})
    assert not_money.status_code == 422 and _error(not_money.text).startswith("二十")
    out = pages.client.post("/finance/payout", data=form | {"amount": "¥20.00"})
    assert out.status_code == 201 and "已从银行支付 20.00 元" in out.text
    assert (_balance(out.text, "refunds_payable"), _balance(out.text, "bank")) == ("0.00", "60.00")
    with pages.session() as session:
        assert session.exec(select(Payment)).one().statement_id == a1.id


def test_the_admin_reads_finance_acts_and_nobody_else_opens_it(pages):
    _september(pages)
    log_in(pages.client, "admin1")
    page = pages.client.get("/finance?month=2030-09")
    assert page.status_code == 200 and 'action="/finance/bill"' not in page.text and 'action="/finance/payout"' not in page.text
    csrf = csrf_of(page.text)
    assert pages.client.post("/finance/bill", data={"csrf": csrf, "month": "2030-09"}).status_code == 403
    assert pages.client.get("/finance?month=2030-13").status_code == 422
    assert pages.client.get("/finance?school=s2").status_code == 404  # another school's
    for user in ("teacherA", "guard1", "district", "parentA"):
        pages.client.cookies.clear()
        log_in(pages.client, user)
        assert pages.client.get("/finance?month=2030-09&school=s1").status_code == 403, user
    pages.client.cookies.clear()
    log_in(pages.client, "finance1")
    assert 'href="/finance"' in pages.client.get("/").text
    # without the form's CSRF token: refused, nothing billed
    assert pages.client.post("/finance/bill", data={"month": "2030-09"}).status_code == 403
    with pages.session() as session:
        assert session.exec(select(Statement)).all() == []
