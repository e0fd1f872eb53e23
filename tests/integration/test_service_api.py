"""Issue 3 "done means", through the API alone: a school admin sets up a term, dismissal times, staff,
a vendor, a group and its sessions, takes a guardian's application through review, approval and the
three signatures to active, and the kiosk roster version changes. On both back-ends (conftest.py).

The school's students and guardians come from the roster import, as in production.
"""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
from sgtest import RunningClock, wait_for

from central.admin import central_key, create_school, create_user, import_files, register_kiosk
from central.core import clock
from central.core.config import Settings
from central.server import CentralServer
from gateway.mqtt import free_port
from kiosk.config import KioskSettings
from kiosk.runtime import Kiosk

SECRET = "6b" * 32
# The school's today: a Tuesday (10:00 in Asia/Shanghai when the test starts), whatever the wall clock says.
TODAY = date(2026, 12, 1)
TUESDAY_MORNING = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)




def ok(response: httpx.Response, status: int = 200) -> dict | list:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


def test_a_school_admin_takes_an_application_to_active_and_the_kiosk_roster_follows(backend, tmp_path, monkeypatch):
    now = RunningClock(TUESDAY_MORNING)
    monkeypatch.setattr(clock, "utcnow", now)  # central's one clock: its today is the calendar's below
    school = f"sch-{uuid.uuid4().hex[:8]}"
    settings = Settings(database_url=backend.database_url, mqtt_url=backend.mqtt_url, topic_prefix=backend.topic_prefix)
    students = tmp_path / "students.csv"
    guardians = tmp_path / "guardians.csv"
    with students.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["学号", "姓名", "年级", "班级", "卡号", "建档立卡"], ["S1", "王小明", "三年级", "1班", "0A000001", "否"]])
    with guardians.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["姓名", "关系", "手机", "卡号", "学生学号", "可接送", "禁止接送"],
                                 ["王大明", "父亲", "13800001111", "0B000001", "S1", "是", "否"]])
    with CentralServer(settings, port=free_port()) as central:
        create_school(settings, code=school, name="示范小学")
        register_kiosk(settings, school=school, kiosk="gate-1", secret=SECRET)
        import_files(settings, school=school, students=students, guardians=guardians)
        gate = Kiosk(KioskSettings(school=school, kiosk="gate-1", data_dir=tmp_path / "kiosk", secret=SECRET,
                                   mqtt_url=backend.kiosk_url, topic_prefix=backend.topic_prefix,
                                   central_key=central_key(settings)), clock=now).start()
        # The school's admin sets it up; the district (and the service token, which acts as it) only reads.
        create_user(settings, username=f"principal-{school}", password="a password for tests", role="school_admin",
                    school=school)
        login = ok(httpx.post(f"{central.url}/api/v1/auth/login", json={"username": f"principal-{school}",
                                                                        "password": "a password for tests"}))
        api = httpx.Client(base_url=f"{central.url}/api/v1/schools/{school}", timeout=20,
                           headers={"Authorization": f"Bearer {login['access_token']}"})
        district = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
        try:
            wait_for(lambda: gate.store.roster.version == 1, what="roster v1 at the kiosk")
            assert gate.store.roster.students["S1"].enrolled is False  # imported is not enrolled (P2.1)

            # The calendar: a term around today, the grade's dismissal in both seasons.
            today = TODAY
            ok(api.post("/terms", json={"name": "本学期", "starts_on": str(today - timedelta(days=30)),
                                        "ends_on": str(today + timedelta(days=90))}), 201)
            for season in ("summer", "winter"):
                ok(api.put("/dismissal-times", json={"grade": "三年级", "season": season, "dismissal": "16:00:00"}))

            # Staff: a teacher in charge; a coach whose vendor still waits for the city bureau.
            teacher = ok(api.post("/staff", json={"name": "李老师", "kind": "teacher"}), 201)
            ok(api.post(f"/staff/{teacher['id']}/cards", json={"uid": "0C000001"}), 201)
            vendor = ok(api.post("/vendors", json={"name": "星火体育俱乐部"}), 201)
            # P6.2: the school records its own two steps; the district bureau's is recorded by a district account.
            for step in ("review_panel", "party_org"):
                vendor = ok(api.post(f"/vendors/{vendor['id']}/approvals", json={"step": step, "approved": True}), 201)
            refused = api.post(f"/vendors/{vendor['id']}/approvals", json={"step": "district", "approved": True})
            assert refused.status_code == 403 and "P6.2" in refused.text
            vendor = ok(api.post(f"/vendors/{vendor['id']}/approvals", headers=district,
                                 json={"step": "district", "approved": True}), 201)
            coach = ok(api.post("/staff", json={"name": "王教练", "kind": "third_party", "vendor_id": vendor["id"]}), 201)
            assert coach["may_serve"] is False and vendor["next_step"] == "city"

            # A group: subject teaching is refused (P5.2); reading is fine.
            refused = api.post("/groups", json={"name": "数学", "category": "subject_teaching", "capacity": 30,
                                                "place": "301", "grades": ["三年级"], "staff_id": teacher["id"]})
            assert refused.status_code == 422 and "P5.2" in refused.text
            group = ok(api.post("/groups", json={"name": "阅读", "category": "reading", "capacity": 30, "place": "图书馆",
                                                 "grades": ["三年级"], "weekdays": [1, 2, 3, 4, 5, 6, 7],
                                                 "staff_id": teacher["id"]}), 201)
            made = ok(api.post("/sessions/plan", json={"start": str(today), "end": str(today + timedelta(days=2)),
                                                       "group_id": group["id"]}), 201)
            assert made and made[0]["staff"] == [teacher["id"]]
            refused = api.post(f"/sessions/{made[0]['id']}/duty", json={"staff_id": coach["id"]})
            assert refused.status_code == 409 and "P6.2" in refused.text
            ok(api.post(f"/vendors/{vendor['id']}/approvals", headers=district, json={"step": "city", "approved": True}), 201)
            ok(api.post(f"/sessions/{made[0]['id']}/duty", json={"staff_id": coach["id"]}), 201)

            # The notice, and the guardian's application through the chain.
            notice = ok(api.post("/notice", json={"text": "课后服务告知书：16:00—17:20，家长按时接送。"}), 201)
            guardian = ok(api.get("/students/S1"))["guardians"][0]
            row = ok(api.post("/enrollments", json={"student": "S1", "guardian_id": guardian["id"],
                                                    "application": "本人自愿为孩子申请课后服务", "group_id": group["id"]}), 201)
            skipped = api.post(f"/enrollments/{row['id']}/approve", json={})
            assert skipped.status_code == 409 and "class_reviewed" in skipped.text
            ok(api.post(f"/enrollments/{row['id']}/review", json={"note": "情况属实"}))
            ok(api.post(f"/enrollments/{row['id']}/approve", json={}))
            before = ok(api.get("/roster"))["version"]
            # P2.2: the service token (district) signs for nobody; the school's admin signs for the
            # school, the guardian in their own account for themselves and the child.
            refused = api.post(f"/enrollments/{row['id']}/signatures", headers=district, json={
                "party": "school", "signer": "区教体局", "notice_version": notice["version"]})
            assert refused.status_code == 403
            create_user(settings, username=f"parent-{school}", password="a password for tests", role="guardian",
                        school=school, guardian_id=guardian["id"])
            login = ok(httpx.post(f"{central.url}/api/v1/auth/login", json={"username": f"parent-{school}",
                                                                            "password": "a password for tests"}))
            signers = {"school_admin": {"Authorization": api.headers["Authorization"]}, "guardian": {"Authorization": f"Bearer {login['access_token']}"}}
            for party, signer, who in (("school", "张校长", "school_admin"), ("guardian", guardian["name"], "guardian"),
                                       ("student", "王小明", "guardian")):
                row = ok(api.post(f"/enrollments/{row['id']}/signatures", headers=signers[who], json={
                    "party": party, "signer": signer, "notice_version": notice["version"]}))
            assert row["state"] == "active"
            assert [s["to_state"] for s in row["steps"]] == ["applied", "class_reviewed", "approved", "active"]
            summary = ok(api.get("/roster"))
            assert summary["version"] > before and summary["enrolled"] == 1

            wait_for(lambda: gate.store.roster.version == summary["version"], what="the new roster at the kiosk")
            assert gate.store.roster.students["S1"].enrolled is True
            link = ok(api.patch(f"/students/S1/guardians/{guardian['id']}", json={"valid_until": str(today + timedelta(days=30))}))
            assert link["valid_until"] == str(today + timedelta(days=30))
            wait_for(lambda: gate.store.roster.version == summary["version"] + 1, what="the link's dates at the kiosk")
            assert gate.store.roster.guardians[f"g{guardian['id']}"].links[0].valid_until == link["valid_until"]
            shown = ok(api.get("/sessions", params={"start": str(today), "end": str(today)}))
            assert shown[0]["expected"] == 1 and shown[0]["over_ratio"] is False
            assert sorted(shown[0]["staff"]) == sorted([teacher["id"], coach["id"]])
        finally:
            api.close()
            gate.close()
