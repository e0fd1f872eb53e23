"""Who sees which child, who signs for whom, and what the district may not do.

Which role may use which route, at its own school and at another, is the hand-written table of
``test_role_matrix.py``.
"""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from sqlmodel import select

from central.accounts.models import ChildRead
from central.api.deps import authorize
from central.core.i18n import t


def _effective(app):
    # FastAPI >= 0.13x keeps included routers as branches resolved per request; older ones copy routes.
    for route in app.routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "effective_route_contexts"):
            yield from (ctx for ctx in route.effective_route_contexts() if ctx.dependant is not None)


def _api_routes(app) -> list[tuple[str, APIRoute]]:
    """Every (method, route) behind the login: the ones ``authorize`` guards."""
    out = []
    for route in _effective(app):
        if any(d.call is authorize for d in route.dependant.dependencies):
            out.extend((method, route) for method in sorted(route.methods))
    # Logging out ends the caller's token: last, so every other route is tried with a live one.
    return sorted(out, key=lambda mr: mr[1].path.endswith("/auth/logout"))


def _url(path: str, school: str) -> str:
    # Real rows where a route names one; for the rest any value will do: a role is checked first.
    values = {"school": school, "student_no": "A1", "student": "A1"}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "999999"), path)


def _call(world, method: str, url: str, user: str | None):
    headers = world.as_(user) if user else {}
    body = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
    return world.client.request(method, url, headers=headers, **body)


def test_no_token_no_entry_and_no_other_school(world):
    for method, route in _api_routes(world.client.app):
        assert _call(world, method, _url(route.path, "s1"), None).status_code == 401, route.path
        if "{school}" in route.path:
            # A school admin of s2 is refused at s1 whatever the route.
            r = _call(world, method, _url(route.path, "s1"), "admin2")
            assert r.status_code == 403, f"{method} {route.path}: {r.status_code}"


def test_service_token_acts_as_district(world):
    r = world.client.get("/api/v1/me", headers=world.as_("service"))
    assert r.json()["role"] == "district"
    assert world.client.get("/api/v1/schools/s2/students", headers=world.as_("service")).status_code == 200


def _students(world, user: str) -> set[str]:
    r = world.client.get("/api/v1/schools/s1/students", headers=world.as_(user))
    assert r.status_code == 200, r.text
    return {s["student_no"] for s in r.json()}


WHO_SEES = {
    "admin1": {"A1", "B1", "C1"},
    "guard1": {"A1", "B1", "C1"},
    "finance1": {"A1", "B1", "C1"},
    "district": {"A1", "B1", "C1"},
    "teacherA": {"A1"},  # the child of their group
    "teacherB": {"B1"},
    "parentA": {"A1"},  # their own child
    "parentB": {"B1"},
    "parentBarred": set(),  # a custody bar hides the child from the barred person
}


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_who_sees_which_child(world):
    for user, sees in WHO_SEES.items():
        assert _students(world, user) == sees, user
        for no in ("A1", "B1", "C1"):
            r = world.client.get(f"/api/v1/schools/s1/students/{no}", headers=world.as_(user))
            assert r.status_code == (200 if no in sees else 404), (user, no, r.text)


def test_teacher_cannot_see_another_groups_child_or_its_photo(world):
    for path in ("/api/v1/schools/s1/students/B1", "/api/v1/schools/s1/students/B1/photo"):
        assert world.client.get(path, headers=world.as_("teacherA")).status_code == 404


def test_guardian_sees_own_child_and_only_own_link(world):
    r = world.client.get("/api/v1/schools/s1/students/A1", headers=world.as_("parentA"))
    assert [g["name"] for g in r.json()["guardians"]] == ["王父"]
    staff = world.client.get("/api/v1/schools/s1/students/A1", headers=world.as_("admin1")).json()
    assert {g["name"] for g in staff["guardians"]} == {"王父", "赵某"}
    assert {g["phone_masked"] for g in staff["guardians"]} == {"138****5678", "137****1111"}


