"""Rules that a one-line slip could break without any other test noticing (issue 12's planted bugs).

Each test names the rule it guards; each was checked by breaking that rule's line on purpose and
watching the test fail. Expected values are written here by hand.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
import sqlalchemy as sa
from sqlmodel import select

from central.core import clock
from central.kiosks import roster
from central.programme import enrollment
from central.schools.models import GuardianLink, School, Student

API = "/api/v1/schools/s1"


def _today(world) -> date:
    with world.session() as session:
        return clock.local_today(session.exec(select(School).where(School.code == "s1")).one())


def _enrollment_of(world, student: str) -> dict:
    rows = world.client.get(f"{API}/enrollments", params={"student": student}, headers=world.as_("admin1")).json()
    return rows[-1]


def _apply(world, student: str, guardian: str, group: str, user: str = "admin1"):
    body = {"student": student, "guardian_id": world.ids[guardian], "application": "我自愿申请参加课后服务", "group_id": world.ids[group]}
    return world.client.post(f"{API}/enrollments", json=body, headers=world.as_(user))


def test_a_guardian_cannot_revoke_a_code_issued_by_someone_else_for_a_child_not_theirs(world):
    issued = world.client.post(
        f"{API}/pickup-codes", json={"student": "A1", "day": _today(world).isoformat(), "person": "张阿姨"}, headers=world.as_("parentA")
    )
    assert issued.status_code == 201, issued.text
    code_id = issued.json()["id"]
    r = world.client.delete(f"{API}/pickup-codes/{code_id}", headers=world.as_("parentB"))
    assert r.status_code == 404, r.text
    # The code is still live: the guard can redeem it.
    redeem = {"student": "A1", "code": issued.json()["code"]}
    assert world.client.post(f"{API}/pickup-codes/redeem", json=redeem, headers=world.as_("guard1")).status_code == 200


def test_a_teacher_no_longer_sees_a_withdrawn_or_rejected_child(world):
    seen = lambda: [s["student_no"] for s in world.client.get(f"{API}/students", headers=world.as_("teacherB")).json()]  # noqa: E731
    assert seen() == ["B1"]  # B1 is active in teacherB's group
    withdrawn = _enrollment_of(world, "B1")
    r = world.client.post(
        f"{API}/enrollments/{withdrawn['id']}/withdraw",
        json={"request": "家长书面申请退出", "effective_on": "2026-11-30"}, headers=world.as_("admin1"),
    )
    assert r.status_code == 200 and r.json()["state"] == "withdrawn", r.text
    assert seen() == []
    applied = _apply(world, "B1", "gB", "groupB")
    assert applied.status_code == 201, applied.text
    assert seen() == ["B1"]  # an open application shows the child to the group's teacher
    r = world.client.post(f"{API}/enrollments/{applied.json()['id']}/reject", json={"reason": "名额已满"}, headers=world.as_("admin1"))
    assert r.status_code == 200 and r.json()["state"] == "rejected", r.text
    assert seen() == []


def test_the_poverty_flag_never_reaches_a_kiosk(world):
    with world.session() as session:
        child = session.exec(select(Student).where(Student.student_no == "A1")).one()
        child.poverty_registered = True
        session.add(child)
        session.commit()
        people = roster.build_people(session, session.exec(select(School).where(School.code == "s1")).one(), today=_today(world))
    assert "poverty" not in json.dumps(people)
    # What a kiosk learns of a child, as the gate needs it (P7.3: the fee waiver stays at central).
    a1 = next(s for s in people["students"] if s["id"] == "A1")
    assert set(a1) <= {"id", "name", "class", "cards", "enrolled", "groups", "may_leave_alone"}


def test_a_guardian_cannot_apply_for_a_child_not_theirs(world):
    before = len(world.client.get(f"{API}/enrollments", headers=world.as_("admin1")).json())
    # A child not theirs answers as a student number that does not exist: nothing to learn from it.
    r = _apply(world, "B1", "gA", "groupA", user="parentA")  # B1 is parentB's child
    assert (r.status_code, r.json()["detail"]) == (404, "没有学生 B1"), r.text
    r = _apply(world, "C1", "gA", "groupA", user="parentA")  # C1 has no link to parentA either
    assert (r.status_code, r.json()["detail"]) == (404, "没有学生 C1"), r.text
    assert len(world.client.get(f"{API}/enrollments", headers=world.as_("admin1")).json()) == before


def test_a_teacher_reviews_only_applications_to_a_group_in_their_charge(world):
    # A1 is active in teacherA's group and applies to teacherB's group as well.
    applied = _apply(world, "A1", "gA", "groupB")
    assert applied.status_code == 201, applied.text
    path = f"{API}/enrollments/{applied.json()['id']}/review"
    r = world.client.post(path, json={"note": "同意"}, headers=world.as_("teacherA"))
    assert r.status_code == 404, r.text
    assert _enrollment_of(world, "A1")["state"] == "applied"
    r = world.client.post(path, json={"note": "同意"}, headers=world.as_("teacherB"))
    assert r.status_code == 200 and r.json()["state"] == "class_reviewed", r.text


def test_every_enrollment_step_and_consent_signature_is_in_the_audit_log(world):
    with world.session() as session:
        school = session.exec(select(School).where(School.code == "s1")).one()
        enrollment.publish_notice(session, school=school, text="告知书 v1", actor="admin1")
    applied = _apply(world, "B1", "gB", "groupA")  # B1, active in groupB, applies to groupA too
    eid = applied.json()["id"]
    steps = [
        ("review", {"note": ""}, "teacherA"),
        ("approve", {}, "admin1"),
        ("signatures", {"party": "school", "signer": "示范小学", "notice_version": 1}, "admin1"),
        ("signatures", {"party": "guardian", "signer": "李母", "notice_version": 1, "guardian_id": world.ids["gB"]}, "parentB"),
        ("signatures", {"party": "student", "signer": "学生B1", "notice_version": 1, "guardian_id": world.ids["gB"]}, "parentB"),
    ]
    for action, body, user in steps:
        r = world.client.post(f"{API}/enrollments/{eid}/{action}", json=body, headers=world.as_(user))
        assert r.status_code == 200, (action, user, r.text)
    assert r.json()["state"] == "active"
    with world.engine.connect() as conn:
        actions = [a for (a,) in conn.execute(sa.text("SELECT action FROM audit_log ORDER BY seq"))]
    # applied, class_reviewed, approved, active: four steps; three parties signed.
    assert actions.count("enrollment_step.create") == 4
    assert actions.count("notice_signature.create") == 3


def test_a_withdrawal_needs_the_written_request(world):
    row = _enrollment_of(world, "A1")
    path = f"{API}/enrollments/{row['id']}/withdraw"
    for request in ("", "   "):
        r = world.client.post(path, json={"request": request, "effective_on": "2026-11-30"}, headers=world.as_("admin1"))
        assert r.status_code == 422, r.text
    assert _enrollment_of(world, "A1")["state"] == "active"


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_a_link_is_never_both_barred_and_allowed_to_pick_up(world):
    """P9.4: refused with a clear 422 by the API; the database's CHECK (migration 0007) stands behind it."""
    refusal = "被禁止接送的人不能有接送权（P9.4）"
    link = f"{API}/students/A1/guardians/{world.ids['gA']}"
    for change in ({"barred": True}, {"barred": True, "may_pick_up": True}):  # gA may pick A1 up today
        r = world.client.patch(link, json=change, headers=world.as_("admin1"))
        assert r.status_code == 422 and r.json()["detail"][0]["msg"] == refusal, (change, r.text)
    r = world.client.patch(f"{API}/students/A1/guardians/{world.ids['gBarred']}", json={"may_pick_up": True},
                           headers=world.as_("admin1"))
    assert r.status_code == 422 and r.json()["detail"][0]["msg"] == refusal, r.text
    shown = world.client.get(f"{API}/students/A1", headers=world.as_("admin1")).json()["guardians"]
    assert {(g["name"], g["may_pick_up"], g["barred"]) for g in shown} == {("王父", True, False), ("赵某", False, True)}
    # Straight into the table, round the API: the database refuses it.
    with world.session() as session, pytest.raises(sa.exc.IntegrityError):
        session.execute(sa.update(GuardianLink).where(GuardianLink.guardian_id == world.ids["gA"]).values(barred=True))
        session.commit()
    r = world.client.patch(link, json={"barred": True, "may_pick_up": False}, headers=world.as_("admin1"))
    assert r.status_code == 200 and (r.json()["barred"], r.json()["may_pick_up"]) == (True, False), r.text
