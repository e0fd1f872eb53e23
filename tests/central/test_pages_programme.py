"""Setting a school's programme up on pages, without curl (issue 14): /admin/groups (the care groups, made and
changed) and /admin/calendar (terms, days off, dismissal times, planning sessions, staff on duty). Without a
browser; tests/integration/test_pages_axe.py opens both in Chromium."""

from __future__ import annotations

import html
import json
import re

from sqlmodel import select

from central.core.audit import AuditLog
from central.programme.models import CalendarDay, CareSession, DutyAssignment, InterestGroup, Staff, Term

from .test_pages import csrf_of, log_in, pages  # noqa: F401  (pages: the fixture)

# 2030-10-13 is a Sunday: the week planned below has Monday the 14th and Wednesday the 16th.
GROUP = {"name": "书法社", "category": "arts", "grades": "三年级", "weekdays": ["1", "3"], "start_time": "", "periods": "2",
         "capacity": "20", "place": "美术室", "description": "毛笔字"}


def _form(pages, path: str = "/admin/calendar") -> str:
    r = pages.client.get(path)
    assert r.status_code == 200, r.text
    return csrf_of(r.text)


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _sessions(page: str) -> dict[str, str]:
    """day -> group of the coming sessions shown."""
    return {day: group for day, group in re.findall(r'data-day="([\d-]+)" data-group="([^"]*)"', page)}


def _set_up_term(pages, csrf: str) -> None:
    r = pages.client.post("/admin/calendar/terms", data={"csrf": csrf, "name": "2030 秋季学期", "starts_on": "2030-09-01",
                                                         "ends_on": "2031-01-20"})
    assert r.status_code == 200 and "学期已添加" in r.text, r.text
    for season, at in (("winter", "16:00"), ("summer", "16:30")):
        r = pages.client.post("/admin/calendar/dismissal", data={"csrf": csrf, "grade": "三年级", "season": season, "dismissal": at})
        assert r.status_code == 200 and "放学时间已保存" in r.text, r.text


def _create_group(pages, csrf: str, **fields) -> int:
    r = pages.client.post("/admin/groups", data={"csrf": csrf, **GROUP, "staff_id": str(pages.ids["staffB"]), **fields},
                          follow_redirects=False)
    assert r.status_code == 303, r.text
    return int(re.search(r"group=(\d+)", r.headers["location"]).group(1))


def test_the_admin_creates_a_group_and_changes_only_what_was_edited(pages):
    log_in(pages.client, "admin1")
    csrf = _form(pages, "/admin/groups")
    group_id = _create_group(pages, csrf)
    page = pages.client.get(f"/admin/groups?done=group_created&group={group_id}").text
    card = _text(page[page.index(f'id="group-{group_id}"'):])
    assert "小组已创建" in page
    assert "书法社 艺术" in card or "书法社" in card
    assert "每周一、三 · 放学后 起 2 课时" in card and "已占 0 / 共 20" in card and "负责人 staffB" in card and "美术室" in card
    with pages.session() as db:
        row = db.get(InterestGroup, group_id)
        assert (row.school_id, row.category, row.grades, row.weekdays, row.staff_id) == (pages.ids["s1"], "arts", ["三年级"], [1, 3],
                                                                                          pages.ids["staffB"])
        audit = db.exec(select(AuditLog).where(AuditLog.entity == f"interest_group:{group_id}")).one()
        assert (audit.action, audit.actor) == ("interest_group.create", "user:admin1")
    # The edit form sends every field; only what differs is sent to the service, as a PATCH: the staff in
    # charge, since gone (inactive), is not checked again when the capacity alone changes.
    with pages.session() as db:
        db.get(Staff, pages.ids["staffB"]).active = False
        db.commit()
    edit = {"csrf": csrf, "name": "书法社", "capacity": "25", "place": "美术室", "description": "毛笔字", "staff_id": str(pages.ids["staffB"])}
    r = pages.client.post(f"/admin/groups/{group_id}", data=edit)
    assert r.status_code == 200 and "修改已保存" in r.text, r.text
    assert "已占 0 / 共 25" in _text(r.text)
    r = pages.client.post(f"/admin/groups/{group_id}", data={**edit, "staff_id": ""})  # nobody in charge now
    assert r.status_code == 200 and "修改已保存" in r.text, r.text
    with pages.session() as db:
        row = db.get(InterestGroup, group_id)
        assert (row.capacity, row.staff_id, row.place, row.off_site) == (25, None, "美术室", False)
        updates = db.exec(select(AuditLog).where(AuditLog.entity == f"interest_group:{group_id}", AuditLog.action == "interest_group.update")
                          .order_by(AuditLog.seq)).all()
        assert [u.actor for u in updates] == ["user:admin1", "user:admin1"]
        assert [{k: v for k, v in json.loads(u.after).items() if json.loads(u.before)[k] != v} for u in updates] == [
            {"capacity": 25}, {"staff_id": None}]


