"""The ledger over HTTP (finance records and reverses, the school admin and the district read) and its
spending summary on the school's public page (P7.5). Who may call what: test_role_matrix.py."""

from __future__ import annotations

from datetime import UTC, datetime

from central.billing import ledger
from central.billing.ledger import Line
from central.core import clock
from central.schools import registry

from .test_role_matrix import _app_routes

URL = "/api/v1/schools/s1/ledger"
USES = ("staff performance pay (staff_pay), volunteer allowances (volunteer_allowance), training (training) and "
        "other necessary service costs (other_service_cost)")


def test_finance_records_spending_reads_it_back_and_reverses_it_once(world):
    paid = world.client.post(f"{URL}/spending", headers=world.as_("finance1"),
                             json={"category": "training", "amount_fen": 3_000, "memo": "急救培训", "ref": "发票 0042"})
    assert paid.status_code == 201, paid.text
    entry = paid.json()
    assert (entry["seq"], entry["kind"], entry["category"], entry["actor"], entry["memo"], entry["ref"]) == (
        1, "spending", "training", "user:finance1", "急救培训", "发票 0042")
    assert entry["lines"] == [{"account": "training", "debit_fen": 3_000, "credit_fen": 0},
                              {"account": "bank", "debit_fen": 0, "credit_fen": 3_000}]
    world.client.post(f"{URL}/spending", headers=world.as_("finance1"),
                      json={"category": "volunteer_allowance", "amount_fen": 500, "memo": "志愿者交通补贴"})

    back = world.client.post(f"{URL}/{entry['id']}/reverse", headers=world.as_("finance1"), json={"reason": "发票作废"})
    assert back.status_code == 201, back.text
    assert (back.json()["seq"], back.json()["kind"], back.json()["reverses_id"], back.json()["memo"]) == (3, "reversal", entry["id"], "发票作废")
    again = world.client.post(f"{URL}/{entry['id']}/reverse?lang=en", headers=world.as_("finance1"), json={"reason": "再冲"})
    assert (again.status_code, again.json()["detail"]) == (409, f"entry {entry['id']} was already reversed by entry {back.json()['id']}")

    first = world.client.get(URL, params={"limit": 2}, headers=world.as_("admin1")).json()
    assert [(e["seq"], e["reversed_by_id"]) for e in first["entries"]] == [(1, back.json()["id"]), (2, None)]
    rest = world.client.get(URL, params={"after": first["next_after"]}, headers=world.as_("district")).json()
    assert ([e["seq"] for e in rest["entries"]], rest["next_after"]) == ([3], None)

    balances = world.client.get(f"{URL}/balances?lang=en", headers=world.as_("finance1")).json()
    moved = {b["account"]: (b["label"], b["side"], b["balance_fen"]) for b in balances if b["balance_fen"]}
    assert moved == {"bank": ("bank and cash", "debit", -500), "volunteer_allowance": ("volunteer allowances", "debit", 500)}
    assert len(balances) == 12


def test_a_management_fee_is_refused_by_name_and_nothing_is_recorded(world):
    refused = world.client.post(f"{URL}/spending", headers=world.as_("finance1"),
                                json={"category": "management_fee", "amount_fen": 2_000, "memo": "学校管理费"})
    assert refused.status_code == 422
    assert refused.json()["detail"] == [{"loc": [], "type": "billing.category_refused", "msg": (
        "不得在“management_fee”项下支出：服务费只能用于教师绩效报酬（staff_pay）、志愿者补贴（volunteer_allowance）、"
        "培训（training）和其他必要服务支出（other_service_cost）（P7.5）")}]
    made_up = world.client.post(f"{URL}/spending?lang=en", headers=world.as_("finance1"),
                                json={"category": "banquet", "amount_fen": 2_000, "memo": "聚餐"})
    assert made_up.json()["detail"][0]["msg"] == f'spending under "banquet" is refused: the service fees pay only for {USES} (P7.5)'
    assert world.client.get(URL, headers=world.as_("finance1")).json() == {"entries": [], "next_after": None}


def test_another_schools_entry_is_not_found(world):
    with world.session() as session:
        theirs = ledger.post(session, school=registry.get_school(session, "s2"), kind="spending", ref="", actor="test",
                             category="training", lines=[Line("training", 100), Line("bank", credit_fen=100)])
        session.commit()
        theirs_id = theirs.id
    missing = world.client.post(f"{URL}/{theirs_id}/reverse?lang=en", headers=world.as_("finance1"), json={"reason": "错账"})
    assert (missing.status_code, missing.json()["detail"]) == (404, f"no ledger entry {theirs_id}")


def test_no_route_changes_or_removes_an_entry(world):
    assert {route for route in _app_routes(world.client.app) if "/ledger" in route} == {
        "GET /api/v1/schools/{school}/ledger", "GET /api/v1/schools/{school}/ledger/balances",
        "POST /api/v1/schools/{school}/ledger/spending", "POST /api/v1/schools/{school}/ledger/{entry_id}/reverse",
        "POST /api/v1/schools/{school}/ledger/payouts",  # a new entry, bank out for what is owed
    }


