"""/guardian and /admin/kiosks in a real browser (issue 14), against the embedded broker, central and a
kiosk with a simulated reader (the set-up of test_pages_browser.py): a guardian signs the notice from
their own account and the child becomes active at the gate, issues a one-time code, and the gate
accepts that code. Screenshots in zh_CN at 1280×800 and 390×844 beside the other pages'."""

from __future__ import annotations

import re

from sgtest import wait_for
from sqlmodel import Session, col, select

from central.admin import create_user
from central.core.audit import AuditLog
from central.core.db import make_engine
from central.demo import DEMO_GUARD_CARD
from central.programme import enrollment
from central.programme.models import Enrollment
from central.safety.models import SafetyReview
from central.schools.models import Card, Guardian, GuardianLink, School, Student

from .test_pages_browser import PASSWORD, artifacts, browser, log_in, school  # noqa: F401  (fixtures)

NEW_CHILD, NEW_CARD = "S-NEW-1", "04C0FFEE000001"


def _new_child_waiting_for_signatures(gate) -> tuple[int, str]:
    """A child of a demo family, approved into the demo group, the school's signature on the notice:
    only the family's two are missing. Returns the enrollment id and the guardian's name."""
    engine = make_engine(gate.settings.sqlalchemy_url)
    try:
        with Session(engine) as db:
            db.info["actor"] = "test"
            row = db.exec(select(School).where(School.code == gate.code)).one()
            sibling = db.exec(select(Enrollment).where(Enrollment.school_id == row.id, Enrollment.state == "active")
                              .order_by(col(Enrollment.id))).first()
            older = db.get(Student, sibling.student_id)
            link = db.exec(select(GuardianLink).where(GuardianLink.student_id == older.id, col(GuardianLink.may_pick_up).is_(True),
                                                      col(GuardianLink.barred).is_(False))).first()
            child = Student(school_id=row.id, class_id=older.class_id, student_no=NEW_CHILD, name="新同学")
            db.add(child)
            db.flush()
            db.add(Card(school_id=row.id, uid=NEW_CARD, student_id=child.id))
            db.add(GuardianLink(guardian_id=link.guardian_id, student_id=child.id, relation=link.relation))
            new = Enrollment(school_id=row.id, student_id=child.id, group_id=sibling.group_id, guardian_id=link.guardian_id,
                             state="approved", application="申请")
            db.add(new)
            db.commit()
            notice = enrollment.current_notice(db, school=row)
            enrollment.sign(db, school=row, enrollment_id=new.id, party="school", signer=row.name, notice_version=notice.version,
                            actor="user:principal", role="school_admin")
            guardian = db.get(Guardian, link.guardian_id)
            create_user(gate.settings, username="parent", password=PASSWORD, role="guardian", school=gate.code, guardian_id=guardian.id)
            return new.id, guardian.name
    finally:
        engine.dispose()


def test_a_guardian_signs_issues_a_code_and_the_gate_accepts_it(browser, school, artifacts):
    enrollment_id, guardian = _new_child_waiting_for_signatures(school)
    url = school.central.url
    page = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
    log_in(page, url, user="parent", lands="/guardian")
    card = page.locator(f'section.child[data-student="{NEW_CHILD}"]')
    assert card.locator('form[action="/guardian/sign"]').count() == 2
    page.screenshot(path=str(artifacts / "guardian-390x844.png"), full_page=True)
    card.locator('form[action="/guardian/sign"]').first.locator('input[name="signer"]').fill(guardian)
    with page.expect_navigation():
        card.locator('form[action="/guardian/sign"]').first.locator("button").click()
    card = page.locator(f'section.child[data-student="{NEW_CHILD}"]')
    card.locator('form[action="/guardian/sign"] input[name="signer"]').fill("新同学")
    with page.expect_navigation():
        card.locator('form[action="/guardian/sign"] button').click()
    assert page.locator(f'section.child[data-student="{NEW_CHILD}"] form[action="/guardian/sign"]').count() == 0
    # Active now: the gate's roster follows, and the child checks in.
    wait_for(lambda: NEW_CHILD in school.gate.roster.students and school.gate.roster.students[NEW_CHILD].enrolled,
             timeout=10, what="the new child active in the gate's roster")
    assert school.tap(NEW_CARD).outcome == "checked_in"

    # A one-time code for a neighbour, shown once; the gate's roster gets its digest.
    card = page.locator(f'section.child[data-student="{NEW_CHILD}"]')
    card.locator("summary").first.click()
    card.locator('form[action="/guardian/codes"] input[name="person"]').fill("邻居张阿姨")
    card.locator('form[action="/guardian/codes"] button').click()
    page.wait_for_selector("p.code[data-code]")
    code = page.get_attribute("p.code", "data-code")
    assert re.fullmatch(r"\d{6,}", code)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=str(artifacts / "guardian-1280x800.png"), full_page=True)
    wait_for(lambda: any(c.student == NEW_CHILD for c in school.gate.roster.codes.values()), timeout=10,
             what="the code in the gate's roster")
    assert school.tap(DEMO_GUARD_CARD).outcome == "guard_signed_in"  # the guard at the gate takes the code
    shown = school.gate.pickup_code(NEW_CHILD, code)
    assert shown.outcome == "pickup_allowed", shown.message
    assert shown.person == "邻居张阿姨"
    assert school.gate.confirm(shown.confirm).outcome == "pickup_done"
    assert school.gate.pickup_code(NEW_CHILD, code).outcome == "code_used"
    page.close()
    with Session(make_engine(school.settings.sqlalchemy_url)) as db:
        assert db.get(Enrollment, enrollment_id).state == "active"


