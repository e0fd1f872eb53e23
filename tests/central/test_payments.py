"""Payments (central/billing/payments.py): amounts and dates read exactly, references found in memos, a
statement file with bad rows read by line, then payments by hand and from a file matched to September's
statements over HTTP — and the same file imported twice adding nothing."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.billing.payments import (
    AmountError,
    ColumnMapping,
    FileRow,
    RowProblem,
    find_reference,
    parse_amount,
    parse_day,
    read_statement_file,
)
from central.core.errors import Invalid

from .test_statements_api import _september


@pytest.mark.parametrize(
    ("text", "fen"),
    [("100.00", 10_000), ("¥1,000.50", 100_050), ("￥ 35", 3_500), ("+80.5", 8_050), ("1,000", 100_000),
     ("0.01", 1), ("12,345,678.90", 1_234_567_890), ("100元", 10_000), ("RMB 7.07", 707), ("\t66.60", 6_660)],
    ids=["plain", "yen sign and thousands", "full-width yen", "plus sign, one decimal", "thousands, no decimals",
         "one fen", "millions", "yuan after", "RMB before", "a tab before (WeChat Pay's)"],
)
def test_an_amount_is_read_to_the_fen(text, fen):
    assert parse_amount(text) == fen


@pytest.mark.parametrize(
    ("text", "why"),
    [("-100.00", "payment.amount_out"), ("(100.00)", "payment.amount_out"), ("100.005", "payment.amount_fen"),
     ("1,00.00", "payment.amount"), ("abc", "payment.amount"), ("", "payment.amount"), ("0.00", "payment.amount_zero"),
     ("1.2.3", "payment.amount"), ("1e3", "payment.amount")],
    ids=["negative", "in brackets", "a third decimal", "misplaced comma", "words", "empty", "zero", "two points", "exponent"],
)
def test_what_is_no_amount_received_is_refused(text, why):
    with pytest.raises(AmountError) as refused:
        parse_amount(text)
    assert str(refused.value) == why


@given(st.integers(1, 10**10), st.sampled_from(["", "¥", "￥"]), st.booleans())
def test_any_sum_written_as_finance_writes_it_is_read_back_exactly(fen, sign, grouped):
    yuan = f"{fen // 100:,}" if grouped else str(fen // 100)
    assert parse_amount(f"{sign}{yuan}.{fen % 100:02d}") == fen


@pytest.mark.parametrize(("text", "day"), [
    ("2030-09-05", date(2030, 9, 5)), ("2030/9/5", date(2030, 9, 5)), ("2030-09-05 10:22:11", date(2030, 9, 5)),
    ("2030年9月5日", date(2030, 9, 5)), ("20300905", date(2030, 9, 5)), ("2030.09.05", date(2030, 9, 5)),
])
def test_a_date_as_banks_write_it(text, day):
    assert parse_day(text) == day


@pytest.mark.parametrize("text", ["昨天", "2030-02-30", "05/09/2030", ""])
def test_what_is_no_date_is_refused(text):
    with pytest.raises(ValueError):
        parse_day(text)


@pytest.mark.parametrize(("text", "ref"), [
    ("SG203009-000001", "SG203009-000001"), ("sg203009-000001", "SG203009-000001"),
    ("课后服务费 SG203009-000012 王小明", "SG203009-000012"), ("转账SG203009-1234567备注", "SG203009-1234567"),
    ("课后服务费 王小明", None), ("SG2030-000001", None),
])
def test_the_reference_is_found_in_a_memo(text, ref):
    assert find_reference(text) == ref


WECHAT = """微信支付账单明细
起始时间：[2030-09-01 00:00:00] 终止时间：[2030-09-30 23:59:59]
交易时间,交易单号,交易对方,金额(元),备注
2030-09-05 10:00:00,T1,王父,¥30.00,课后服务费 {ref}
2030-09-06 11:00:00,T2,李四,"¥1,000.50",捐款

