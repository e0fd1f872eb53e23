"""/charts/attendance (issue 14): attendance by day over the term as an SVG drawn on the server, for the
school or a group; a teacher sees their groups only."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from central.programme.models import CareSession

from .test_pages import STARTS, log_in, pages, tap  # noqa: F401  (pages: the fixture)


def bars(html: str) -> list[tuple[str, str, str]]:
    return re.findall(r'<g data-day="([^"]+)" data-expected="(\d+)" data-attended="(\d+)">', html)


def test_attendance_by_day_is_drawn_for_the_school_a_group_and_a_teacher(pages):
    with pages.session() as db:  # the day before: groupA only, nobody came
        db.add(CareSession(school_id=pages.ids["s1"], group_id=pages.ids["groupA"], day=date(2030, 10, 7),
                           starts_at=STARTS - timedelta(days=1), ends_at=STARTS - timedelta(days=1, hours=-1), place="101", created_by="test"))
        db.commit()
    tap(pages, 1, "checkin", datetime(2030, 10, 8, 8, 5, tzinfo=UTC), student="A1", session=str(pages.ids["session_groupA"]))
    log_in(pages.client, "admin1")
    html = pages.client.get("/charts/attendance").text
    assert '<svg id="attendance-chart"' in html and "<script" not in html.split('<svg id="attendance-chart"')[1].split("</svg>")[0]
    assert bars(html) == [("2030-10-07", "1", "0"), ("2030-10-08", "2", "1")]
    assert "实到 1 / 应到 3" in html and "2030-08-13 – 2030-10-08" in html  # no term: the last eight weeks
    html = pages.client.get(f"/charts/attendance?group={pages.ids['groupB']}").text
    assert bars(html) == [("2030-10-08", "1", "0")]
    # The teacher of groupA: their group only; another's group is not there for them.
    log_in(pages.client, "teacherA")
    assert bars(pages.client.get("/charts/attendance").text) == [("2030-10-07", "1", "0"), ("2030-10-08", "1", "1")]
    assert pages.client.get(f"/charts/attendance?group={pages.ids['groupB']}").status_code == 404
    log_in(pages.client, "guard1")
    assert pages.client.get("/charts/attendance").status_code == 403
    log_in(pages.client, "admin2")
    assert pages.client.get("/charts/attendance?school=s1").status_code == 404
