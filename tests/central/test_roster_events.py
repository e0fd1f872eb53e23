"""Each change kiosks must see makes exactly one new roster version through the API, with no route
calling the publisher: the services record ``RosterChanged`` and the app's subscriber publishes it
after the commit (central/core/events.py, central/api/roster_sync.py)."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from central.core import clock
from central.kiosks import roster
from central.schools.models import GuardianLink
from gateway.mqtt import MqttError

API = "/api/v1/schools/s1"
THU = date(2030, 9, 5)  # "today" at the school: the roster holds Thursday to Saturday (roster_days_ahead 2)
FRI, SAT = date(2030, 9, 6), date(2030, 9, 7)


@pytest.fixture
def w(world, monkeypatch):
    """s1 with a term, dismissal times and two weeks of sessions planned, on a fixed school date."""
    monkeypatch.setattr(clock, "local_today", lambda school: THU)  # central's one clock (central/core/clock.py)
    admin = world.as_("admin1")
    ok = [
        world.client.post(f"{API}/terms", json={"name": "2030 秋", "starts_on": "2030-09-01", "ends_on": "2031-01-15"}, headers=admin),
        world.client.put(f"{API}/dismissal-times", json={"grade": "三年级", "season": "summer", "dismissal": "16:00:00"}, headers=admin),
        world.client.put(f"{API}/dismissal-times", json={"grade": "三年级", "season": "winter", "dismissal": "16:00:00"}, headers=admin),
        world.client.post(f"{API}/sessions/plan", json={"start": "2030-09-02", "end": "2030-09-13"}, headers=admin),
        world.client.post(f"{API}/notice", json={"text": "管理办法、内容与接送时间"}, headers=admin),
    ]
    assert [r.status_code for r in ok] == [201, 200, 200, 201, 201], [r.text for r in ok]
    return world


def version(w) -> int:
    r = w.client.get(f"{API}/roster", headers=w.as_("admin1"))
    assert r.status_code == 200, r.text
    return r.json()["version"]


def ok(r, status: int = 200):
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def _session_on(w, day: date, group: str = "groupA") -> int:
    rows = ok(w.client.get(f"{API}/sessions", params={"start": day.isoformat(), "end": day.isoformat()}, headers=w.as_("admin1")))
    return next(r["id"] for r in rows if r["group_id"] == w.ids[group])


def test_planning_sessions_in_the_roster_window_publishes_a_version(w):
    # The fixture's plan already published the sessions of Thursday to Saturday.
    assert ok(w.client.get(f"{API}/roster", headers=w.as_("admin1")))["sessions"] == 4  # Thu and Fri, two groups
    before = version(w)
    ok(w.client.put(f"{API}/calendar/{SAT}", json={"day": SAT.isoformat(), "kind": "makeup", "follows_weekday": 1}, headers=w.as_("admin1")))
    assert version(w) == before  # a make-up day changes nothing kiosks hold until it is planned
    ok(w.client.post(f"{API}/sessions/plan", json={"start": SAT.isoformat(), "end": SAT.isoformat()}, headers=w.as_("admin1")), 201)
    assert version(w) == before + 1
    ok(w.client.post(f"{API}/sessions/plan", json={"start": SAT.isoformat(), "end": SAT.isoformat()}, headers=w.as_("admin1")), 201)
    assert version(w) == before + 1  # nothing new planned: no new version
    # Forgetting the make-up day removes its sessions: one version for both groups' sessions.
    ok(w.client.delete(f"{API}/calendar/{SAT}", headers=w.as_("admin1")), 204)
    assert version(w) == before + 2
    assert ok(w.client.get(f"{API}/roster", headers=w.as_("admin1")))["sessions"] == 4


def test_a_holiday_that_removes_sessions_publishes_one_version(w):
    before = version(w)
    ok(w.client.put(f"{API}/calendar/{FRI}", json={"day": FRI.isoformat(), "kind": "holiday", "note": "校庆"}, headers=w.as_("admin1")))
    assert version(w) == before + 1
    assert ok(w.client.get(f"{API}/roster", headers=w.as_("admin1")))["sessions"] == 2  # Thursday's only


def test_duty_assigned_and_unassigned_each_publish_a_version(w):
    coach = ok(w.client.post(f"{API}/staff", json={"name": "新教练", "kind": "teacher"}, headers=w.as_("admin1")), 201)
    before = version(w)
    session_id = _session_on(w, FRI, "groupB")
    ok(w.client.post(f"{API}/sessions/{session_id}/duty", json={"staff_id": coach["id"]}, headers=w.as_("admin1")), 201)
    assert version(w) == before + 1
    ok(w.client.delete(f"{API}/sessions/{session_id}/duty/{coach['id']}", headers=w.as_("admin1")), 204)
    assert version(w) == before + 2


def test_a_refused_change_publishes_nothing(w):
    before = version(w)
    # staffA is on duty in groupA's Friday session; groupB meets at the same time (409, nothing committed).
    r = w.client.post(f"{API}/sessions/{_session_on(w, FRI, 'groupB')}/duty", json={"staff_id": w.ids["staffA"]}, headers=w.as_("admin1"))
    assert r.status_code == 409, r.text
    assert version(w) == before


def test_staff_created_updated_and_their_cards_added_and_removed_each_publish_a_version(w):
    before = version(w)
    person = ok(w.client.post(f"{API}/staff", json={"name": "周老师", "kind": "teacher"}, headers=w.as_("admin1")), 201)
    assert version(w) == before + 1
    ok(w.client.patch(f"{API}/staff/{person['id']}", json={"name": "周晓老师"}, headers=w.as_("admin1")))
    assert version(w) == before + 2
    ok(w.client.post(f"{API}/staff/{person['id']}/cards", json={"uid": "0A0B0C0D"}, headers=w.as_("admin1")), 201)
    assert version(w) == before + 3
    ok(w.client.post(f"{API}/staff/{person['id']}/cards/remove", json={"uid": "0A0B0C0D"}, headers=w.as_("admin1")))
    assert version(w) == before + 4


def test_the_vendors_last_approval_publishes_its_staff(w):
    admin, district = w.as_("admin1"), w.as_("district")
    vendor = ok(w.client.post(f"{API}/vendors", json={"name": "青少年体育俱乐部"}, headers=admin), 201)
    ok(w.client.post(f"{API}/staff", json={"name": "外聘教练", "kind": "third_party", "vendor_id": vendor["id"]}, headers=admin), 201)
    before = version(w)
    for step, who in (("review_panel", admin), ("party_org", admin), ("district", district)):
        ok(w.client.post(f"{API}/vendors/{vendor['id']}/approvals", json={"step": step, "approved": True}, headers=who), 201)
    assert version(w) == before  # the coach may not serve yet (P6.2)
    ok(w.client.post(f"{API}/vendors/{vendor['id']}/approvals", json={"step": "city", "approved": True}, headers=district), 201)
    assert version(w) == before + 1
    assert ok(w.client.get(f"{API}/roster", headers=admin))["staff"] == 3  # staffA, staffB and the coach


def test_a_group_renamed_publishes_a_version(w):
    before = version(w)
    ok(w.client.patch(f"{API}/groups/{w.ids['groupA']}", json={"name": "作业辅导甲"}, headers=w.as_("admin1")))
    assert version(w) == before + 1


def test_only_the_enrollment_steps_that_change_who_is_in_publish_a_version(w):
    admin = w.as_("admin1")
    with w.session() as session:  # C1's guardian, as an import would have linked them
        session.add(GuardianLink(guardian_id=w.ids["gB"], student_id=w.ids["C1"], relation="母亲"))
        session.commit()
    notice = ok(w.client.get(f"{API}/notice", headers=admin))["version"]
    before = version(w)
    row = ok(w.client.post(f"{API}/enrollments", json={"student": "C1", "guardian_id": w.ids["gB"], "application": "申请",
                                                         "group_id": w.ids["groupA"]}, headers=admin), 201)
    ok(w.client.post(f"{API}/enrollments/{row['id']}/review", json={}, headers=admin))
    ok(w.client.post(f"{API}/enrollments/{row['id']}/approve", json={}, headers=admin))
    for party, paper in (("school", False), ("guardian", True)):
        ok(w.client.post(f"{API}/enrollments/{row['id']}/signatures",
                         json={"party": party, "signer": "签名", "notice_version": notice, "paper": paper}, headers=admin))
    assert version(w) == before  # applied, reviewed, approved, two signatures: C1 is not in yet
    ok(w.client.post(f"{API}/enrollments/{row['id']}/signatures",
                     json={"party": "student", "signer": "学生C1", "notice_version": notice, "paper": True}, headers=admin))
    assert version(w) == before + 1
    assert ok(w.client.get(f"{API}/roster", headers=admin))["enrolled"] == 3
    ok(w.client.post(f"{API}/enrollments/{row['id']}/withdraw", json={"request": "家长书面申请退出", "effective_on": THU.isoformat()},
                     headers=admin))
    assert version(w) == before + 2
    assert ok(w.client.get(f"{API}/roster", headers=admin))["enrolled"] == 2


def test_a_guardian_link_change_publishes_a_version(w):
    before = version(w)
    ok(w.client.patch(f"{API}/students/A1/guardians/{w.ids['gA']}", json={"relation": "爸爸"}, headers=w.as_("admin1")))
    assert version(w) == before + 1


def test_pickup_codes_issued_revoked_and_redeemed_each_publish_a_version(w):
    before = version(w)
    issued = ok(w.client.post(f"{API}/pickup-codes", json={"student": "A1", "day": THU.isoformat(), "person": "张阿姨"},
                              headers=w.as_("parentA")), 201)
    assert version(w) == before + 1
    ok(w.client.delete(f"{API}/pickup-codes/{issued['id']}", headers=w.as_("parentA")))
    assert version(w) == before + 2
    again = ok(w.client.post(f"{API}/pickup-codes", json={"student": "A1", "day": THU.isoformat(), "person": "张阿姨"},
                             headers=w.as_("parentA")), 201)
    ok(w.client.post(f"{API}/pickup-codes/redeem", json={"student": "A1", "code": again["code"]}, headers=w.as_("guard1")))
    assert version(w) == before + 4


class _AwayBus:
    def publish(self, topic, payload, *, retain=False, qos=1):
        raise MqttError("broker away")


def test_a_broker_that_is_away_is_only_logged_and_the_version_is_kept(w, caplog):
    w.client.app.state.bus = _AwayBus()
    before = version(w)
    with caplog.at_level(logging.WARNING):
        ok(w.client.patch(f"{API}/groups/{w.ids['groupA']}", json={"name": "作业辅导乙"}, headers=w.as_("admin1")))
    assert version(w) == before + 1  # central republishes it when it reconnects (Bus.republish_rosters)
    assert "not published now" in caplog.text


def test_a_roster_that_cannot_be_rebuilt_does_not_fail_the_change(w, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("roster build failed")

    before, real = version(w), roster.refresh
    monkeypatch.setattr(roster, "refresh", broken)
    with caplog.at_level(logging.ERROR, logger="central.core.events"):
        r = w.client.patch(f"{API}/groups/{w.ids['groupA']}", json={"name": "作业辅导丙"}, headers=w.as_("admin1"))
    assert r.status_code == 200 and r.json()["name"] == "作业辅导丙"
    assert "roster build failed" in caplog.text
    monkeypatch.setattr(roster, "refresh", real)
    assert version(w) == before  # the timer or the next change publishes it