def test_the_public_page_shows_income_and_spending_per_use_and_nothing_personal(world, monkeypatch):
    real = clock.utcnow
    with world.session() as session:
        s1 = registry.get_school(session, "s1")
        monkeypatch.setattr(clock, "utcnow", lambda: datetime(2030, 9, 10, 8, 0, tzinfo=UTC))
        ledger.post(session, school=s1, kind="statement", ref="SG203009-000001", actor="test", memo="学生A1 九月",
                    lines=[Line("receivable", 16_000), Line("fee_income", credit_fen=16_000)])
        ledger.post(session, school=s1, kind="staff_pay", ref="", actor="test", memo="staffA 九月绩效",
                    lines=[Line("staff_pay", 12_800), Line("staff_pay_payable", credit_fen=12_800)])
        ledger.post(session, school=s1, kind="spending", ref="", actor="test", memo="王父 垫付的急救包", category="other_service_cost",
                    lines=[Line("other_service_cost", 1_250), Line("bank", credit_fen=1_250)])
        monkeypatch.setattr(clock, "utcnow", lambda: datetime(2030, 10, 8, 8, 0, tzinfo=UTC))  # October's
        ledger.post(session, school=s1, kind="spending", ref="", actor="test", memo="培训", category="training",
                    lines=[Line("training", 9_900), Line("bank", credit_fen=9_900)])
        session.commit()
    monkeypatch.setattr(clock, "utcnow", real)
    page = world.client.get("/public/s1", params={"period": "2030-09", "lang": "en"}).text
    for expected in ("Service fund: income and spending (2030-09-01 to 2030-09-30)", "service fee income: 160.00 CNY",
                     "government subsidy income: 0.00 CNY", "staff performance pay: 128.00 CNY", "training: 0.00 CNY",
                     "other necessary service costs: 12.50 CNY", "Spent in all: 140.50 CNY"):
        assert expected in page, expected
    for private in ("学生A1", "staffA", "王父", "SG203009"):
        assert private not in page
    chinese = world.client.get("/public/s1", params={"period": "2030"}).text
    assert "服务费专户收支公示（2030-01-01 至 2030-12-31）" in chinese and "培训费：99.00 元" in chinese and "支出合计：239.50 元" in chinese
    assert world.client.get("/public/s1", params={"period": "2030-13"}).status_code == 422


def _owe(world, *lines: Line, kind: str) -> None:
    with world.session() as session:
        ledger.post(session, school=registry.get_school(session, "s1"), kind=kind, ref="", actor="test", lines=list(lines))
        session.commit()


def test_finance_pays_out_staff_pay_and_refunds_owed_and_never_more_than_is_owed(world):
    # A confirmed pay run owes the staff 60.00; a withdrawal owes a family 26.66 (fee income given back).
    _owe(world, Line("staff_pay", 6_000), Line("staff_pay_payable", credit_fen=6_000), kind="staff_pay")
    _owe(world, Line("fee_income", 2_666), Line("refunds_payable", credit_fen=2_666), kind="refund")
    pay = world.client.post(f"{URL}/payouts", headers=world.as_("finance1"),
                            json={"payable": "staff_pay_payable", "amount_fen": 4_000, "memo": "九月绩效 第一批", "ref": "转账 77"})
    assert pay.status_code == 201, pay.text
    assert (pay.json()["kind"], pay.json()["ref"], pay.json()["lines"]) == ("staff_pay", "转账 77", [
        {"account": "staff_pay_payable", "debit_fen": 4_000, "credit_fen": 0},
        {"account": "bank", "debit_fen": 0, "credit_fen": 4_000}])
    beyond = world.client.post(f"{URL}/payouts?lang=en", headers=world.as_("finance1"),
                               json={"payable": "staff_pay_payable", "amount_fen": 2_001, "memo": "九月绩效 第二批"})
    assert (beyond.status_code, beyond.json()["detail"]) == (
        409, "paying out 2001 fen is more than is owed on staff pay payable: 2000 fen")
    rest = world.client.post(f"{URL}/payouts", headers=world.as_("finance1"),
                             json={"payable": "staff_pay_payable", "amount_fen": 2_000, "memo": "九月绩效 第二批"})
    assert rest.status_code == 201, rest.text
    back = world.client.post(f"{URL}/payouts", headers=world.as_("finance1"),
                             json={"payable": "refunds_payable", "amount_fen": 2_666, "memo": "退费 学生S2", "ref": "SG203009-000002"})
    assert (back.status_code, back.json()["kind"]) == (201, "refund")
    twice = world.client.post(f"{URL}/payouts?lang=en", headers=world.as_("finance1"),
                              json={"payable": "refunds_payable", "amount_fen": 1, "memo": "退费 再退"})
    assert (twice.status_code, twice.json()["detail"]) == (409, "paying out 1 fen is more than is owed on refunds payable to families: 0 fen")
    balances = {b["account"]: b["balance_fen"] for b in world.client.get(f"{URL}/balances", headers=world.as_("finance1")).json()}
    assert (balances["staff_pay_payable"], balances["refunds_payable"], balances["bank"]) == (0, 0, -(6_000 + 2_666))
    other = world.client.post(f"{URL}/payouts?lang=en", headers=world.as_("finance1"),
                              json={"payable": "fee_income", "amount_fen": 1, "memo": "管理费"})
    assert other.status_code == 422 and other.json()["detail"][0]["msg"] == (
        "fee_income is nothing the fund pays out: staff_pay_payable, refunds_payable")