2030-09-07 12:00:00,T3,张三,abc,{ref}
昨天,T4,赵五,¥10.00,{ref}
2030-09-08 12:00:00,T5
2030-09-09 12:00:00,,钱六,¥5.00,{ref}
"""
MAPPING = ColumnMapping(reference="备注", amount="金额(元)", date="交易时间", payer="交易对方", txn_id="交易单号")


def test_a_statement_file_keeps_its_good_rows_and_names_the_bad_ones_by_line():
    rows, problems = read_statement_file(WECHAT.format(ref="SG203009-000001").encode(), MAPPING)
    assert rows == [
        FileRow(4, "课后服务费 SG203009-000001", 3_000, date(2030, 9, 5), "王父", "T1"),
        FileRow(5, "捐款", 100_050, date(2030, 9, 6), "李四", "T2"),
    ]
    assert problems == [
        RowProblem(7, "payment.amount", {"amount": "abc"}),
        RowProblem(8, "payment.date", {"date": "昨天"}),
        RowProblem(9, "payment.row_short", {"columns": 2}),
        RowProblem(10, "payment.no_txn", {"column": "交易单号"}),
    ]


def test_a_gbk_file_and_one_without_the_mapped_columns():
    gbk = "日期,金额,摘要\n2030-09-05,80.00,SG203009-000001\n".encode("gbk")
    rows, problems = read_statement_file(gbk, ColumnMapping(reference="摘要", amount="金额", date="日期"))
    assert [(r.line, r.amount_fen, r.txn_id) for r in rows] == [(2, 8_000, None)] and problems == []
    with pytest.raises(Invalid) as refused:
        read_statement_file(gbk, ColumnMapping(reference="备注", amount="金额", date="日期"))
    assert refused.value.text("en") == "no line of the file has all the mapped columns: 备注, 金额, 日期"


def test_without_a_transaction_id_a_row_is_known_by_date_amount_reference_and_payer():
    one = FileRow(2, "SG203009-000001", 8_000, date(2030, 9, 5), "王父", None)
    assert one.dedupe_key == FileRow(9, "SG203009-000001", 8_000, date(2030, 9, 5), "王父", None).dedupe_key  # line aside
    assert one.dedupe_key != FileRow(2, "SG203009-000001", 8_000, date(2030, 9, 5), "李母", None).dedupe_key
    assert FileRow(2, "x", 1, date(2030, 9, 5), "", "T1").dedupe_key == "txn:T1"


# --- over HTTP ----------------------------------------------------------------------------------------


def _import(world, text: str, *, txn: bool = True, lang: str = "en"):
    form = {"channel": "wechat", "reference_column": "备注", "amount_column": "金额(元)", "date_column": "交易时间",
            "payer_column": "交易对方"}
    if txn:
        form["txn_column"] = "交易单号"
    return world.client.post(f"/api/v1/schools/s1/payments/import?lang={lang}", headers=world.as_("finance1"),
                             data=form, files={"file": ("wechat.csv", text.encode(), "text/csv")})


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_payments_by_hand_and_from_a_file_are_matched_and_a_second_import_adds_nothing(world):
    _september(world)
    run = world.client.post("/api/v1/schools/s1/statements?month=2030-09&issue=true", headers=world.as_("finance1")).json()
    ref = next(s["reference"] for s in run["statements"] if s["student"] == "A1")
    by_hand = world.client.post("/api/v1/schools/s1/payments", headers=world.as_("finance1"), json={
        "reference": f"课后服务费{ref.lower()}", "amount_fen": 5_000, "paid_on": "2030-09-03", "channel": "cash", "payer": "王父"})
    assert by_hand.status_code == 201, by_hand.text
    assert (by_hand.json()["statement"], by_hand.json()["source"]) == (ref, "hand")
    first = _import(world, WECHAT.format(ref=ref))
    assert first.status_code == 200, first.text
    assert first.json() == {"added": 2, "duplicates": 0, "matched": 1, "problems": [
        {"line": 7, "problem": "abc is not an amount of money (like 100.00 or ¥1,000.50)"},
        {"line": 8, "problem": "昨天 is not a date (like 2026-12-03)"},
        {"line": 9, "problem": "the row has only 2 columns"},
        {"line": 10, "problem": "no transaction id in column 交易单号"},
    ]}
    again = _import(world, WECHAT.format(ref=ref)).json()
    assert (again["added"], again["duplicates"], again["matched"]) == (0, 2, 0)
    unmatched = world.client.get("/api/v1/schools/s1/payments/unmatched", headers=world.as_("admin1")).json()
    assert [(p["payer"], p["amount_fen"], p["channel"], p["source"]) for p in unmatched] == [("李四", 100_050, "wechat", "file:wechat.csv")]
    a1 = next(s for s in world.client.get("/api/v1/schools/s1/statements?month=2030-09", headers=world.as_("finance1")).json()
              if s["student"] == "A1")
    assert (a1["paid_fen"], a1["balance_fen"]) == (8_000, 0)
    assert world.client.get("/api/v1/schools/s1/statements/outstanding?month=2030-09", headers=world.as_("finance1")).json() == []
    # P7.5: the fund's ledger holds the issued charges as owed and the matched 80.00 as in the bank; the
    # unmatched 1,000.50 is in the bank too, and in suspense until someone finds whose it is.
    charged = sum(s["charge_fen"] for s in run["statements"])
    balances = {b["account"]: b["balance_fen"] for b in
                world.client.get("/api/v1/schools/s1/ledger/balances", headers=world.as_("finance1")).json()}
    assert (balances["bank"], balances["suspense"], balances["fee_income"], balances["receivable"]) == (
        8_000 + 100_050, 100_050, charged, charged - 8_000)


def test_a_file_without_transaction_ids_imported_twice_adds_nothing(world):
    text = "交易时间,交易对方,金额(元),备注\n2030-09-05,王父,80.00,SG203009-999999\n2030-09-05,王父,80.00,SG203009-999998\n"
    assert _import(world, text, txn=False).json()["added"] == 2
    assert _import(world, text, txn=False).json() == {"added": 0, "duplicates": 2, "matched": 0, "problems": []}


def test_a_payment_by_an_unknown_channel_or_to_a_draft_stays_unmatched_or_is_refused(world):
    _september(world)
    run = world.client.post("/api/v1/schools/s1/statements?month=2030-09", headers=world.as_("finance1")).json()
    draft = run["statements"][0]["reference"]
    body = {"reference": draft, "amount_fen": 8_000, "paid_on": "2030-09-03", "channel": "wechat"}
    made = world.client.post("/api/v1/schools/s1/payments", headers=world.as_("finance1"), json=body).json()
    assert made["statement"] is None  # a draft's reference was never given to a family
    refused = world.client.post("/api/v1/schools/s1/payments?lang=en", headers=world.as_("finance1"),
                                json=body | {"channel": "paypal"})
    assert (refused.status_code, refused.json()["detail"][0]["msg"]) == (
        422, "paypal is no payment channel: bank / wechat / alipay / cash")


def test_a_line_csv_cannot_read_refuses_the_file_naming_the_line():
    huge = ("a,b,c\n\"" + "x" * 200_000 + "\",1,2\n").encode()
    with pytest.raises(Invalid) as refused:
        read_statement_file(huge, ColumnMapping(reference="a", amount="b", date="c"))
    assert refused.value.text("en") == "line 2 cannot be read: field larger than field limit (131072)"


def _balances(world) -> dict[str, int]:
    return {b["account"]: b["balance_fen"] for b in
            world.client.get("/api/v1/schools/s1/ledger/balances", headers=world.as_("finance1")).json()}


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_an_unmatched_payment_waits_in_suspense_until_finance_matches_it_by_hand(world):
    import json

    from sqlmodel import select

    from central.core.audit import AuditLog

    _september(world)
    run = world.client.post("/api/v1/schools/s1/statements?month=2030-09&issue=true", headers=world.as_("finance1")).json()
    ref = next(s["reference"] for s in run["statements"] if s["student"] == "A1")
    paid = world.client.post("/api/v1/schools/s1/payments", headers=world.as_("finance1"), json={
        "reference": "王小明课后服务费", "amount_fen": 8_000, "paid_on": "2030-09-03", "channel": "bank", "payer": "王父"}).json()
    assert paid["statement"] is None
    assert (lambda b: (b["bank"], b["suspense"], b["receivable"]))(_balances(world)) == (8_000, 8_000, 8_000)
    url = f"/api/v1/schools/s1/payments/{paid['id']}/match?lang=en"
    refused = world.client.post(url, headers=world.as_("finance1"), json={"reference": "SG203009-999999"})
    assert (refused.status_code, refused.json()["detail"]) == (404, "no statement of this school has the reference SG203009-999999")
    matched = world.client.post(url, headers=world.as_("finance1"), json={"reference": ref.lower()})
    assert matched.status_code == 200, matched.text
    assert (matched.json()["statement"], matched.json()["amount_fen"]) == (ref, 8_000)
    # out of suspense onto the statement: the bank keeps the money, the family owes nothing more
    assert (lambda b: (b["bank"], b["suspense"], b["receivable"]))(_balances(world)) == (8_000, 0, 0)
    assert world.client.get("/api/v1/schools/s1/payments/unmatched", headers=world.as_("finance1")).json() == []
    again = world.client.post(url, headers=world.as_("finance1"), json={"reference": ref})
    assert (again.status_code, again.json()["detail"]) == (409, f"payment {paid['id']} is already matched to a statement")
    missing = world.client.post("/api/v1/schools/s1/payments/999999/match?lang=en", headers=world.as_("finance1"),
                                json={"reference": ref})
    assert (missing.status_code, missing.json()["detail"]) == (404, "there is no payment 999999 at this school")
    with world.session() as session:
        (row,) = session.exec(select(AuditLog).where(AuditLog.entity == f"payment:{paid['id']}",
                                                     AuditLog.action == "payment.update")).all()
    assert row.actor == "user:finance1"
    assert (json.loads(row.before)["statement_id"], json.loads(row.after)["statement_id"]) == (
        None, next(s["id"] for s in run["statements"] if s["student"] == "A1"))


def test_a_draft_takes_no_payment_by_hand(world):
    _september(world)
    run = world.client.post("/api/v1/schools/s1/statements?month=2030-09", headers=world.as_("finance1")).json()
    paid = world.client.post("/api/v1/schools/s1/payments", headers=world.as_("finance1"), json={
        "reference": "x", "amount_fen": 8_000, "paid_on": "2030-09-03", "channel": "cash"}).json()
    draft = run["statements"][0]["reference"]
    refused = world.client.post(f"/api/v1/schools/s1/payments/{paid['id']}/match?lang=en", headers=world.as_("finance1"),
                                json={"reference": draft})
    assert (refused.status_code, refused.json()["detail"]) == (
        409, f"statement {draft} is a draft: only an issued statement takes a payment")
