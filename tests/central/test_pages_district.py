"""/district without a browser (issue 14): every school with today's counts, open safety items, ratio
warnings, fees above the cap, vendors waiting for the district's step; for the district only."""

from __future__ import annotations

import re
from datetime import date, timedelta

from central.billing.models import FeePlan
from central.kiosks.models import SafetyIncident
from central.programme import staff as staff_service
from central.programme.models import Term, VendorCreate
from central.safety import items as safety
from central.schools.models import School

from .conftest import PASSWORD
from .test_pages import ENDS, STARTS, csrf_of, log_in, pages, tap  # noqa: F401  (pages: the fixture)


def cells(html: str, school: str) -> dict[str, str]:
    row = re.search(rf'<tr data-school="{school}">(.*?)</tr>', html, re.S).group(1)
    return {k: re.sub(r"\s+", " ", v).strip() for k, v in re.findall(r'data-field="(\w+)"[^>]*>(.*?)</td>', row, re.S)}


def test_the_district_sees_every_school_today(pages):
    pages.now["at"] = STARTS + timedelta(minutes=20)  # 16:20: the sessions started 20 minutes ago
    tap(pages, 1, "checkin", STARTS, student="A1")  # B1 is not in: absent
    with pages.session() as session:
        s1 = session.get(School, pages.ids["s1"])
        session.add(SafetyIncident(school_id=s1.id, kiosk="gate-1", kind="bad_signature", detail="x", created_at=pages.now["at"]))
        session.add(SafetyIncident(school_id=s1.id, kiosk="gate-1", kind="bad_signature", detail="old",
                                   created_at=pages.now["at"] - timedelta(days=2)))  # two days old, never reviewed: still open
        closed = SafetyIncident(school_id=s1.id, kiosk="gate-1", kind="bad_signature", detail="closed",
                                created_at=pages.now["at"] - timedelta(days=3))
        session.add(closed)
        term = Term(school_id=s1.id, name="秋季", starts_on=date(2030, 9, 1), ends_on=date(2031, 1, 20), created_by="test")
        session.add(term)
        session.flush()
        session.add(FeePlan(school_id=s1.id, term_id=term.id, kind="per_day", amount_fen=500, set_by="test"))  # 23 × 5 > 100 yuan
        session.commit()
        waiting = staff_service.create_vendor(session, school=s1, data=VendorCreate(name="乐高机构"), actor="admin1")
        done = staff_service.create_vendor(session, school=s1, data=VendorCreate(name="书法社"), actor="admin1")
        for step in ("review_panel", "party_org"):
            staff_service.decide_step(session, school=s1, vendor_id=waiting.id, step=step, approved=True, actor="admin1", role="school_admin")
        staff_service.decide_step(session, school=s1, vendor_id=done.id, step="review_panel", approved=True, actor="admin1", role="school_admin")
        session.flush()
        safety.review(session, school=s1, key=f"incident:{closed.id}", step="close", note="查明", actor="admin1")
    # Yesterday at 17:05 a barred guardian was refused at the gate, and nobody has reviewed it yet.
    tap(pages, 2, "pickup_denied", ENDS - timedelta(days=1, minutes=-5), student="A1", guardian=f"g{pages.ids['gBarred']}",
        reason="barred")
    log_in(pages.client, "district")
    html = pages.client.get("/district").text
    assert cells(html, "s1") == {
        # B1 absent; open: today's incident, the one of two days ago, yesterday's refused pickup (not the
        # closed one); groupA: A1 on site, its staff not in
        "expected": "2", "on_site": "1", "gone": "0", "absent": "1", "open_items": "3",
        "ratio": "groupA 16:00", "fees": "收费方案 每天 5.00 元（按月最多天数计超限）", "vendors": "乐高机构",
    }
    assert cells(html, "s2") == {"expected": "0", "on_site": "0", "gone": "0", "absent": "0", "open_items": "0", "ratio": "—",
                                 "fees": "—", "vendors": "—"}
    assert "收费上限：每生每月 100.00 元" in html
    # Each school's pages the district may read, for that school; each opens for the district.
    for school in ("s1", "s2"):
        for path in ("/teacher", "/rollcall", "/admin/kiosks", "/admin/safety", "/admin/vendors", "/admin/staff",
                     "/admin/accounts", "/admin/groups", "/admin/calendar", "/charts/attendance"):
            assert f'href="{path}?school={school}"' in html, (path, school)
    for path in ("/admin/groups", "/admin/calendar", "/charts/attendance"):
        assert pages.client.get(f"{path}?school=s1").status_code == 200, path


def test_the_district_page_is_the_districts(pages):
    for user in ("admin1", "teacherA", "parentA"):
        pages.client.cookies.clear()
        log_in(pages.client, user)
        assert pages.client.get("/district").status_code == 403, user
    pages.client.cookies.clear()
    page = pages.client.get("/login")
    r = pages.client.post("/login", data={"username": "district", "password": PASSWORD, "csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.headers["location"] == "/district"


def test_the_district_home_links_only_pages_that_open_without_a_school(pages):
    """A district account has no school of its own: its home page links /district, which links each
    school's pages with ?school=, and not the school pages that would answer 404 without one."""
    log_in(pages.client, "district")
    html = pages.client.get("/").text
    assert 'href="/district"' in html
    for path in ("/teacher", "/charts/attendance", "/rollcall", "/admin/kiosks"):
        assert f'href="{path}"' not in html, path
    assert pages.client.get("/district").status_code == 200
