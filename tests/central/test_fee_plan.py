"""A school's fee plan per term (P7.2): set by its admin, refused if it could pass the district's cap,
read by finance, audited."""

from __future__ import annotations

from sqlmodel import select

from central.core.audit import AuditLog


def _term(world, user: str = "admin1", school: str = "s1") -> int:
    made = world.client.post(f"/api/v1/schools/{school}/terms", headers=world.as_(user),
                             json={"name": "2031 春", "starts_on": "2031-02-17", "ends_on": "2031-06-30"})
    assert made.status_code == 201, made.text
    return made.json()["id"]


def test_a_plan_under_the_cap_is_set_read_by_finance_and_audited(world):
    term = _term(world)
    put = world.client.put(f"/api/v1/schools/s1/terms/{term}/fee-plan", headers=world.as_("admin1"),
                           json={"kind": "per_day", "amount_fen": 400})
    assert put.status_code == 200, put.text
    again = world.client.put(f"/api/v1/schools/s1/terms/{term}/fee-plan", headers=world.as_("admin1"),
                             json={"kind": "monthly", "amount_fen": 10_000})  # at the cap: allowed
    assert again.status_code == 200
    plans = world.client.get("/api/v1/schools/s1/fee-plans", headers=world.as_("finance1")).json()
    assert [(p["term"], p["kind"], p["amount_fen"], p["set_by"]) for p in plans] == [("2031 春", "monthly", 10_000, "user:admin1")]
    with world.session() as session:
        rows = session.exec(select(AuditLog).where(AuditLog.entity.like("fee_plan:%")).order_by(AuditLog.seq)).all()
    assert [(r.action, r.actor) for r in rows] == [("fee_plan.create", "user:admin1"), ("fee_plan.update", "user:admin1")]


def test_a_plan_that_could_pass_the_cap_is_refused_and_nothing_changes(world):
    term = _term(world)
    refused = world.client.put(f"/api/v1/schools/s1/terms/{term}/fee-plan?lang=en", headers=world.as_("admin1"),
                               json={"kind": "per_day", "amount_fen": 435})  # 435 x 23 days = 10,005 fen
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["msg"] == "the fee plan could charge 10005 fen in a month, above the cap of 10000 fen (P7.2)"
    assert world.client.get("/api/v1/schools/s1/fee-plans", headers=world.as_("admin1")).json() == []


def test_another_schools_term_is_not_found(world):
    theirs = _term(world, "admin2", "s2")
    missing = world.client.put(f"/api/v1/schools/s1/terms/{theirs}/fee-plan", headers=world.as_("admin1"),
                               json={"kind": "monthly", "amount_fen": 8000})
    assert missing.status_code == 404
