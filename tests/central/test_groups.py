"""Interest groups (P4.1, P5): forbidden categories refused, capacity enforced."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.core.errors import Conflict, Invalid
from central.programme import enrollment as enr
from central.programme import groups
from central.programme.models import InterestGroupCreate, InterestGroupUpdate
from central.schools.models import School, SchoolClass, Student

SETTINGS = Settings()


@pytest.fixture
def db(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        school = School(code="s1", name="示范小学")
        session.add(school)
        session.flush()
        klass = SchoolClass(school_id=school.id, grade="三年级", name="1班")
        session.add(klass)
        session.flush()
        session.add_all(Student(school_id=school.id, class_id=klass.id, student_no=f"S{i}", name=f"学生{i}") for i in range(3))
        session.commit()
        enr.publish_notice(session, school=school, text="告知书", actor="admin")
        yield session, school
    engine.dispose()


def create(session, school, **kw):
    data = {"name": "兴趣组", "category": "arts", "capacity": 2, "place": "美术室", "grades": ["三年级"]} | kw
    return groups.create_group(session, school=school, actor="admin", settings=SETTINGS, data=InterestGroupCreate(**data))


@pytest.mark.parametrize("category", ["subject_teaching", "new_lessons", "collective_tutoring", "Subject_Teaching", "集体补课"])
def test_each_forbidden_category_is_refused_citing_p5_2(db, category):
    session, school = db
    with pytest.raises(Invalid) as refused:
        create(session, school, category=category)
    assert "P5.2" in refused.value.text("en") and "P5.2" in str(refused.value)
    assert groups.list_groups(session, school=school) == []


@pytest.mark.parametrize(
    "name,description,en_words,zh_words",
    [
        ("数学补课班", "", "数学补课", "“数学补课”"),
        ("课后托管", "集体补课", "集体补课", "“集体补课”"),
        ("作业辅导", "周三讲新课，周五补 课", "讲新课, 补课", "“讲新课、补课”"),
    ],
)
def test_a_group_named_or_described_as_tutoring_is_refused_naming_the_words(db, name, description, en_words, zh_words):
    session, school = db
    with pytest.raises(Invalid) as refused:
        create(session, school, name=name, category="homework", description=description)
    assert refused.value.text("en") == (
        "the service may not be collective tutoring or teaching new lessons (P5.2): "
        f"the group's name or description says {en_words}"
    )
    assert f"含有{zh_words}" in str(refused.value)
    assert groups.list_groups(session, school=school) == []


def test_homework_help_and_the_rule_quoted_pass(db):
    session, school = db
    group = create(session, school, name="作业辅导", category="homework", description="完成当天作业，不讲新课、不集体补课")
    assert group.name == "作业辅导"


def test_renaming_or_redescribing_a_group_as_tutoring_is_refused(db):
    session, school = db
    group = create(session, school, name="作业辅导", category="homework")
    with pytest.raises(Invalid, match="数学补课"):
        groups.update_group(session, school=school, group_id=group.id, actor="admin",
                            data=InterestGroupUpdate(name="数学补课班"))
    with pytest.raises(Invalid, match="讲新课"):
        groups.update_group(session, school=school, group_id=group.id, actor="admin",
                            data=InterestGroupUpdate(description="每天讲新课"))
    session.rollback()
    kept = groups.get_group(session, school=school, group_id=group.id)
    assert (kept.name, kept.description) == ("作业辅导", "")
    renamed = groups.update_group(session, school=school, group_id=group.id, actor="admin",
                                  data=InterestGroupUpdate(name="作业辅导（三年级）", description="自主完成作业"))
    assert renamed.name == "作业辅导（三年级）"


@pytest.mark.parametrize("category", ["collective_tutoring", "集体补课"])
def test_the_refusal_names_the_forbidden_kind_in_the_reader_language(db, category):
    session, school = db
    with pytest.raises(Invalid) as refused:
        create(session, school, category=category)
    assert str(refused.value) == "课后服务不得集体补课（P5.2），该兴趣组不能设立"
    assert refused.value.text("en") == "the service may not be collective tutoring (P5.2): the group is refused"


def test_a_category_off_the_allowed_list_is_refused_and_each_allowed_one_is_taken(db):
    session, school = db
    with pytest.raises(Invalid, match="P5.1"):
        create(session, school, category="business")
    for i, category in enumerate(groups.ALLOWED):
        assert create(session, school, name=f"组{i}", category=category).category == category


def test_an_outside_venue_is_a_place(db):
    session, school = db
    group = create(session, school, place="市青少年宫", off_site=True)  # P2.4
    assert groups.group_public(session, group).off_site is True


def test_capacity_is_enforced_at_approval(db):
    session, school = db
    group = create(session, school, capacity=2)
    students = [s.id for s in session.exec(Student.__table__.select()).all()]
    enr.enroll_through_chain(session, school=school, student_ids=students[:2], group_id=group.id, actor="admin",
                             application="申请", school_signer="校长")
    row = enr.record_application(session, school=school, student_id=students[2], group_id=group.id,
                                 application="申请", actor="g")
    enr.review(session, school=school, enrollment_id=row.id, actor="teacher")
    with pytest.raises(Conflict) as full:
        enr.approve(session, school=school, enrollment_id=row.id, actor="admin")
    assert "full (2 places)" in full.value.text("en")
    session.rollback()
    with pytest.raises(Conflict, match="2"):
        groups.update_group(session, school=school, group_id=group.id, actor="admin",
                            data=InterestGroupUpdate(capacity=1))
    groups.update_group(session, school=school, group_id=group.id, actor="admin", data=InterestGroupUpdate(capacity=3))
    assert enr.approve(session, school=school, enrollment_id=row.id, actor="admin").state == "approved"


def test_a_duplicate_name_and_bad_weekdays_are_refused(db):
    session, school = db
    create(session, school)
    with pytest.raises(Conflict):
        create(session, school)
    with pytest.raises(Invalid):
        create(session, school, name="其他", weekdays=[1, 1])


def test_the_api_refuses_a_tutoring_group_on_create_and_update(world):
    admin = world.as_("admin1")
    body = {"name": "数学补课班", "category": "homework", "capacity": 20, "place": "301", "grades": ["三年级"]}
    made = world.client.post("/api/v1/schools/s1/groups?lang=en", json=body, headers=admin)
    assert made.status_code == 422, made.text
    assert made.json()["detail"][0]["type"] == "group.tutoring"
    assert made.json()["detail"][0]["msg"].endswith("the group's name or description says 数学补课")
    changed = world.client.patch(f"/api/v1/schools/s1/groups/{world.ids['groupA']}", json={"description": "集体补课"},
                                 headers=admin)
    assert changed.status_code == 422, changed.text
    assert "“集体补课”" in changed.json()["detail"][0]["msg"]
