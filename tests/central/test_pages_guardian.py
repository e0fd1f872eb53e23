"""/guardian without a browser (issue 14): a guardian's children today, signing the notice from their own
account (the child becomes active), one-time pickup codes, a day's leave the teacher's roster shows;
never another family's child."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlmodel import select

from central.pickup.models import PickupCode
from central.programme import enrollment
from central.programme.models import AbsenceExcuse, CareSession, DutyAssignment, Enrollment, NoticeSignature
from central.schools.models import GuardianLink, School

from .conftest import PASSWORD
from .test_pages import DAY, ENDS, STARTS, csrf_of, log_in, pages, states, tap  # noqa: F401  (pages: the fixture)


def children(html: str) -> dict[str, str]:
    return dict(re.findall(r'class="session child" data-student="([^"]+)" data-state="([^"]+)"', html))


def test_the_guardian_sees_their_child_today_and_no_other(pages):
    log_in(pages.client, "parentA")
    r = pages.client.get("/guardian")
    assert r.status_code == 200 and children(r.text) == {"A1": "expected"}  # 15:50: the session starts at 16:00
    assert "学生A1" in r.text and "学生B1" not in r.text and "父亲" in r.text
    tap(pages, 1, "checkin", STARTS + timedelta(minutes=2), student="A1")
    html = pages.client.get("/guardian").text
    assert children(html) == {"A1": "on_site"} and "16:02 起在校（gate-1）" in html
    tap(pages, 2, "pickup", ENDS, student="A1", guardian=f"g{pages.ids['gA']}")
    html = pages.client.get("/guardian").text
    assert children(html) == {"A1": "gone"} and "17:00 由父亲王父接走（gate-1）" in html


def test_the_guardians_landing_page_and_role(pages):
    page = pages.client.get("/login")
    r = pages.client.post("/login", data={"username": "parentA", "password": PASSWORD, "csrf": csrf_of(page.text)}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/guardian")
    assert 'href="/guardian"' in pages.client.get("/").text
    pages.client.cookies.clear()
    log_in(pages.client, "teacherA")
    assert pages.client.get("/guardian").status_code == 403


def test_another_familys_child_is_not_found(pages):
    log_in(pages.client, "parentA")
    csrf = csrf_of(pages.client.get("/guardian").text)
    with pages.session() as session:
        b1 = session.exec(select(Enrollment).where(Enrollment.student_id == pages.ids["B1"])).one()
    for path, data in (
        ("/guardian/leave", {"student": "B1", "note": "x"}),
        ("/guardian/codes", {"student": "B1", "person": "张三"}),
        ("/guardian/codes", {"student": "X1", "person": "张三"}),
        ("/guardian/sign", {"enrollment_id": b1.id, "party": "guardian", "signer": "王父", "notice_version": 1}),
    ):
        assert pages.client.post(path, data={**data, "csrf": csrf}, follow_redirects=False).status_code == 404, path
    # The barred guardian of A1 does not see A1 either (P9.4).
    pages.client.cookies.clear()
    log_in(pages.client, "parentBarred")
    html = pages.client.get("/guardian").text
    assert children(html) == {} and "您的账号暂未关联孩子" in html
    with pages.session() as session:
        assert session.exec(select(AbsenceExcuse)).all() == [] and session.exec(select(PickupCode)).all() == []


def test_forms_without_the_csrf_token_are_refused(pages):
    log_in(pages.client, "parentA")
    for path, data in (("/guardian/leave", {"student": "A1"}), ("/guardian/codes", {"student": "A1", "person": "张三"})):
        assert pages.client.post(path, data=data, follow_redirects=False).status_code == 403
    with pages.session() as session:
        assert session.exec(select(AbsenceExcuse)).all() == [] and session.exec(select(PickupCode)).all() == []


def test_the_guardian_signs_the_notice_and_the_child_becomes_active(pages):
    with pages.session() as session:
        school = session.get(School, pages.ids["s1"])
        session.add(GuardianLink(guardian_id=pages.ids["gA"], student_id=pages.ids["C1"], relation="父亲"))
        row = Enrollment(school_id=school.id, student_id=pages.ids["C1"], group_id=pages.ids["groupA"], state="approved", application="申请")
        session.add(row)
        session.commit()
        enrollment_id = row.id
        notice = enrollment.publish_notice(session, school=school, text="告知书正文", actor="admin1")
        enrollment.sign(session, school=school, enrollment_id=enrollment_id, party="school", signer="示范小学", notice_version=notice.version,
                        actor="admin1", role="school_admin")
    log_in(pages.client, "parentA")
    html = pages.client.get("/guardian").text
    assert "告知书正文" in html and html.count('action="/guardian/sign"') == 2
    r = pages.client.post("/guardian/sign", data={"enrollment_id": enrollment_id, "party": "guardian", "signer": "王父",
                                                  "notice_version": 1, "csrf": csrf_of(html)}, follow_redirects=False)
    assert r.status_code == 303
    # An old version of the notice is refused on the page, in the guardian's language, and nothing is signed.
    r = pages.client.post("/guardian/sign", data={"enrollment_id": enrollment_id, "party": "student", "signer": "学生C1",
                                                  "notice_version": 0, "csrf": csrf_of(html)})
    assert r.status_code == 409 and 'class="error"' in r.text
    r = pages.client.post("/guardian/sign", data={"enrollment_id": enrollment_id, "party": "student", "signer": "学生C1",
                                                  "notice_version": 1, "csrf": csrf_of(html)}, follow_redirects=False)
    assert r.status_code == 303
    with pages.session() as session:
        assert session.get(Enrollment, enrollment_id).state == "active"
        sigs = session.exec(select(NoticeSignature).where(NoticeSignature.enrollment_id == enrollment_id)).all()
    assert sorted((s.party, s.signer, s.guardian_id, s.paper, s.recorded_by) for s in sigs) == [
        ("guardian", "王父", pages.ids["gA"], False, "user:parentA"),
        ("school", "示范小学", None, False, "admin1"),
        ("student", "学生C1", pages.ids["gA"], False, "user:parentA"),
    ]
    assert 'action="/guardian/sign"' not in pages.client.get("/guardian").text


def test_the_guardian_issues_and_revokes_a_one_time_code(pages):
    log_in(pages.client, "parentA")
    csrf = csrf_of(pages.client.get("/guardian").text)
    r = pages.client.post("/guardian/codes", data={"student": "A1", "person": "张阿姨", "day": DAY.isoformat(), "csrf": csrf})
    assert r.status_code == 201
    code = re.search(r'data-code="(\d+)"', r.text).group(1)
    assert "张阿姨" in r.text and "此码只显示这一次" in r.text
    with pages.session() as session:
        row = session.exec(select(PickupCode)).one()
    assert (row.person, row.day, row.student_id, row.issued_by, row.revoked_at) == ("张阿姨", DAY, pages.ids["A1"], "user:parentA", None)
    assert code not in pages.client.get("/guardian").text  # shown once
    # The barred person's name is refused, with the reason, and no code is made.
    r = pages.client.post("/guardian/codes", data={"student": "A1", "person": "赵某", "csrf": csrf})
    assert r.status_code == 403 and 'class="error"' in r.text
    r = pages.client.post(f"/guardian/codes/{row.id}/revoke", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    with pages.session() as session:
        assert session.get(PickupCode, row.id).revoked_at is not None
        assert len(session.exec(select(PickupCode)).all()) == 1
    assert "已作废" in pages.client.get("/guardian").text
    # Another family's code: not found.
    pages.client.cookies.clear()
    log_in(pages.client, "parentB")
    csrf = csrf_of(pages.client.get("/guardian").text)
    assert pages.client.post(f"/guardian/codes/{row.id}/revoke", data={"csrf": csrf}, follow_redirects=False).status_code == 404


def test_a_days_leave_shows_excused_on_the_teachers_roster(pages):
    log_in(pages.client, "parentA")
    csrf = csrf_of(pages.client.get("/guardian").text)
    r = pages.client.post("/guardian/leave", data={"student": "A1", "day": DAY.isoformat(), "note": "发烧", "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    r = pages.client.post("/guardian/leave", data={"student": "A1", "day": (DAY - timedelta(days=1)).isoformat(), "csrf": csrf})
    assert r.status_code == 422
    with pages.session() as session:
        row = session.exec(select(AbsenceExcuse)).one()
    assert (row.student_id, row.day, row.note) == (pages.ids["A1"], DAY, "发烧")
    assert "已请假" in pages.client.get("/guardian").text
    pages.client.cookies.clear()
    log_in(pages.client, "teacherA")
    html = pages.client.get("/teacher").text
    assert states(html) == {"A1": "absent"} and "已请假" in html and "发烧" in html


def test_a_pickup_on_a_day_without_a_session_names_who_took_the_child(pages):
    """A1's group has no session today; the gates still saw A1 come and go: the page names who took the
    child, as the teacher's roster does, and says so when the child walked home alone."""
    with pages.session() as session:
        for row in session.exec(select(DutyAssignment).where(DutyAssignment.session_id == pages.ids["session_groupA"])):
            session.delete(row)
        session.delete(session.get(CareSession, pages.ids["session_groupA"]))
        session.commit()
    log_in(pages.client, "parentA")
    tap(pages, 1, "checkin", STARTS, student="A1")
    tap(pages, 2, "pickup", STARTS + timedelta(minutes=30), student="A1", guardian=f"g{pages.ids['gA']}")
    html = pages.client.get("/guardian").text
    assert children(html) == {"A1": "gone"} and "16:30 由父亲王父接走（gate-1）" in html
    assert "Picked up at 16:30 by 王父 (父亲), gate-1" in pages.client.get("/guardian?lang=en").text
    tap(pages, 3, "checkin", STARTS + timedelta(minutes=40), student="A1")
    tap(pages, 4, "self_dismiss", STARTS + timedelta(minutes=50), student="A1")
    assert "16:50 自行离校（gate-1）" in pages.client.get("/guardian?lang=zh_CN").text