def test_every_staff_read_of_a_child_is_logged(world):
    world.client.get("/api/v1/schools/s1/students/A1", headers=world.as_("teacherA"))
    world.client.get("/api/v1/schools/s1/students", headers=world.as_("guard1"))
    world.client.get("/api/v1/schools/s1/students/A1", headers=world.as_("parentA"))  # a guardian is not staff
    with world.session() as session:
        reads = {(r.actor, r.student_id, r.what) for r in session.exec(select(ChildRead))}
    assert reads == {
        ("user:teacherA", world.ids["A1"], "student"),
        *{("user:guard1", world.ids[no], "student_list") for no in ("A1", "B1", "C1")},
    }
    listed = world.client.get("/api/v1/schools/s1/child-reads", params={"student": "A1"}, headers=world.as_("admin1")).json()
    assert {(r["actor"], r["what"]) for r in listed} == {("user:teacherA", "student"), ("user:guard1", "student_list")}


def _approved_enrollment(world) -> int:
    """A1 (parentA's child) applied for group B and approved, with a notice to sign."""
    admin = world.as_("admin1")
    base = "/api/v1/schools/s1"
    assert world.client.post(f"{base}/notice", json={"text": "告知书"}, headers=admin).status_code == 201
    row = world.client.post(f"{base}/enrollments", headers=admin, json={
        "student": "A1", "guardian_id": world.ids["gA"], "application": "书面申请", "group_id": world.ids["groupB"]})
    assert row.status_code == 201, row.text
    enrollment = row.json()["id"]
    for step in ("review", "approve"):
        assert world.client.post(f"{base}/enrollments/{enrollment}/{step}", json={}, headers=admin).status_code == 200
    return enrollment


def test_only_the_school_admin_signs_for_the_school_and_the_family_signs_itself(world):
    url = f"/api/v1/schools/s1/enrollments/{_approved_enrollment(world)}/signatures"

    def sign(user: str, party: str, **extra):
        body = {"party": party, "signer": "某人", "notice_version": 1, **extra}
        return world.client.post(url, json=body, headers=world.as_(user))

    for user in ("teacherB", "district", "guard1"):  # teacherB is in charge of group B
        for party in ("school", "guardian", "student"):
            r = sign(user, party, guardian_id=world.ids["gA"], paper=True)
            assert r.status_code == 403, (user, party, r.text)
    assert sign("parentA", "school").status_code == 403
    assert sign("parentB", "guardian").status_code == 404  # not their child: not even seen
    assert sign("admin1", "guardian", guardian_id=world.ids["gA"]).status_code == 422  # not from a paper form
    assert sign("parentA", "guardian", guardian_id=world.ids["gB"]).status_code == 403  # in someone else's name
    assert sign("admin1", "school").status_code == 200
    assert sign("parentA", "guardian").status_code == 200
    done = sign("parentA", "student")
    assert done.status_code == 200 and done.json()["state"] == "active"
    assert {(s["party"], s["paper"], s["recorded_by"]) for s in done.json()["signatures"]} == {
        ("school", False, "user:admin1"), ("guardian", False, "user:parentA"), ("student", False, "user:parentA")}


def test_a_paper_form_recorded_by_the_admin_is_marked_so(world):
    url = f"/api/v1/schools/s1/enrollments/{_approved_enrollment(world)}/signatures"
    admin = world.as_("admin1")
    for party in ("school", "guardian", "student"):
        body = {"party": party, "signer": "某人", "notice_version": 1}
        if party != "school":
            body |= {"paper": True, "guardian_id": world.ids["gA"]}
        r = world.client.post(url, json=body, headers=admin)
        assert r.status_code == 200, r.text
    assert [(s["party"], s["paper"]) for s in r.json()["signatures"]] == [
        ("school", False), ("guardian", True), ("student", True)]
    assert r.json()["state"] == "active"


def test_the_district_reads_a_school_but_does_not_set_it_up(world):
    district, refusal = world.as_("district"), {"detail": t("role_refused", "zh_CN", role="district")}
    assert world.client.get("/api/v1/schools/s1/groups", headers=district).status_code == 200
    group = {"name": "篮球", "category": "sports", "capacity": 20, "place": "操场", "grades": ["三年级"]}
    r = world.client.post("/api/v1/schools/s1/groups", json=group, headers=district)
    assert r.status_code == 403 and r.json() == refusal
    r = world.client.post("/api/v1/schools/s1/groups", json=group, headers=world.as_("service"))  # a machine, as district
    assert r.status_code == 403
    assert world.client.post("/api/v1/schools/s1/groups", json=group, headers=world.as_("admin1")).status_code == 201