def test_a_term_planned_a_day_off_removes_its_session_and_duty_is_shown(pages):
    log_in(pages.client, "admin1")
    csrf = _form(pages)
    _set_up_term(pages, csrf)
    group_id = _create_group(pages, csrf)
    r = pages.client.post("/admin/calendar/plan", data={"csrf": csrf, "group_id": str(group_id), "start": "2030-10-13", "end": "2030-10-19"})
    assert r.status_code == 200 and "已生成 2 个服务场次" in r.text, r.text
    page = pages.client.get("/admin/calendar?from=2030-10-13").text
    assert _sessions(page) == {"2030-10-14": "书法社", "2030-10-16": "书法社"}
    with pages.session() as db:
        made = {s.day.isoformat(): s for s in db.exec(select(CareSession).where(CareSession.group_id == group_id))}
    monday = made["2030-10-14"].id
    block = _text(page[page.index(f'id="session-{monday}"'):page.index(f'id="session-{made["2030-10-16"].id}"')])
    # Winter timetable (from October): dismissal 16:00 Shanghai, two 40-minute periods; the staff in charge is on duty.
    assert "2030-10-14 周一 · 书法社" in block and "16:00–17:20" in block and "值班人员： staffB" in block
    # A day off: that day's session goes (the service removes it; the page says how many).
    r = pages.client.post("/admin/calendar/days", data={"csrf": csrf, "day": "2030-10-16", "kind": "holiday", "note": "运动会"})
    assert r.status_code == 200 and "已标记；删除了当天已安排的 1 个场次" in r.text, r.text
    assert _sessions(pages.client.get("/admin/calendar?from=2030-10-13").text) == {"2030-10-14": "书法社"}
    assert '<li data-day="2030-10-16" data-kind="holiday">' in r.text and "运动会" in r.text
    # Staff on duty: staffA put on, staffB taken off, each audited as the admin's.
    for action, staff in (("on", "staffA"), ("off", "staffB")):
        r = pages.client.post("/admin/calendar/duty", data={"csrf": csrf, "action": action, "session_id": str(monday),
                                                            "staff_id": str(pages.ids[staff]), "from": "2030-10-13", "group": ""})
        assert r.status_code == 200, r.text
    assert "from=2030-10-13" in str(r.url)  # back to the window the form was sent from
    block = r.text[r.text.index(f'id="session-{monday}"'):]
    block = block[:block.index("</ul>")]
    assert re.findall(r'<li data-staff="(\d+)">', block) == [str(pages.ids["staffA"])]
    with pages.session() as db:
        assert [d.staff_id for d in db.exec(select(DutyAssignment).where(DutyAssignment.session_id == monday))] == [pages.ids["staffA"]]
        actions = [(a.action, a.actor) for a in db.exec(select(AuditLog).where(AuditLog.entity.like("duty_assignment:%")).order_by(AuditLog.seq))]
        assert actions[-2:] == [("duty_assignment.create", "user:admin1"), ("duty_assignment.delete", "user:admin1")]
        assert db.exec(select(CalendarDay)).one().created_by == "user:admin1"


def test_only_the_school_admin_changes_the_programme_and_another_school_is_not_found(pages):
    log_in(pages.client, "teacherA")
    assert 'href="/admin/calendar"' not in pages.client.get("/").text
    assert pages.client.get("/admin/groups").status_code == 403
    assert pages.client.get("/admin/calendar").status_code == 403
    csrf = csrf_of(pages.client.get("/teacher").text)
    assert pages.client.post("/admin/groups", data={"csrf": csrf, **GROUP}).status_code == 403
    assert pages.client.post("/admin/calendar/terms", data={"csrf": csrf, "name": "T", "starts_on": "2030-09-01",
                                                            "ends_on": "2031-01-20"}).status_code == 403
    # The district reads (as the API lets it) and changes nothing: no forms, and a post is refused.
    pages.client.cookies.clear()
    log_in(pages.client, "district")
    page = pages.client.get("/admin/calendar?school=s1")
    assert page.status_code == 200 and "groupA" in page.text and 'action="/admin/calendar/plan"' not in page.text
    assert pages.client.get("/admin/groups?school=s1").status_code == 200
    csrf = csrf_of(page.text)
    assert pages.client.post("/admin/calendar/terms", data={"csrf": csrf, "school": "s1", "name": "T", "starts_on": "2030-09-01",
                                                            "ends_on": "2031-01-20"}).status_code == 403
    pages.client.cookies.clear()
    log_in(pages.client, "admin1")
    home = pages.client.get("/").text
    assert 'href="/admin/groups"' in home and 'href="/admin/calendar"' in home
    assert pages.client.get("/admin/groups?school=s2").status_code == 404
    assert pages.client.get("/admin/calendar?school=s2").status_code == 404
    csrf = _form(pages)
    r = pages.client.post("/admin/calendar/terms", data={"csrf": csrf, "school": "s2", "name": "T", "starts_on": "2030-09-01",
                                                         "ends_on": "2031-01-20"})
    assert r.status_code == 404
    # Another school's session, by its id, is not this school's either.
    with pages.session() as db:
        theirs = InterestGroup(school_id=pages.ids["s2"], name="他校小组", category="homework", capacity=30, place="201",
                               grades=["三年级"], weekdays=[1, 2, 3, 4, 5], created_by="test")
        db.add(theirs)
        db.flush()
        other = CareSession(school_id=pages.ids["s2"], group_id=theirs.id, day=pages.now["at"].date(), starts_at=pages.now["at"],
                            ends_at=pages.now["at"], place="201", created_by="test")
        db.add(other)
        db.commit()
        other_id = other.id
    r = pages.client.post("/admin/calendar/duty", data={"csrf": csrf, "action": "on", "session_id": str(other_id),
                                                        "staff_id": str(pages.ids["staffA"])})
    assert r.status_code == 404
    with pages.session() as db:
        assert db.exec(select(Term)).all() == []
        assert db.exec(select(DutyAssignment).where(DutyAssignment.session_id == other_id)).all() == []
        assert db.exec(select(InterestGroup).where(InterestGroup.name == "书法社")).all() == []