def test_the_admins_gate_page(browser, school, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    url = school.central.url
    log_in(page, url, user="principal", lands="/admin/kiosks")
    page.wait_for_selector('section.gate[data-kiosk="gate-1"]')
    page.screenshot(path=str(artifacts / "admin-kiosks-1280x800.png"), full_page=True)
    page.fill('input[name="kiosk"]', "gate-2")
    page.click('form[action="/admin/kiosks"] button')
    page.wait_for_selector("pre.command")
    assert "--kiosk gate-2 --secret" in page.inner_text("pre.command")
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(artifacts / "admin-kiosks-390x844.png"), full_page=True)
    page.close()


def test_the_district_and_safety_pages(browser, school, artifacts):
    """Screenshots of /district and /admin/safety; a barred guardian refused at the gate is on the list first, the
    principal acknowledges it on the page and the audit log names them and the time."""
    create_user(school.settings, username="district", password=PASSWORD, role="district")
    url = school.central.url
    assert school.tap("04BADBADBAD001").outcome == "unknown_card"  # a card nobody holds: an item of the list
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    log_in(page, url, user="district", lands="/district")
    page.wait_for_selector(f'tr[data-school="{school.code}"]')
    page.screenshot(path=str(artifacts / "district-1280x800.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(artifacts / "district-390x844.png"), full_page=True)
    page.close()
    # A barred guardian at the gate (a custody order): their card, then the child's — refused loudly.
    barred = next(g for g in school.gate.roster.guardians.values() if g.links and g.cards and all(link.barred for link in g.links))
    child = school.gate.roster.students[barred.links[0].student]
    assert school.tap(barred.cards[0]).outcome == "guardian_barred"
    assert school.tap(child.cards[0]).outcome == "pickup_barred"
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    log_in(page, url, user="principal", lands="/admin/safety")
    wait_for(lambda: page.reload() is not None and page.locator('section.item[data-kind="pickup_refused"]').count() > 0, timeout=10,
             what="the barred attempt on the safety list")
    assert page.locator("section.item").first.get_attribute("data-kind") == "pickup_refused"  # barred first
    page.screenshot(path=str(artifacts / "admin-safety-1280x800.png"), full_page=True)
    item = page.locator('section.item[data-kind="pickup_refused"]').first
    key = item.get_attribute("data-item")
    item.locator('input[name="note"]').fill("已核实：法院禁令，已通知监护人")
    with page.expect_navigation():
        item.locator('button[value="acknowledge"]').click()
    assert page.locator(f'section.item[data-item="{key}"][data-state="acknowledged"]').count() == 1
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(artifacts / "admin-safety-390x844.png"), full_page=True)
    page.close()
    # The audit log says who acknowledged it and when.
    engine = make_engine(school.settings.sqlalchemy_url)
    with Session(engine) as db:
        logged = db.exec(select(AuditLog).where(col(AuditLog.entity).like("safety_review:%"))).all()
        step = db.exec(select(SafetyReview).where(SafetyReview.item == key)).one()
    engine.dispose()
    assert [(row.actor, key in row.after, "已核实：法院禁令" in row.after) for row in logged] == [("user:principal", True, True)]
    assert (step.by, step.step) == ("user:principal", "acknowledge") and logged[0].at >= step.at  # who, and when
