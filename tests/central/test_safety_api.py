"""The safety list's API (central/api/routes/safety.py, issue 14): pages that never skip or repeat,
review steps audited with who and when, another school's items not found, children's reads logged,
and the exports with formula-looking cells escaped."""

from __future__ import annotations

import csv
import io
import json

import pytest
from openpyxl import load_workbook
from sqlmodel import select

from central.accounts.models import ChildRead
from central.core.audit import AuditLog
from central.safety.models import SafetyReview

from .test_safety import NOW, fill, site  # noqa: F401 - the fixture

URL = "/api/v1/schools/s1/safety/items"


def get(world, user: str, url: str = URL, **params):
    answer = world.client.get(url, params=params, headers=world.as_(user))
    assert answer.status_code == 200, answer.text
    return answer


def keys(world, user: str = "admin1", **params) -> list[str]:
    """Every key of the list, page by page."""
    out, cursor = [], None
    for _ in range(100):  # a cursor that does not move on is a failure, not a hang
        body = get(world, user, **params, **({"cursor": cursor} if cursor else {})).json()
        out += [i["key"] for i in body["items"]]
        if body["next"] is None:
            return out
        cursor = body["next"]
    raise AssertionError("the pages never ended")


def test_the_admin_and_the_district_read_the_list_page_by_page(site, world):
    fill(site)
    everything = [i["key"] for i in get(world, "admin1", limit=500).json()["items"]]
    assert len(everything) == 15 and len(set(everything)) == 15
    for limit in (1, 3, 5, 14, 15):
        assert keys(world, limit=limit) == everything
    assert keys(world, "district", limit=4) == everything
    first = get(world, "admin1", kind="pickup_refused", child="A1").json()["items"]
    assert [(i["reason"], i["student"], i["name"], i["state"]) for i in first] == [
        ("barred", "A1", "学生A1", "open"), ("not_linked", "A1", "学生A1", "open")]


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_new_items_between_pages_never_make_a_page_skip_or_repeat_one(site, world):
    """Explicit interleaving: after each page, items arrive before the cursor, at it and after it."""
    fill(site)
    before = [i["key"] for i in get(world, "admin1", limit=500).json()["items"]]
    seen, cursor, minutes = [], None, 0
    while minutes < 30:
        body = get(world, "admin1", limit=3, **({"cursor": cursor} if cursor else {})).json()
        seen += [i["key"] for i in body["items"]]
        if body["next"] is None:
            break
        cursor = body["next"]
        minutes += 1
        assert minutes < 30, "the pages never ended"
        g1 = site.g1
        # a barred refusal (the first section, before any cursor), an unknown card newer and one older than
        # everything, and a late pickup: each lands somewhere in the order while we page
        site.send(g1, g1.event("pickup_denied", -100 + minutes, student="A1", reason="barred"))
        site.send(g1, g1.event("unknown_card", minutes, card=f"NEW{minutes}"))
        site.send(g1, g1.event("unknown_card", -500 - minutes, card=f"OLD{minutes}"))
        site.send(g1, g1.event("alert", -200 - minutes, student=f"Z{minutes}", session="7", reason="late_pickup"))
    assert len(seen) == len(set(seen)), "an item was repeated"
    assert set(before) <= set(seen), "an item was skipped"
    after = [i["key"] for i in get(world, "admin1", limit=500).json()["items"]]
    assert [k for k in after if k in set(seen)] == seen, "the pages are in the list's order"


def test_each_review_step_is_audited_with_who_and_when(site, world):
    fill(site)
    key = get(world, "admin1").json()["items"][0]["key"]
    for path, note, state in (("acknowledge", "已通知班主任", "acknowledged"), ("follow-up", "周三约谈家长", "follow_up"),
                              ("close", "=已处理", "closed")):
        answer = world.client.post(f"{URL}/{key}/{path}", json={"note": note}, headers=world.as_("admin1"))
        assert answer.status_code == 200, answer.text
        assert (answer.json()["state"], answer.json()["review"]["note"], answer.json()["review"]["by"]) == (state, note, "user:admin1")
    again = world.client.post(f"{URL}/{key}/acknowledge", json={"note": "再看"}, headers=world.as_("admin1"))
    assert again.status_code == 409
    detail = get(world, "district", f"{URL}/{key}").json()
    assert [(s["step"], s["by"]) for s in detail["steps"]] == [
        ("acknowledge", "user:admin1"), ("follow_up", "user:admin1"), ("close", "user:admin1")]
    with world.session() as session:
        rows = session.exec(select(AuditLog).where(AuditLog.action == "safety_review.create").order_by(AuditLog.seq)).all()
        steps = session.exec(select(SafetyReview).order_by(SafetyReview.id)).all()
    assert [(r.actor, r.at.replace(tzinfo=None), r.school_id) for r in rows] == [("user:admin1", NOW.replace(tzinfo=None), world.ids["s1"])] * 3
    assert [(json.loads(r.after)["item"], json.loads(r.after)["step"], json.loads(r.after)["note"]) for r in rows] == [
        (key, "acknowledge", "已通知班主任"), (key, "follow_up", "周三约谈家长"), (key, "close", "=已处理")]
    assert [s.id for s in steps] == [json.loads(r.after)["id"] for r in rows]


