"""/district without a browser (issue 14): every school with today's counts, open safety items, ratio
warnings, fees above the cap, vendors waiting for the district's step; for the district only."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from central.billing.models import FeePlan
from central.kiosks.models import ChildAlert, SafetyIncident
from central.programme import staff as staff_service
from central.programme.models import AbsenceExcuse, Term, VendorCreate
from central.safety import items as safety
from central.schools.models import Kiosk, School

from .conftest import KIOSK_SECRET, PASSWORD
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


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_open_items_are_every_days_items_not_closed_at_each_school(pages):
    """Each school's open safety items, counted by hand: every day's, acknowledged and followed-up ones
    still open, closed ones and what is no item left out, an absence open unless the school's date of
    it is excused, no school's items counted at another."""
    now = pages.now["at"]  # 2030-10-08 07:50Z, 15:50 in Shanghai
    ids = pages.ids
    for seq, kind, at, fields in (
        (11, "pickup_denied", now - timedelta(minutes=10), {"student": "A1", "reason": "barred"}),  # open
        (12, "pickup_denied", now - timedelta(days=5), {"student": "A1", "reason": "not_linked"}),  # acknowledged: open
        (13, "pickup_denied", now - timedelta(days=30), {"student": "B1"}),  # no reason; followed up: open
        (14, "override", now - timedelta(days=2), {"student": "B1", "reason": "家长电话确认", "operator": "S-07"}),  # closed
        (15, "unknown_card", now - timedelta(days=1), {"card": "DEADBEEF"}),  # acknowledged, then closed
        (16, "checkin", now - timedelta(hours=1), {"student": "A1"}),  # no item
        (17, "alert", now - timedelta(days=3), {"reason": "offline"}),  # open
    ):
        tap(pages, seq, kind, at, **fields)
    with pages.session() as session:
        s1, s2 = session.get(School, ids["s1"]), session.get(School, ids["s2"])
        s3 = School(code="s3", name="第三小学")
        session.add(s3)
        session.flush()
        incidents = {}
        for school, name, kind, days in ((s1, "signature", "bad_signature", 10), (s1, "malformed", "malformed_payload", 0),
                                         (s2, "silent", "gate_silent", 40), (s2, "range", "time_out_of_range", 4),
                                         (s2, "lost", "events_lost", 1), (s3, "skew", "clock_skew", 9)):
            incidents[name] = SafetyIncident(school_id=school.id, kiosk="gate-1", kind=kind, detail=name,
                                             created_at=now - timedelta(days=days))
            session.add(incidents[name])
        shanghai_7th = datetime(2030, 10, 7, 8, 30, tzinfo=UTC)  # 16:30 on the 7th in Shanghai
        for school, kind, student, at in (
            (s1, "late_pickup", "B1", now - timedelta(days=1)),  # open
            (s1, "absent", "A1", shanghai_7th),  # no excuse: open
            (s1, "absent", "B1", shanghai_7th),  # excused on the 7th: no item
            (s1, "absent", "C1", datetime(2030, 10, 6, 16, 30, tzinfo=UTC)),  # 00:30 on the 7th there; excused the 6th: open
            (s1, "absent", "A1", datetime(2030, 10, 5, 16, 30, tzinfo=UTC)),  # 00:30 on the 6th there; excused the 5th: open
            (s1, "absent", "C1", datetime(2030, 10, 4, 17, 0, tzinfo=UTC)),  # 01:00 on the 5th there, excused: no item
            (s3, "late_pickup", "Z1", now - timedelta(days=7)),  # open
            (s3, "absent", "Z9", now - timedelta(days=8)),  # a child no roster knows: never excused, open
        ):
            session.add(ChildAlert(school_id=school.id, kind=kind, student=student, session=f"{kind}-{student}-{at:%d%H}",
                                   at=at, kiosk="gate-1", event_id="00000000-0000-7000-8000-000000000000"))
        for student, day in (("B1", date(2030, 10, 7)), ("C1", date(2030, 10, 6)), ("C1", date(2030, 10, 5)),
                             ("A1", date(2030, 10, 5))):
            session.add(AbsenceExcuse(school_id=s1.id, student_id=ids[student], day=day, note="病假"))
        gone_at = datetime(2030, 10, 8, 6, 0, tzinfo=UTC)
        gate1 = session.get(Kiosk, ids["gate-1"])
        gate1.online, gate1.last_seen = False, gone_at  # offline now: open
        session.add(Kiosk(school_id=s1.id, code="gate-2", secret=KIOSK_SECRET, online=False, last_seen=gone_at))  # closed below
        session.commit()
        steps = [
            (s1, "event:00000000-0000-7000-8000-000000000012", "acknowledge"),
            (s1, "event:00000000-0000-7000-8000-000000000013", "follow_up"),
            (s1, "event:00000000-0000-7000-8000-000000000014", "close"),
            (s1, "event:00000000-0000-7000-8000-000000000015", "acknowledge"),
            (s1, "event:00000000-0000-7000-8000-000000000015", "close"),
            (s1, f"gate:gate-2:{int(gone_at.timestamp()) * 1000}", "close"),
            (s2, f"incident:{incidents['range'].id}", "acknowledge"),
            (s2, f"incident:{incidents['lost'].id}", "close"),
        ]
        for school, key, step in steps:
            safety.review(session, school=school, key=key, step=step, note="查明", actor="admin1")
    log_in(pages.client, "district")
    html = pages.client.get("/district").text
    assert {school: cells(html, school)["open_items"] for school in ("s1", "s2", "s3")} == {"s1": "10", "s2": "2", "s3": "3"}
