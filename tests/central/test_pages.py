"""The pages (issue 14) without a browser: login and logout, CSRF, roles and schools, the teacher's
roster as the gates' stored events make it, excused absences from the page form.
The browser scenarios (live updates, restarts, screenshots) are in tests/integration/test_pages_browser.py."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import select

from central.core import clock
from central.kiosks.models import Event
from central.programme.models import AbsenceExcuse, CareSession, DutyAssignment
from central.schools.models import Student

from .conftest import PASSWORD

DAY = date(2030, 10, 8)  # a Tuesday
# 16:00–17:00 in Shanghai
STARTS, ENDS = datetime(2030, 10, 8, 8, 0, tzinfo=UTC), datetime(2030, 10, 8, 9, 0, tzinfo=UTC)


@pytest.fixture
def pages(world, monkeypatch):
    world.settings.session_secret = SecretStr("s" * 64)
    now = {"at": datetime(2030, 10, 8, 7, 50, tzinfo=UTC)}  # 15:50 in Shanghai
    monkeypatch.setattr(clock, "utcnow", lambda: now["at"])
    with world.session() as session:
        for group in ("groupA", "groupB"):
            row = CareSession(school_id=world.ids["s1"], group_id=world.ids[group], day=DAY, starts_at=STARTS, ends_at=ENDS,
                              place="教学楼101", created_by="test")
            session.add(row)
            session.flush()
            world.ids[f"session_{group}"] = row.id
        session.add(DutyAssignment(session_id=world.ids["session_groupA"], staff_id=world.ids["staffA"], assigned_by="test"))
        session.commit()
    world.now = now
    return world


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def log_in(client, user: str) -> None:
    page = client.get("/login")
    r = client.post("/login", data={"username": user, "password": PASSWORD, "csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303, r.text


def tap(world, seq: int, kind: str, at: datetime, **fields) -> None:
    with world.session() as session:
        session.add(Event(id=f"00000000-0000-7000-8000-{seq:012d}", school_id=world.ids["s1"], kiosk_id=world.ids["gate-1"], seq=seq,
                          kind=kind, at=at, received_at=at, prev="0" * 64, hash=f"{seq:064d}", sig="0" * 64, feed_pos=seq, **fields))
        session.commit()


def states(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-student="([^"]+)" data-state="([^"]+)"', html))


def test_a_page_without_login_sends_to_login_and_back(pages):
    r = pages.client.get("/teacher", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login?next=/teacher")
    page = pages.client.get("/login?next=/teacher")
    assert 'name="next" value="/teacher"' in page.text and "登录" in page.text  # zh_CN by default
    r = pages.client.post("/login", data={"username": "teacherA", "password": PASSWORD, "csrf": csrf_of(page.text), "next": "/teacher"},
                          follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/teacher")
    cookie = r.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "secure" not in cookie.lower()


def test_behind_https_the_login_cookie_is_secure(pages):
    """SCHOOLGATE_SESSION_COOKIE_SECURE=true (central behind TLS): the browser sends the cookie over https
    only; still HttpOnly and SameSite=Lax. (Without it, the test above: not Secure.)"""
    pages.settings.session_cookie_secure = True  # read when the first page request makes the middleware
    client = TestClient(pages.client.app, base_url="https://testserver")  # a Secure cookie goes back over https only
    page = client.get("/login")
    r = client.post("/login", data={"username": "teacherA", "password": PASSWORD, "csrf": csrf_of(page.text)}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/teacher")
    flags = {part.strip().lower() for part in r.headers["set-cookie"].split(";")[1:]}
    assert {"secure", "httponly", "samesite=lax"} <= flags, flags
    assert client.get("/teacher").status_code == 200


def test_a_wrong_password_is_refused_on_the_page(pages):
    page = pages.client.get("/login")
    r = pages.client.post("/login", data={"username": "teacherA", "password": "wrong", "csrf": csrf_of(page.text)})
    assert r.status_code == 401 and "teacherA" in r.text
    assert pages.client.get("/teacher", follow_redirects=False).status_code == 303


def test_a_form_without_its_csrf_token_is_refused(pages):
    pages.client.get("/login")
    r = pages.client.post("/login", data={"username": "teacherA", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403
    r = pages.client.post("/login", data={"username": "teacherA", "password": PASSWORD, "csrf": "forged"}, follow_redirects=False)
    assert r.status_code == 403
    log_in(pages.client, "teacherA")
    r = pages.client.post("/teacher/excuse", data={"student": "A1", "note": "病假"}, follow_redirects=False)
    assert r.status_code == 403
    with pages.session() as session:
        assert session.exec(select(AbsenceExcuse)).all() == []


def test_logout_ends_the_login(pages):
    log_in(pages.client, "teacherA")
    page = pages.client.get("/teacher")
    assert page.status_code == 200
    r = pages.client.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    assert pages.client.get("/teacher", follow_redirects=False).status_code == 303


def test_another_schools_page_is_not_found_and_other_roles_are_refused(pages):
    log_in(pages.client, "teacherA")
    assert pages.client.get("/teacher?school=s2").status_code == 404
    assert pages.client.get("/teacher?school=nowhere").status_code == 404
    assert pages.client.get("/teacher/live?school=s2").status_code == 404
    pages.client.cookies.clear()
    log_in(pages.client, "guard1")
    assert pages.client.get("/teacher").status_code == 403
    pages.client.cookies.clear()
    log_in(pages.client, "admin2")
    assert pages.client.get("/teacher?school=s1").status_code == 404


def test_the_teacher_sees_their_groups_session_as_the_gates_saw_it(pages):
    log_in(pages.client, "teacherA")
    html = pages.client.get("/teacher").text
    assert "groupA" in html and "groupB" not in html  # teacherA is in charge of groupA only
    assert states(html) == {"A1": "expected"}  # 15:50: the session starts at 16:00
    pages.now["at"] = STARTS + timedelta(minutes=5)
    assert states(pages.client.get("/teacher").text) == {"A1": "expected"}
    pages.now["at"] = STARTS + timedelta(minutes=11)
    assert states(pages.client.get("/teacher").text) == {"A1": "absent"}
    tap(pages, 1, "checkin", STARTS + timedelta(minutes=12), student="A1")
    html = pages.client.get("/teacher").text
    assert states(html) == {"A1": "on_site"} and "16:12 起在校（gate-1）" in html
    # One child on site, staffA on duty but not tapped in: none present, so the ratio warns (P9.2).
    assert "师生比超标" in html
    tap(pages, 2, "staff_on", STARTS + timedelta(minutes=13), staff=f"st{pages.ids['staffA']}")
    assert "师生比超标" not in pages.client.get("/teacher").text
    # Past the end plus 15 minutes' grace: highlighted.
    pages.now["at"] = ENDS + timedelta(minutes=16)
    html = pages.client.get("/teacher").text
    assert 'class="on_site overdue"' in html
    tap(pages, 3, "pickup", ENDS + timedelta(minutes=17), student="A1", guardian=f"g{pages.ids['gA']}")
    html = pages.client.get("/teacher").text
    assert states(html) == {"A1": "gone"} and "17:17 由父亲王父接走（gate-1）" in html
    en = pages.client.get("/teacher?lang=en").text
    assert "Picked up at 17:17 by 王父 (父亲), gate-1" in en


def test_a_child_walking_home_alone_is_shown_so(pages):
    log_in(pages.client, "teacherA")
    tap(pages, 1, "checkin", STARTS, student="A1")
    tap(pages, 2, "self_dismiss", ENDS, student="A1")
    assert "17:00 自行离校（gate-1）" in pages.client.get("/teacher").text


def test_the_teacher_excuses_an_absence_from_the_page(pages):
    pages.now["at"] = STARTS + timedelta(minutes=20)
    log_in(pages.client, "teacherA")
    page = pages.client.get("/teacher")
    r = pages.client.post("/teacher/excuse", data={"student": "A1", "note": "发烧请假", "csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    html = pages.client.get("/teacher").text
    assert states(html) == {"A1": "absent"} and "已请假" in html and "发烧请假" in html
    with pages.session() as session:
        row = session.exec(select(AbsenceExcuse)).one()
        a1 = session.exec(select(Student).where(Student.student_no == "A1")).one()
    assert (row.student_id, row.day, row.note) == (a1.id, DAY, "发烧请假")
    # Not a child of the teacher's groups: as if it did not exist.
    r = pages.client.post("/teacher/excuse", data={"student": "B1", "note": "x", "csrf": csrf_of(html)}, follow_redirects=False)
    assert r.status_code == 404


def test_the_admin_sees_every_group(pages):
    log_in(pages.client, "admin1")
    html = pages.client.get("/teacher").text
    assert "groupA" in html and "groupB" in html
    assert set(states(html)) == {"A1", "B1"}


def test_static_files_ship_in_the_package(pages):
    css = pages.client.get("/static/app.css")
    assert css.status_code == 200 and "@media print" in css.text
    assert "EventSource" in pages.client.get("/static/live.js").text


def test_the_roll_call_counts_every_child_on_site_from_every_gate(pages):
    tap(pages, 1, "checkin", STARTS, student="A1")
    tap(pages, 2, "checkin", STARTS + timedelta(minutes=1), student="B1")
    tap(pages, 3, "checkin", STARTS + timedelta(minutes=2), student="C1")  # in no group with a session today
    tap(pages, 4, "pickup", STARTS + timedelta(minutes=30), student="B1", guardian=f"g{pages.ids['gB']}")
    tap(pages, 5, "staff_on", STARTS, staff=f"st{pages.ids['staffA']}")
    pages.now["at"] = STARTS + timedelta(minutes=40)
    log_in(pages.client, "guard1")
    html = pages.client.get("/rollcall").text
    assert states(html) == {"A1": "on_site", "C1": "on_site"}
    assert 'data-total="2"' in html and "在校学生 2 人，在岗教职工 1 人" in html and "在岗教职工：staffA" in html
    assert html.index('data-student="A1"') < html.index("不在今日场次中的在校学生") < html.index('data-student="C1"')


def test_the_roll_call_is_for_those_who_see_the_whole_school(pages):
    log_in(pages.client, "teacherA")
    assert pages.client.get("/rollcall").status_code == 403
    pages.client.cookies.clear()
    log_in(pages.client, "admin2")
    assert pages.client.get("/rollcall?school=s1").status_code == 404
    assert pages.client.get("/rollcall/live?school=s1").status_code == 404
    assert pages.client.get("/rollcall").status_code == 200  # their own school


def test_the_home_page_lists_the_callers_pages_in_their_language(pages):
    log_in(pages.client, "guard1")
    html = pages.client.get("/").text
    assert 'href="/rollcall"' in html and 'href="/teacher"' not in html
    en = pages.client.get("/?lang=en")
    assert en.headers["content-language"] == "en" and "Emergency roll call" in en.text
    assert "Emergency roll call" in pages.client.get("/").text  # the choice is kept for the session
    assert "Log out" in pages.client.get("/logout").text
