"""The pages in a real browser (issue 14): Chromium from Debian driven by Playwright, against the embedded
broker, central served by uvicorn and a kiosk reading a simulated card reader.

A teacher's open /teacher page shows a child on site within 1 s of the tap and then gone with the
guardian's name, without a reload; it survives central restarting, and shows a tap made while central was
down; a page whose login ended goes to /login with itself as `next`, whether its stream was up (sent
`logout`) or down; another school's page answers 404;
a form posted without its CSRF token is refused; login and logout. Screenshots in zh_CN at 1280×800
and 390×844 are kept in $SCHOOLGATE_ARTIFACTS (else the test's temporary folder)/pages.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest
from sgtest import Broker, require_chromium, wait_for
from sqlmodel import Session, select

from central.accounts import users
from central.accounts.models import User
from central.admin import central_key, create_school, create_user, import_files, register_kiosk
from central.core.config import Settings
from central.core.db import make_engine
from central.demo import DEMO_GUARD_CARD, enroll_demo_students, write_demo_roster
from central.programme.models import Staff
from central.schools.models import School as SchoolRow
from central.server import CentralServer
from gateway.feed import CURRENT
from gateway.mqtt import free_port
from hardware import SimulatedReader
from kiosk.config import KioskSettings
from kiosk.engine import DEBOUNCE
from kiosk.runtime import Kiosk

SECRET = "c3" * 32
PASSWORD = "teacher-password-123"


class _Null:
    def write(self, _text):
        pass

    def flush(self):
        pass


class Gate:
    """Central, a school with the demo's families and one gate reading a simulated reader."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.broker = Broker(f"sqlite:///{tmp / 'central.sqlite3'}")
        self.settings = Settings(
            database_url=f"sqlite:///{tmp / 'central.sqlite3'}", mqtt_url=self.broker.central_url,
            topic_prefix=f"sgtest-{uuid.uuid4().hex[:10]}/v1", session_secret="p" * 64, signing_key_file=tmp / "signing.key",
        )
        self.broker.start()
        self.port = free_port()
        self.central = CentralServer(self.settings, port=self.port).start()
        self.code = "sch-pages"
        create_school(self.settings, code=self.code, name="示范小学")
        create_school(self.settings, code="sch-other", name="第二小学")
        students, guardians = write_demo_roster(tmp / "roster", classes=1, students=6, guardians=6)
        import_files(self.settings, school=self.code, students=students, guardians=guardians)
        version = enroll_demo_students(self.settings, school=self.code).version
        register_kiosk(self.settings, school=self.code, kiosk="gate-1", secret=SECRET)
        engine = make_engine(self.settings.sqlalchemy_url)
        with Session(engine) as session:
            school = session.exec(select(SchoolRow).where(SchoolRow.code == self.code)).one()
            teacher = session.exec(select(Staff).where(Staff.school_id == school.id, Staff.name == "值班老师")).one()
        engine.dispose()
        create_user(self.settings, username="teacher", password=PASSWORD, role="teacher", school=self.code, staff_id=teacher.id)
        create_user(self.settings, username="principal", password=PASSWORD, role="school_admin", school=self.code)
        self.gate = Kiosk(KioskSettings(
            school=self.code, kiosk="gate-1", data_dir=tmp / "gate-1", secret=SECRET, central_key=central_key(self.settings),
            mqtt_url=self.broker.url, topic_prefix=self.settings.topic_prefix, central_url=self.central.url, resend_after=2.0,
        )).start()
        wait_for(lambda: self.gate.roster.version >= version, what="the gate's roster")
        wait_for(lambda: self.gate.feed.state == CURRENT, what="the gate caught up with the school's feed")
        self.reader = SimulatedReader()
        self.shown: list = []
        self.stop_reading = threading.Event()
        self.thread = threading.Thread(target=self.gate.run, args=(self.reader, _Null(), self.stop_reading, self.shown.append), daemon=True)
        self.thread.start()
        self.families = self._families()

    def _families(self) -> list[tuple]:
        """(student no, name, card, guardian name, relation, guardian card) of the children a guardian may pick up."""
        roster, found = self.gate.roster, []
        for guardian in sorted(roster.guardians.values(), key=lambda g: g.id):
            for link in guardian.links:
                child = roster.students[link.student]
                if link.may_pick_up and not link.barred and child.enrolled and child.cards and guardian.cards:
                    found.append((child.id, child.name, child.cards[0], guardian.name, guardian.relation, guardian.cards[0]))
        return found

    def tap(self, card: str):
        """Present a card to the reader; the gate's decision."""
        before = len(self.shown)
        self.reader.present(card)
        wait_for(lambda: len(self.shown) > before, timeout=10, what=f"the gate's decision on {card}")
        return self.shown[before]

    def start_central(self) -> None:
        """Central again on the same port (after ``self.central.stop()``)."""
        self.central = CentralServer(self.settings, port=self.port).start()

    def end_logins(self, username: str) -> None:
        """Every login of ``username`` revoked in the database (as a password change does), with no page told."""
        engine = make_engine(self.settings.sqlalchemy_url)
        with Session(engine) as session:
            user = session.exec(select(User).where(User.username == username)).one()
            users.revoke_all(session, user_id=user.id)
            session.commit()
        engine.dispose()

    def close(self) -> None:
        self.stop_reading.set()
        self.reader.close()
        self.thread.join(5)
        self.gate.close()
        self.central.stop()
        self.broker.stop()


