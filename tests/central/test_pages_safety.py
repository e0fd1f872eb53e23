"""/admin/safety without a browser (issue 14): the safety list with filters and paging, review steps
with a note (CSRF, audited), the exports; the school admin acts, the district reads."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlmodel import select

from central.core.audit import AuditLog
from central.kiosks.models import SafetyIncident
from central.safety.models import SafetyReview
from central.web import safety_list

from .test_pages import STARTS, csrf_of, log_in, pages, tap  # noqa: F401  (pages: the fixture)


def listed(html: str) -> list[tuple[str, str, str]]:
    return re.findall(r'data-item="([^"]+)" data-kind="([^"]+)" data-state="([^"]+)"', html)


def seed(world) -> dict[str, str]:
    tap(world, 1, "pickup_denied", STARTS + timedelta(minutes=70), student="A1", reason="barred", guardian=f"g{world.ids['gBarred']}")
    keys = {"barred": "event:00000000-0000-7000-8000-000000000001"}
    with world.session() as session:
        for name, minutes, detail in (("sig1", 10, "=HYPERLINK(\"http://x\")"), ("sig2", 20, "bad")):
            row = SafetyIncident(school_id=world.ids["s1"], kiosk="gate-1", kind="bad_signature", detail=detail,
                                 created_at=STARTS + timedelta(minutes=minutes))
            session.add(row)
            session.flush()
            keys[name] = f"incident:{row.id}"
        session.commit()
    return keys


def test_the_list_filters_and_pages_without_skipping_or_repeating(pages, monkeypatch):
    keys = seed(pages)
    log_in(pages.client, "admin1")
    html = pages.client.get("/admin/safety").text
    # Refused pickups first (barred), then bad signatures, newest first.
    assert listed(html) == [(keys["barred"], "pickup_refused", "open"), (keys["sig2"], "bad_signature", "open"),
                            (keys["sig1"], "bad_signature", "open")]
    assert [k for k, *_ in listed(pages.client.get("/admin/safety?kind=bad_signature&day=2030-10-08&gate=").text)] == [keys["sig2"], keys["sig1"]]
    assert [k for k, *_ in listed(pages.client.get("/admin/safety?child=A1&kind=").text)] == [keys["barred"]]
    assert listed(pages.client.get("/admin/safety?day=2030-10-09").text) == []
    assert pages.client.get("/admin/safety?kind=nonsense").status_code == 422
    monkeypatch.setattr(safety_list, "PAGE_SIZE", 2)
    first = pages.client.get("/admin/safety").text
    next_url = re.search(r'<a href="([^"]+)" rel="next">', first).group(1).replace("&amp;", "&")
    second = pages.client.get(next_url).text
    assert [k for k, *_ in listed(first)] + [k for k, *_ in listed(second)] == [keys["barred"], keys["sig2"], keys["sig1"]]
    assert 'rel="next"' not in second


def test_review_steps_with_a_note_are_audited(pages):
    keys = seed(pages)
    log_in(pages.client, "admin1")
    html = pages.client.get("/admin/safety").text
    csrf = csrf_of(html)
    assert pages.client.post("/admin/safety/review", data={"item": keys["barred"], "step": "acknowledge", "note": "x"},
                             follow_redirects=False).status_code == 403  # no CSRF token
    r = pages.client.post("/admin/safety/review", data={"item": keys["barred"], "step": "acknowledge", "note": "已电话联系家长",
                                                       "csrf": csrf, "back": "/admin/safety?kind=pickup_refused"}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/admin/safety?kind=pickup_refused")
    html = pages.client.get("/admin/safety").text
    assert (keys["barred"], "pickup_refused", "acknowledged") in listed(html) and "已电话联系家长 — user:admin1" in html
    assert pages.client.post("/admin/safety/review", data={"item": keys["sig1"], "step": "close", "note": " ", "csrf": csrf}).status_code == 422
    r = pages.client.post("/admin/safety/review", data={"item": keys["sig1"], "step": "close", "note": "误报", "csrf": csrf,
                                                       "back": "https://evil.example/"}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/admin/safety")
    r = pages.client.post("/admin/safety/review", data={"item": keys["sig1"], "step": "acknowledge", "note": "again", "csrf": csrf})
    assert r.status_code == 409 and 'class="error"' in r.text
    with pages.session() as session:
        steps = session.exec(select(SafetyReview).order_by(SafetyReview.id)).all()
        audited = session.exec(select(AuditLog).where(AuditLog.entity.like("safety_review:%"))).all()
    assert [(s.item, s.step, s.state, s.note, s.by) for s in steps] == [
        (keys["barred"], "acknowledge", "acknowledged", "已电话联系家长", "user:admin1"),
        (keys["sig1"], "close", "closed", "误报", "user:admin1"),
    ]
    assert len(audited) == 2 and {a.actor for a in audited} == {"user:admin1"}


def test_the_exports_escape_formulas(pages):
    keys = seed(pages)
    log_in(pages.client, "admin1")
    r = pages.client.get("/admin/safety.csv?kind=bad_signature")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    text = r.content.decode("utf-8-sig")
    assert keys["sig1"] in text and "'=HYPERLINK" in text and keys["barred"] not in text
    x = pages.client.get("/admin/safety.xlsx")
    assert x.status_code == 200 and x.content[:2] == b"PK"


def test_who_reads_and_who_acts(pages):
    keys = seed(pages)
    log_in(pages.client, "district")
    html = pages.client.get("/admin/safety?school=s1").text
    assert len(listed(html)) == 3 and 'action="/admin/safety/review"' not in html
    r = pages.client.post("/admin/safety/review", data={"item": keys["sig1"], "step": "close", "note": "x", "school": "s1",
                                                       "csrf": csrf_of(html)})
    assert r.status_code == 403
    for user, path, status in (("teacherA", "/admin/safety", 403), ("guard1", "/admin/safety", 403), ("admin2", "/admin/safety?school=s1", 404),
                               ("admin2", "/admin/safety.csv?school=s1", 404)):
        pages.client.cookies.clear()
        log_in(pages.client, user)
        assert pages.client.get(path).status_code == status, (user, path)
    with pages.session() as session:
        assert session.exec(select(SafetyReview)).all() == []
