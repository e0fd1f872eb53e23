"""The public page of a school (P4.2): no login, zh_CN by default and en, built from what the school set up."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlmodel import select

from central.core import clock
from central.programme.models import CareSession, DismissalTime, InterestGroup
from central.schools.models import School


def _set_up(world) -> None:
    with world.session() as session:
        school = session.exec(select(School).where(School.code == "s1")).one()
        today = clock.local_today(school)
        group = session.get(InterestGroup, world.ids["groupA"])
        group.description = "<script>alert(1)</script> 完成当天作业"
        session.add(group)
        session.add(DismissalTime(school_id=school.id, grade="三年级", season="winter", dismissal=time(15, 40), updated_by="test"))
        # 08:00 UTC is 16:00 in Shanghai: the page shows the school's clock.
        start = datetime.combine(today + timedelta(days=1), time(8, 0), tzinfo=UTC)
        session.add(
            CareSession(
                school_id=school.id, group_id=group.id, day=today + timedelta(days=1), starts_at=start,
                ends_at=start + timedelta(minutes=80), place="101", created_by="test",
            )
        )
        session.commit()
    r = world.client.put(
        "/api/v1/schools/s1/public-profile",
        json={"fee_fen": 8050, "contact": "0632-1234567", "apply_note": "每学期开学第一周报名"},
        headers=world.as_("admin1"),
    )
    assert r.status_code == 200, r.text


def test_public_page_in_chinese_without_login(world):
    _set_up(world)
    r = world.client.get("/public/s1")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-language"] == "zh-CN"
    page = r.text
    for expected in (
        "示范小学 课后服务公示", "服务时间", "每课时 40 分钟", "放学时间", "15:40", "近期服务安排", "16:00–17:20",
        "groupA", "作业辅导", "每周一、二、三、四、五", "安全措施", "不超过 30 人", "收费", "每生每月 80.50 元", "如何报名", "家长书面申请",
        "每学期开学第一周报名", "0632-1234567",
    ):
        assert expected in page, expected
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page  # escaped, not run
    for private in ("学生A1", "王父", "138", "staffA"):  # no child, guardian or staff member by name
        assert private not in page


def test_public_page_in_english(world):
    _set_up(world)
    for r in (world.client.get("/public/s1", params={"lang": "en"}), world.client.get("/public/s1", headers={"Accept-Language": "en-GB,en;q=0.9"})):
        assert r.status_code == 200 and r.headers["content-language"] == "en"
        for expected in ("Service times", "A period is 40 minutes", "homework", "Mon, Tue, Wed, Thu, Fri", "Safety measures", "80.50 CNY per student per month", "How to apply", "16:00–17:20"):
            assert expected in r.text, expected
        assert "服务时间" not in r.text


def test_public_page_before_anything_is_published_and_for_an_unknown_school(world):
    r = world.client.get("/public/s2")
    assert r.status_code == 200 and "学校尚未公布收费标准" in r.text
    missing = world.client.get("/public/nowhere", params={"lang": "en"})
    assert missing.status_code == 404 and "No school nowhere" in missing.text


def test_fee_above_the_district_cap_is_refused(world):
    r = world.client.put("/api/v1/schools/s1/public-profile", json={"fee_fen": 10001}, headers=world.as_("admin1"))
    assert r.status_code == 422 and "100.00" in r.json()["detail"][0]["msg"]