@pytest.mark.parametrize("step", ["acknowledge", "follow-up", "close"])
def test_only_the_school_admin_acts_and_a_note_is_needed(site, world, step):
    fill(site)
    key = get(world, "admin1").json()["items"][0]["key"]
    for user in ("district", "teacherA", "guard1", "finance1", "parentA"):
        answer = world.client.post(f"{URL}/{key}/{step}", json={"note": "x"}, headers=world.as_(user))
        assert answer.status_code == 403, (user, answer.text)
    for body in ({}, {"note": ""}, {"note": "x" * 1001}):
        assert world.client.post(f"{URL}/{key}/{step}", json=body, headers=world.as_("admin1")).status_code == 422
    with world.session() as session:
        assert session.exec(select(SafetyReview)).all() == []


def test_another_schools_item_is_not_found(site, world):
    fill(site)
    key = get(world, "admin1").json()["items"][0]["key"]
    s2 = "/api/v1/schools/s2/safety/items"
    assert world.client.get(f"{s2}/{key}", headers=world.as_("admin2")).status_code == 404
    assert world.client.get(f"{s2}/{key}", headers=world.as_("district")).status_code == 404
    assert world.client.post(f"{s2}/{key}/close", json={"note": "x"}, headers=world.as_("admin2")).status_code == 404
    assert world.client.get(s2, headers=world.as_("admin2")).json() == {"items": [], "next": None}
    assert world.client.get(f"{URL}/{key}", headers=world.as_("admin2")).status_code == 403  # not their school at all
    assert world.client.get(f"{URL}/event:nosuch", headers=world.as_("admin1")).status_code == 404


def test_every_read_naming_a_child_is_logged(site, world):
    fill(site)
    with world.session() as session:
        before = len(session.exec(select(ChildRead)).all())
    get(world, "admin1", kind="override")  # names B1
    get(world, "district", kind="bad_signature")  # names no child
    key = get(world, "admin1", child="A1").json()["items"][0]["key"]
    get(world, "district", f"{URL}/{key}")
    get(world, "admin1", URL + ".csv", child="A1")
    with world.session() as session:
        reads = session.exec(select(ChildRead).where(ChildRead.what == "safety").order_by(ChildRead.id)).all()
        names = {world.ids["A1"]: "A1", world.ids["B1"]: "B1"}
        assert len(session.exec(select(ChildRead)).all()) == before + len(reads)
    assert [(r.actor, names[r.student_id]) for r in reads] == [
        ("user:admin1", "B1"), ("user:admin1", "A1"), ("user:district", "A1"), ("user:admin1", "A1")]


def hostile(site) -> None:
    """Text a gate stored that a spreadsheet would run as a formula."""
    g1 = site.g1
    site.send(g1, g1.event("override", -2, student="B1", reason="=HYPERLINK(\"http://x\",\"看\")", note="+1", operator="@guard"))
    site.send(g1, g1.event("unknown_card", -1, card="-2+3"))


def test_the_csv_escapes_formula_cells_and_speaks_the_readers_language(site, world):
    hostile(site)
    raw = get(world, "admin1", URL + ".csv").content
    assert raw.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert table[0][:4] == ["编号", "类别", "原因", "时间"]
    override, card = table[1], table[2]
    assert (override[1], override[2], override[3], override[8], override[10]) == (
        "门卫强制放行", "'=HYPERLINK(\"http://x\",\"看\")", "2030-09-02 16:58:00", "'@guard", "'+1")
    assert (card[1], card[9], card[13]) == ("未知卡", "'-2+3", "待处理")
    english = list(csv.reader(io.StringIO(get(world, "admin1", URL + ".csv", lang="en").content.decode("utf-8-sig"))))
    assert english[0][:2] == ["Key", "Kind"] and english[1][1] == "Guard override"


def test_the_xlsx_escapes_formula_cells_and_holds_no_formula(site, world):
    hostile(site)
    answer = get(world, "admin1", URL + ".xlsx", kind="override")
    assert answer.headers["content-disposition"] == 'attachment; filename="safety-s1.xlsx"'
    sheet = load_workbook(io.BytesIO(answer.content)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert len(values) == 2 and values[1][2] == "'=HYPERLINK(\"http://x\",\"看\")" and values[1][10] == "'+1"
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)


def test_filters_are_checked(world):
    for params in ({"kind": "nosuch"}, {"gate": "a b"}, {"day": "2030-13-01"}, {"day": "1999-12-31"}, {"cursor": "junk"},
                   {"limit": 0}, {"limit": 501}):
        assert world.client.get(URL, params=params, headers=world.as_("admin1")).status_code == 422, params
    assert world.client.get(f"{URL}/nokey", headers=world.as_("admin1")).status_code == 422
