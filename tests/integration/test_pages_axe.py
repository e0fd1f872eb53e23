"""Accessibility (issue 14): axe-core (the npm package's axe.min.js, shipped in tests/assets with its
licence header) injected on every page in Chromium finds no serious or critical violation, in zh_CN
at phone and desk widths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sgtest import wait_for
from sqlmodel import Session, col, select

from central.admin import create_user
from central.core.db import make_engine
from central.kiosks.models import Event
from central.schools.models import Guardian, School

from .test_pages_browser import PASSWORD, artifacts, browser, log_in, school  # noqa: F401  (fixtures)

AXE = Path(__file__).resolve().parent.parent / "assets" / "axe.min.js"
#: (who, path): every page, as the role that opens it
PAGES = [
    (None, "/login"),
    ("teacher", "/teacher"),
    ("principal", "/rollcall"),
    ("principal", "/admin/kiosks"),
    ("principal", "/admin/safety"),
    ("principal", "/admin/import"),
    ("principal", "/admin/enrollments"),
    ("principal", "/admin/staff"),
    ("principal", "/admin/vendors"),
    ("principal", "/admin/accounts"),
    ("principal", "/charts/attendance"),
    ("principal", "/admin/groups"),
    ("principal", "/admin/calendar"),
    ("principal", "/"),
    ("parent", "/guardian"),
    ("district", "/district"),
    ("finance", "/finance"),
    ("teacher", "/logout"),  # the logout page's confirmation
    ("principal", "/admin/safety?school=elsewhere"),  # the error page (another school's: 404)
]


@pytest.fixture(scope="module")
def accounts(school):
    engine = make_engine(school.settings.sqlalchemy_url)
    with Session(engine) as db:
        row = db.exec(select(School).where(School.code == school.code)).one()
        guardian = db.exec(select(Guardian).where(Guardian.school_id == row.id).order_by(col(Guardian.id))).first()
    create_user(school.settings, username="parent", password=PASSWORD, role="guardian", school=school.code, guardian_id=guardian.id)
    create_user(school.settings, username="district", password=PASSWORD, role="district")
    create_user(school.settings, username="finance", password=PASSWORD, role="finance", school=school.code)
    assert school.tap("04BADBADBAD002").outcome == "unknown_card"  # /admin/safety with an item and its review form

    def stored() -> bool:
        with Session(engine) as db:
            return db.exec(select(Event).where(Event.kind == "unknown_card")).first() is not None

    wait_for(stored, timeout=10, what="the unknown card stored at central")
    engine.dispose()
    return school


def violations(page) -> list[str]:
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.map(n => n.target.join(' ')).join(', ')}`);
    }""")
    return found


def test_axe_core_is_shipped_with_its_licence():
    head = AXE.read_text(encoding="utf-8")[:400]
    assert head.startswith("/*! axe v4.") and "Mozilla Public" in head


@pytest.mark.parametrize("width,height", [(390, 844), (1280, 800)])
def test_no_page_has_a_serious_or_critical_violation(browser, accounts, artifacts, width, height):
    """Each page in zh_CN at phone and desk width; a screenshot of each is kept (SCHOOLGATE_ARTIFACTS)."""
    url = accounts.central.url
    found = {}
    opened = {}  # each user logged in once, in a browser context of their own, then led page to page
    for user, path in PAGES:
        page = opened.get(user)
        if page is None:
            page = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN").new_page()
            if user is None:
                page.goto(f"{url}{path}")
            else:
                log_in(page, url, user=user, lands=path)
                opened[user] = page
        else:
            page.goto(f"{url}{path}")
            assert page.url == f"{url}{path}", f"{user} was sent to {page.url}, not {path}"  # still logged in
        found[path] = violations(page)
        name = re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-") or "home"
        page.screenshot(path=str(artifacts / f"every-page-{name}-{width}x{height}.png"), full_page=True)
        if user is None:
            page.context.close()
    for page in opened.values():
        page.context.close()
    assert found == {path: [] for _, path in PAGES}