def test_a_form_without_its_token_is_refused(pages):
    log_in(pages.client, "admin1")
    _form(pages)
    term = {"name": "T", "starts_on": "2030-09-01", "ends_on": "2031-01-20"}
    assert pages.client.post("/admin/calendar/terms", data=term).status_code == 403
    assert pages.client.post("/admin/calendar/terms", data={"csrf": "forged", **term}).status_code == 403
    assert pages.client.post("/admin/groups", data={"csrf": "forged", **GROUP}).status_code == 403
    r = pages.client.post("/admin/calendar/duty", data={"action": "off", "session_id": str(pages.ids["session_groupA"]),
                                                        "staff_id": str(pages.ids["staffA"])})
    assert r.status_code == 403 and "表单已失效" in r.text
    with pages.session() as db:
        assert db.exec(select(Term)).all() == [] and db.exec(select(InterestGroup).where(InterestGroup.name == "书法社")).all() == []
        assert db.exec(select(DutyAssignment).where(DutyAssignment.session_id == pages.ids["session_groupA"])).all() != []


def test_bad_input_is_named_in_the_pages_language_and_what_was_typed_is_kept(pages):
    log_in(pages.client, "admin1")
    csrf = _form(pages)
    # An end before the start: the service's reason; the dates typed stay in the form.
    r = pages.client.post("/admin/calendar/terms", data={"csrf": csrf, "name": "倒置学期", "starts_on": "2031-01-20", "ends_on": "2030-09-01"})
    assert r.status_code == 422 and "学期结束日期 2030-09-01 早于开始日期 2031-01-20" in r.text
    assert 'value="倒置学期"' in r.text and 'name="starts_on" required value="2031-01-20"' in r.text
    # Not a date at all.
    r = pages.client.post("/admin/calendar/terms", data={"csrf": csrf, "name": "T", "starts_on": "2030-02-30", "ends_on": "2031-01-20"})
    assert r.status_code == 422 and "“开学日期”不是有效日期（如 2030-09-01）：2030-02-30" in html.unescape(r.text)
    # An unknown staff member put on duty.
    session = pages.ids["session_groupA"]
    r = pages.client.post("/admin/calendar/duty", data={"csrf": csrf, "action": "on", "session_id": str(session), "staff_id": "99999"})
    assert r.status_code == 404 and "本校没有编号为 99999 的人员" in r.text
    # A group with a capacity that is not a number and a category off P5.1's list keeps what was typed.
    r = pages.client.post("/admin/groups", data={"csrf": csrf, **GROUP, "capacity": "很多"})
    assert r.status_code == 422 and "“名额”须为允许范围内的整数：很多" in html.unescape(r.text)
    assert 'value="书法社"' in r.text and 'value="很多"' in r.text and "毛笔字</textarea>" in r.text
    # No weekday ticked is refused by the service (not taken as the default Monday to Friday).
    r = pages.client.post("/admin/groups", data={"csrf": csrf, **{k: v for k, v in GROUP.items() if k != "weekdays"}})
    assert r.status_code == 422 and "星期须为 1（周一）到 7（周日），不能为空或重复" in html.unescape(r.text), r.text
    # The same in English.
    pages.client.get("/admin/calendar?lang=en")
    r = pages.client.post("/admin/calendar/terms", data={"csrf": csrf, "name": "T", "starts_on": "2031-01-20", "ends_on": "2030-09-01"})
    assert r.status_code == 422 and "the term ends (2030-09-01) before it starts (2031-01-20)" in r.text
    r = pages.client.post("/admin/calendar/plan", data={"csrf": csrf, "start": "2030-10-20", "end": "2030-10-13"})
    assert r.status_code == 422 and "the date range must be 1 to 366 days (2030-10-20 to 2030-10-13)" in r.text
    with pages.session() as db:
        assert db.exec(select(Term)).all() == [] and db.exec(select(InterestGroup).where(InterestGroup.name == "书法社")).all() == []