@pytest.fixture(scope="module")
def browser():
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def school(tmp_path_factory):
    found = Gate(tmp_path_factory.mktemp("pages"))
    try:
        yield found
    finally:
        found.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    base = os.environ.get("SCHOOLGATE_ARTIFACTS")
    folder = Path(base) / "pages" if base else tmp_path_factory.mktemp("artifacts") / "pages"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_in(page, url: str, user: str = "teacher", password: str = PASSWORD, lands: str = "/teacher") -> None:
    page.goto(f"{url}/login?next={lands}")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}{lands}")


def row(page, student: str, state: str) -> str:
    return f'#live tr[data-student="{student}"][data-state="{state}"]'


def test_login_csrf_and_logout(browser, school, artifacts):
    page = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
    url = school.central.url
    page.goto(f"{url}/teacher")
    assert page.url == f"{url}/login?next=/teacher"
    page.screenshot(path=str(artifacts / "login-390x844.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=str(artifacts / "login-1280x800.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.fill("#username", "teacher")
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    assert page.locator("p.error").is_visible()
    log_in(page, url)
    # A form posted from the page without its token: refused, and nothing changed.
    status = page.evaluate("""async () => (await fetch('/teacher/excuse', {method: 'POST',
        headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'student=x&note=y'})).status""")
    assert status == 403
    page.click("header button[type=submit]")  # 退出登录
    page.wait_for_url(f"{url}/login")
    assert page.goto(f"{url}/teacher").url.startswith(f"{url}/login")
    page.close()


def test_a_live_page_sent_logout_goes_to_login_with_itself_as_next(browser, school):
    # The page's stream is open when its login ends (logged out in another tab): at the stream's next round
    # central sends `logout`; the page goes to /login with itself, query and all, as `next`.
    refresh = school.settings.live_refresh_seconds
    school.settings.live_refresh_seconds = 0.2  # the rounds' interval (20 s by default), read as a stream opens
    context = browser.new_context(locale="zh-CN")
    try:
        page, other = context.new_page(), context.new_page()
        url = school.central.url
        log_in(page, url, lands=f"/teacher?school={school.code}")
        page.wait_for_selector("#live-state.ok")
        other.goto(f"{url}/")
        other.click("header button[type=submit]")  # 退出登录, in the other tab: the same login
        other.wait_for_url(f"{url}/login")
        page.wait_for_url(f"{url}/login?next=/teacher%3Fschool%3D{school.code}", timeout=5000)
        # What logging in again leads back to (tests/central/test_pages.py follows a login's `next`).
        assert page.get_attribute('input[name="next"]', "value") == f"/teacher?school={school.code}"
    finally:
        school.settings.live_refresh_seconds = refresh
        context.close()


def test_another_schools_page_is_not_found(browser, school):
    page = browser.new_page(locale="zh-CN")
    log_in(page, school.central.url)
    response = page.goto(f"{school.central.url}/teacher?school=sch-other")
    assert response.status == 404
    assert "页面不存在" in page.content()
    page.close()


def test_the_open_roster_follows_the_gate_without_reload_and_survives_a_restart(browser, school, artifacts):
    (child, name, card, guardian, relation, guardian_card), (child2, _name2, card2, *_rest), *_ = school.families
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    url = school.central.url
    log_in(page, url)
    page.wait_for_selector("#live-state.ok")
    page.evaluate("window.notReloaded = true")
    assert page.locator(row(page, child, "on_site")).count() == 0

    tapped = time.monotonic()
    assert school.tap(card).outcome == "checked_in"
    page.wait_for_selector(row(page, child, "on_site"), timeout=5000)
    seen = time.monotonic() - tapped
    print(f"tap to page: {seen:.3f}s")
    assert seen <= 1.0, f"the tap showed after {seen:.2f}s"
    assert "gate-1" in page.inner_text(row(page, child, "on_site"))
    page.screenshot(path=str(artifacts / "teacher-1280x800.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(artifacts / "teacher-390x844.png"), full_page=True)

    # The pickup at the gate: the guard signed in, the guardian's card, the child's, the guard confirms.
    assert school.tap(DEMO_GUARD_CARD).outcome == "guard_signed_in"
    assert school.tap(guardian_card).outcome == "guardian_waiting"
    # The child's card again: past the gate's debounce of a repeated tap (kiosk/engine.py), or it is ignored.
    wait_for(lambda: time.monotonic() - tapped > DEBOUNCE.total_seconds(), what="the gate's debounce to pass")
    asked = school.tap(card)
    assert asked.outcome == "pickup_allowed", asked.message
    assert school.gate.confirm(asked.confirm).outcome == "pickup_done"
    page.wait_for_selector(row(page, child, "gone"), timeout=5000)
    assert guardian in page.inner_text(row(page, child, "gone")) and relation in page.inner_text(row(page, child, "gone"))

    # Central stops: the page notices. A child taps in meanwhile: the gate decides alone and keeps the
    # event; central back, the gate sends it again and central stores it. The page's stream stays down a
    # moment longer (its requests dropped), so the tap can reach it only as what it missed: reconnected
    # by itself, the page is sent the whole roster again and shows the child, with no reload.
    live = f"{url}/teacher/live*"
    page.route(live, lambda route: route.abort())
    school.central.stop()
    page.wait_for_selector("#live-state.lost", timeout=5000)
    assert school.tap(card2).outcome == "checked_in"
    assert school.gate.store.queue_depth() >= 1  # kept at the gate while central is away
    school.start_central()
    wait_for(lambda: school.gate.store.queue_depth() == 0, timeout=10, what="central to store the tap made while it was down")
    page.unroute(live)
    page.wait_for_selector(row(page, child2, "on_site"), timeout=10000)
    page.wait_for_selector("#live-state.ok")
    assert page.evaluate("window.notReloaded") is True

    # The roster the stream sent (rendered once for every page alike) carries this page's own form token:
    # a child's absence excused from it is accepted, and the page shows it.
    assert len(school.families) >= 4
    child4 = school.families[2][0]
    form = page.locator(f'#live tr[data-student="{child4}"] form.excuse')
    form.locator('input[name="note"]').fill("家长来电：发烧")
    with page.expect_navigation():
        form.locator("button").click()
    assert "家长来电：发烧" in page.inner_text(f'#live tr[data-student="{child4}"]')
    assert page.locator(f'#live tr[data-student="{child4}"] .excused').count() == 1

    # The login ends while the stream is down (revoked while central was stopped): no `logout` can reach
    # the page. Central back, the page is sent to /login, not left retrying and showing "lost".
    school.central.stop()
    page.wait_for_selector("#live-state.lost", timeout=5000)
    school.end_logins("teacher")
    school.start_central()
    page.wait_for_url(f"{url}/login?next=/teacher%3Fschool%3D{school.code}", timeout=10000)
    page.close()


def test_the_roll_call_is_live_and_printable(browser, school, artifacts):
    *_, (child3, _name3, card3, *_rest) = school.families
    page = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
    url = school.central.url
    log_in(page, url, user="principal", lands="/rollcall")
    page.wait_for_selector("#live-state.ok")
    before = int(page.get_attribute("#rollcall-total", "data-total"))
    assert school.tap(card3).outcome == "checked_in"
    page.wait_for_selector(f'#live tr[data-student="{child3}"]', timeout=5000)
    assert int(page.get_attribute("#rollcall-total", "data-total")) == before + 1
    page.screenshot(path=str(artifacts / "rollcall-390x844.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=str(artifacts / "rollcall-1280x800.png"), full_page=True)
    page.emulate_media(media="print")
    assert not page.locator("header.bar").is_visible()  # the printed sheet: no top bar, no buttons
    page.close()


def test_the_admin_imports_a_roster_on_the_page_and_reviews_the_enrollment_queue(browser, school, artifacts, tmp_path):
    """/admin/import: a file chosen in the browser, previewed (nothing written), confirmed; then /admin/enrollments."""
    students = tmp_path / "学生.csv"
    students.write_text("学号,姓名,年级,班级,卡号\nP-NEW-1,页面新生,一年级,9班,04ABCDEF01\n", encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    url = school.central.url
    log_in(page, url, user="principal", lands="/admin/import")
    page.set_input_files('input[name="students"]', str(students))
    with page.expect_navigation():
        page.click("#import-preview-button")
    assert page.inner_text('dd[data-count="students_created"]') == "1" and "页面新生" in page.inner_text("#import-preview")
    page.screenshot(path=str(artifacts / "admin-import-1280x800.png"), full_page=True)
    with page.expect_navigation():
        page.click("#import-confirm")
    page.wait_for_selector("#import-done")
    # The gates' roster follows: the new child is on the gate (not enrolled yet: enrollment is the way in).
    wait_for(lambda: "P-NEW-1" in school.gate.roster.students, timeout=10, what="the imported child in the gate's roster")
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(artifacts / "admin-import-390x844.png"), full_page=True)
    page.goto(f"{url}/admin/enrollments")
    page.wait_for_selector("#notice")
    page.screenshot(path=str(artifacts / "admin-enrollments-390x844.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=str(artifacts / "admin-enrollments-1280x800.png"), full_page=True)
    page.goto(f"{url}/charts/attendance")  # today's session drawn (the children tapped in above)
    page.wait_for_selector("#attendance-chart g[data-day]")
    page.screenshot(path=str(artifacts / "charts-attendance-1280x800.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(artifacts / "charts-attendance-390x844.png"), full_page=True)
    page.close()
