"""Staff and vendors (P6): a third-party staff member serves only after the last approval of P6.2's chain."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session

from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.core.errors import Conflict, Forbidden, Invalid
from central.kiosks import roster
from central.programme import schedule
from central.programme import staff as staff_service
from central.programme.models import DismissalTimeCreate, InterestGroupCreate, StaffCreate, StaffUpdate, TermCreate, VendorCreate
from central.schools.models import Card, School, SchoolClass, Student

SETTINGS = Settings()
MON = date(2026, 11, 30)
# P6.2: who records each step (role values), written here by hand.
RECORDER = {"review_panel": "school_admin", "party_org": "school_admin", "district": "district", "city": "district"}


@pytest.fixture
def db(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        school = School(code="s1", name="示范小学")
        session.add(school)
        session.commit()
        schedule.add_term(session, school=school, actor="admin",
                          data=TermCreate(name="秋季", starts_on=date(2026, 9, 1), ends_on=date(2027, 1, 20)))
        from datetime import time

        schedule.set_dismissal(session, school=school, actor="admin",
                               data=DismissalTimeCreate(grade="三年级", season="winter", dismissal=time(16, 0)))
        yield session, school
    engine.dispose()


def test_third_party_staff_cannot_serve_until_the_last_approval(db):
    session, school = db
    from central.programme import groups

    vendor = staff_service.create_vendor(session, school=school, actor="admin",
                                         data=VendorCreate(name="星火体育俱乐部", licence="鲁教民123"))
    coach = staff_service.create_staff(session, school=school, actor="admin",
                                       data=StaffCreate(name="王教练", kind="third_party", vendor_id=vendor.id))
    group = groups.create_group(session, school=school, actor="admin", settings=SETTINGS, data=InterestGroupCreate(
        name="篮球", category="sports", capacity=30, place="体育馆", grades=["三年级"]))
    (row,) = schedule.plan_sessions(session, school=school, start=MON, end=MON, group_id=group.id, actor="admin", settings=SETTINGS)

    for i, step in enumerate(staff_service.VENDOR_STEPS):
        with pytest.raises(Conflict) as refused:
            schedule.assign_duty(session, school=school, session_id=row.id, staff_id=coach.id, actor="admin")
        assert f"next step: {step}" in refused.value.text("en") and "P6.2" in refused.value.text("en")
        assert staff_service.staff_public(session, coach).may_serve is False
        assert "st%d" % coach.id not in {s["id"] for s in roster.build_people(session, school)["staff"]}
        staff_service.decide_step(session, school=school, vendor_id=vendor.id, step=step, approved=True,
                                  note="家委会代表3人、教师代表2人" if i == 0 else "", actor=f"approver{i}",
                                  role=RECORDER[step])
    duty = schedule.assign_duty(session, school=school, session_id=row.id, staff_id=coach.id, actor="admin")
    assert duty.staff_id == coach.id
    shown = staff_service.vendor_public(session, staff_service.get_vendor(session, school=school, vendor_id=vendor.id))
    assert shown.state == "approved" and [a.step for a in shown.approvals] == list(staff_service.VENDOR_STEPS)
    assert [a.decided_by for a in shown.approvals] == ["approver0", "approver1", "approver2", "approver3"]
    assert "st%d" % coach.id in {s["id"] for s in roster.build_people(session, school)["staff"]}


def test_approval_steps_go_in_order_and_a_refusal_closes_the_chain(db):
    session, school = db
    vendor = staff_service.create_vendor(session, school=school, actor="admin", data=VendorCreate(name="机构"))
    with pytest.raises(Conflict) as skipped:
        staff_service.decide_step(session, school=school, vendor_id=vendor.id, step="district", approved=True,
                                  actor="d", role="district")
    assert "next step is 'review_panel'" in skipped.value.text("en")
    with pytest.raises(Invalid):
        staff_service.decide_step(session, school=school, vendor_id=vendor.id, step="province", approved=True,
                                  actor="d", role="district")
    staff_service.decide_step(session, school=school, vendor_id=vendor.id, step="review_panel", approved=True,
                              actor="p", role="school_admin")
    staff_service.decide_step(session, school=school, vendor_id=vendor.id, step="party_org", approved=False,
                              note="资质不全", actor="party", role="school_admin")
    with pytest.raises(Conflict, match="refused"):
        staff_service.decide_step(session, school=school, vendor_id=vendor.id, step="district", approved=True,
                                  actor="d", role="district")


# (step, the role that tries it) for every step and both roles that may use the route; the wrong one is refused.
WRONG_RECORDER = {
    "review_panel": "district",
    "party_org": "district",
    "district": "school_admin",
    "city": "school_admin",
}


def test_each_approval_step_is_recorded_by_its_own_party_only(db):
    """P6.2: the school records its panel and Party organisation; only a district account records the
    district bureau's and the city bureau's approvals."""
    session, school = db
    vendor = staff_service.create_vendor(session, school=school, actor="admin", data=VendorCreate(name="机构"))
    for step, wrong in WRONG_RECORDER.items():
        with pytest.raises(Forbidden) as refused:
            staff_service.decide_step(session, school=school, vendor_id=vendor.id, step=step, approved=True,
                                      actor=f"user:{wrong}", role=wrong)
        assert "P6.2" in refused.value.text("en") and "区教体局账号" in str(refused.value)
        assert staff_service.next_step(session, vendor) == step  # nothing recorded
        staff_service.decide_step(session, school=school, vendor_id=vendor.id, step=step, approved=True,
                                  actor=f"user:{RECORDER[step]}", role=RECORDER[step])
    shown = staff_service.vendor_public(session, vendor)
    assert shown.state == "approved"
    assert [(a.step, a.decided_by) for a in shown.approvals] == [
        ("review_panel", "user:school_admin"), ("party_org", "user:school_admin"), ("district", "user:district"),
        ("city", "user:district")]
    for role in ("teacher", "guard", "finance", "guardian"):  # the route already keeps these out; so does the rule
        other = staff_service.create_vendor(session, school=school, actor="admin", data=VendorCreate(name=role))
        with pytest.raises(Forbidden):
            staff_service.decide_step(session, school=school, vendor_id=other.id, step="review_panel",
                                      approved=True, actor=role, role=role)


def test_through_the_api_the_school_admin_cannot_record_the_bureaus_approvals(world):
    api = "/api/v1/schools/s1/vendors"
    vendor = world.client.post(api, json={"name": "星火体育俱乐部"}, headers=world.as_("admin1")).json()
    url = f"{api}/{vendor['id']}/approvals"

    def decide(user: str, step: str):
        return world.client.post(url, json={"step": step, "approved": True}, headers=world.as_(user))

    assert decide("district", "review_panel").status_code == 403
    assert decide("admin1", "review_panel").status_code == 201
    assert decide("district", "party_org").status_code == 403
    assert decide("admin1", "party_org").status_code == 201
    refused = decide("admin1", "district")
    assert refused.status_code == 403 and "P6.2" in refused.json()["detail"], refused.text
    assert decide("district", "district").status_code == 201
    assert decide("admin1", "city").status_code == 403
    done = decide("district", "city")
    assert done.status_code == 201 and done.json()["state"] == "approved", done.text
    assert [(a["step"], a["decided_by"]) for a in done.json()["approvals"]] == [
        ("review_panel", "user:admin1"), ("party_org", "user:admin1"), ("district", "user:district"),
        ("city", "user:district")]


def test_staff_kinds_vendor_rules_and_cards(db):
    session, school = db
    with pytest.raises(Invalid):
        staff_service.create_staff(session, school=school, actor="a", data=StaffCreate(name="x", kind="contractor"))
    with pytest.raises(Invalid):
        staff_service.create_staff(session, school=school, actor="a", data=StaffCreate(name="x", kind="third_party"))
    teacher = staff_service.create_staff(session, school=school, actor="a", data=StaffCreate(name="李老师", kind="teacher"))
    staff_service.add_card(session, school=school, staff_id=teacher.id, uid="0a:0b:0c:0d", actor="a")
    assert staff_service.staff_public(session, teacher).cards == ["0A0B0C0D"]
    klass = SchoolClass(school_id=school.id, grade="三年级", name="1班")
    session.add(klass)
    session.flush()
    kid = Student(school_id=school.id, class_id=klass.id, student_no="S1", name="学生")
    session.add(kid)
    session.flush()
    session.add(Card(school_id=school.id, uid="11223344", student_id=kid.id))
    session.commit()
    with pytest.raises(Conflict):  # a child's card is never also a staff card
        staff_service.add_card(session, school=school, staff_id=teacher.id, uid="11223344", actor="a")
    assert roster.build_people(session, school)["staff"] == [
        {"id": f"st{teacher.id}", "name": "李老师", "kind": "teacher", "cards": ["0A0B0C0D"]}
    ]


def test_a_guard_and_staff_the_school_allows_may_sign_in_at_the_gate_and_the_kiosk_roster_says_so(db):
    session, school = db
    make = lambda name, kind: staff_service.create_staff(session, school=school, actor="a",  # noqa: E731
                                                         data=StaffCreate(name=name, kind=kind))
    guard, teacher, clerk = make("王师傅", "guard"), make("李老师", "teacher"), make("赵干事", "employee")
    staff_service.update_staff(session, school=school, staff_id=clerk.id, data=StaffUpdate(gate_guard=True), actor="a")
    assert [staff_service.may_guard_gate(s) for s in (guard, teacher, clerk)] == [True, False, True]
    assert roster.build_people(session, school)["staff"] == [
        {"id": f"st{guard.id}", "name": "王师傅", "kind": "guard", "cards": [], "guard": True},
        {"id": f"st{teacher.id}", "name": "李老师", "kind": "teacher", "cards": []},
        {"id": f"st{clerk.id}", "name": "赵干事", "kind": "employee", "cards": [], "guard": True},
    ]


def test_through_the_api_a_bad_staff_card_is_refused_with_its_reason_in_the_callers_language(world):
    url = f"/api/v1/schools/s1/staff/{world.ids['staffA']}/cards"

    def refused(uid: str, language: str | None = None) -> list[dict]:
        headers = world.as_("admin1") | ({"Accept-Language": language} if language else {})
        r = world.client.post(url, json={"uid": uid}, headers=headers)
        assert r.status_code == 422, r.text
        return r.json()["detail"]

    assert refused("XYZ") == [{"loc": [], "msg": "卡号无效：'XYZ' 不是十六进制卡号", "type": "staff.card_bad"}]
    assert refused("XYZ", "en") == [{"loc": [], "msg": "bad card number: 'XYZ' is not a hexadecimal card number", "type": "staff.card_bad"}]
    assert refused("04A1B2")[0]["msg"] == "卡号无效：'04A1B2' 须为 4 到 10 字节（8 到 20 位十六进制数字，位数为偶数）"
    assert refused("04A1B2", "en")[0]["msg"] == "bad card number: '04A1B2' must be 4 to 10 bytes (8 to 20 hex digits, an even number)"
