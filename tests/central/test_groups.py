"""Interest groups (P4.1, P5): forbidden categories refused, capacity enforced."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from central import enrollment as enr
from central import groups
from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.errors import Conflict, Invalid
from central.models import InterestGroupCreate, InterestGroupUpdate, School, SchoolClass, Student

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
        enr.publish_notice(session, school_id=school.id, text="告知书", actor="admin")
        yield session, school
    engine.dispose()


def create(session, school, **kw):
    data = {"name": "兴趣组", "category": "arts", "capacity": 2, "place": "美术室", "grades": ["三年级"]} | kw
    return groups.create_group(session, school_id=school.id, actor="admin", settings=SETTINGS, data=InterestGroupCreate(**data))


@pytest.mark.parametrize("category", ["subject_teaching", "new_lessons", "collective_tutoring", "Subject_Teaching", "集体补课"])
def test_each_forbidden_category_is_refused_citing_p5_2(db, category):
    session, school = db
    with pytest.raises(Invalid) as refused:
        create(session, school, category=category)
    assert "P5.2" in refused.value.text("en") and "P5.2" in str(refused.value)
    assert groups.list_groups(session, school_id=school.id) == []


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
    enr.enroll_through_chain(session, school_id=school.id, student_ids=students[:2], group_id=group.id, actor="admin",
                             application="申请", school_signer="校长")
    row = enr.record_application(session, school_id=school.id, student_id=students[2], group_id=group.id,
                                 application="申请", actor="g")
    enr.review(session, school_id=school.id, enrollment_id=row.id, actor="teacher")
    with pytest.raises(Conflict) as full:
        enr.approve(session, school_id=school.id, enrollment_id=row.id, actor="admin")
    assert "full (2 places)" in full.value.text("en")
    session.rollback()
    with pytest.raises(Conflict, match="2"):
        groups.update_group(session, school_id=school.id, group_id=group.id, actor="admin",
                            data=InterestGroupUpdate(capacity=1))
    groups.update_group(session, school_id=school.id, group_id=group.id, actor="admin", data=InterestGroupUpdate(capacity=3))
    assert enr.approve(session, school_id=school.id, enrollment_id=row.id, actor="admin").state == "approved"


def test_a_duplicate_name_and_bad_weekdays_are_refused(db):
    session, school = db
    create(session, school)
    with pytest.raises(Conflict):
        create(session, school)
    with pytest.raises(Invalid):
        create(session, school, name="其他", weekdays=[1, 1])
