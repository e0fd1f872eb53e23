"""Staff and vendors (P6): a third-party staff member serves only after the last approval of P6.2's chain."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session

from central import roster, schedule
from central import staff as staff_service
from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.errors import Conflict, Invalid
from central.models import Card, DismissalTimeCreate, School, SchoolClass, StaffCreate, Student, TermCreate, VendorCreate
from central.models import InterestGroupCreate

SETTINGS = Settings()
MON = date(2026, 11, 30)


@pytest.fixture
def db(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        school = School(code="s1", name="示范小学")
        session.add(school)
        session.commit()
        schedule.add_term(session, school_id=school.id, actor="admin",
                          data=TermCreate(name="秋季", starts_on=date(2026, 9, 1), ends_on=date(2027, 1, 20)))
        from datetime import time

        schedule.set_dismissal(session, school_id=school.id, actor="admin",
                               data=DismissalTimeCreate(grade="三年级", season="winter", dismissal=time(16, 0)))
        yield session, school
    engine.dispose()


def test_third_party_staff_cannot_serve_until_the_last_approval(db):
    session, school = db
    from central import groups

    vendor = staff_service.create_vendor(session, school_id=school.id, actor="admin",
                                         data=VendorCreate(name="星火体育俱乐部", licence="鲁教民123"))
    coach = staff_service.create_staff(session, school_id=school.id, actor="admin",
                                       data=StaffCreate(name="王教练", kind="third_party", vendor_id=vendor.id))
    group = groups.create_group(session, school_id=school.id, actor="admin", settings=SETTINGS, data=InterestGroupCreate(
        name="篮球", category="sports", capacity=30, place="体育馆", grades=["三年级"]))
    (row,) = schedule.plan_sessions(session, school=school, start=MON, end=MON, group_id=group.id, actor="admin", settings=SETTINGS)

    for i, step in enumerate(staff_service.VENDOR_STEPS):
        with pytest.raises(Conflict) as refused:
            schedule.assign_duty(session, school_id=school.id, session_id=row.id, staff_id=coach.id, actor="admin")
        assert f"next step: {step}" in refused.value.text("en") and "P6.2" in refused.value.text("en")
        assert staff_service.staff_public(session, coach).may_serve is False
        assert "st%d" % coach.id not in {s["id"] for s in roster.build_people(session, school)["staff"]}
        staff_service.decide_step(session, school_id=school.id, vendor_id=vendor.id, step=step, approved=True,
                                  note="家委会代表3人、教师代表2人" if i == 0 else "", actor=f"approver{i}")
    duty = schedule.assign_duty(session, school_id=school.id, session_id=row.id, staff_id=coach.id, actor="admin")
    assert duty.staff_id == coach.id
    shown = staff_service.vendor_public(session, staff_service.get_vendor(session, school_id=school.id, vendor_id=vendor.id))
    assert shown.state == "approved" and [a.step for a in shown.approvals] == list(staff_service.VENDOR_STEPS)
    assert [a.decided_by for a in shown.approvals] == ["approver0", "approver1", "approver2", "approver3"]
    assert "st%d" % coach.id in {s["id"] for s in roster.build_people(session, school)["staff"]}


def test_approval_steps_go_in_order_and_a_refusal_closes_the_chain(db):
    session, school = db
    vendor = staff_service.create_vendor(session, school_id=school.id, actor="admin", data=VendorCreate(name="机构"))
    with pytest.raises(Conflict) as skipped:
        staff_service.decide_step(session, school_id=school.id, vendor_id=vendor.id, step="district", approved=True, actor="d")
    assert "next step is 'review_panel'" in skipped.value.text("en")
    with pytest.raises(Invalid):
        staff_service.decide_step(session, school_id=school.id, vendor_id=vendor.id, step="province", approved=True, actor="d")
    staff_service.decide_step(session, school_id=school.id, vendor_id=vendor.id, step="review_panel", approved=True, actor="p")
    staff_service.decide_step(session, school_id=school.id, vendor_id=vendor.id, step="party_org", approved=False,
                              note="资质不全", actor="party")
    with pytest.raises(Conflict, match="refused"):
        staff_service.decide_step(session, school_id=school.id, vendor_id=vendor.id, step="district", approved=True, actor="d")


def test_staff_kinds_vendor_rules_and_cards(db):
    session, school = db
    with pytest.raises(Invalid):
        staff_service.create_staff(session, school_id=school.id, actor="a", data=StaffCreate(name="x", kind="contractor"))
    with pytest.raises(Invalid):
        staff_service.create_staff(session, school_id=school.id, actor="a", data=StaffCreate(name="x", kind="third_party"))
    teacher = staff_service.create_staff(session, school_id=school.id, actor="a", data=StaffCreate(name="李老师", kind="teacher"))
    staff_service.add_card(session, school_id=school.id, staff_id=teacher.id, uid="0a:0b:0c:0d", actor="a")
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
        staff_service.add_card(session, school_id=school.id, staff_id=teacher.id, uid="11223344", actor="a")
    assert roster.build_people(session, school)["staff"] == [
        {"id": f"st{teacher.id}", "name": "李老师", "kind": "teacher", "cards": ["0A0B0C0D"]}
    ]
