"""Enrollment by consent (P2.1, P2.2): every allowed step, and every skip refused with a clear error."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session, select

from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.core.errors import Conflict, Forbidden, Invalid
from central.kiosks import roster
from central.programme import enrollment as enr
from central.programme import groups
from central.programme.models import Enrollment, EnrollmentCreate, EnrollmentStep, InterestGroupCreate, NoticeSignature
from central.schools.models import Guardian, GuardianLink, School, SchoolClass, Student

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
        for i in range(1, 4):
            student = Student(school_id=school.id, class_id=klass.id, student_no=f"S{i}", name=f"学生{i}")
            guardian = Guardian(school_id=school.id, name=f"家长{i}", phone="13800000000")
            session.add_all([student, guardian])
            session.flush()
            session.add(GuardianLink(guardian_id=guardian.id, student_id=student.id, barred=i == 3, may_pick_up=i != 3))
        session.commit()
        group = groups.create_group(
            session, school=school, actor="admin", settings=SETTINGS,
            data=InterestGroupCreate(name="阅读", category="reading", capacity=2, place="图书馆", grades=["三年级"]),
        )
        enr.publish_notice(session, school=school, text="告知书 v1", actor="admin")
        yield session, school, group
    engine.dispose()


def guardian_of(session, no: str) -> int:
    student = session.exec(select(Student).where(Student.student_no == no)).one()
    return session.exec(select(GuardianLink).where(GuardianLink.student_id == student.id)).one().guardian_id


def application(session, school, group, no="S1"):
    return enr.apply(session, school=school, actor="guardian", data=EnrollmentCreate(
        student=no, guardian_id=guardian_of(session, no), application="我自愿申请参加课后服务", group_id=group.id))


def paper(session, row, party: str) -> dict:
    """What a school admin passes to record ``party``'s signature: the school's own, or a paper form."""
    if party == "school":
        return {"role": "school_admin"}
    return {"role": "school_admin", "paper": True, "guardian_id": guardian_of_id(session, row.student_id)}


def guardian_of_id(session, student_id: int) -> int:
    return session.exec(select(GuardianLink).where(GuardianLink.student_id == student_id)).one().guardian_id


def walk(session, school, row, upto: str):
    """Take an enrollment along the allowed path up to the state ``upto``."""
    kw = {"school": school, "enrollment_id": row.id, "actor": "t"}
    path = ["applied", "class_reviewed", "approved", "active"]
    if path.index(upto) >= 1:
        enr.review(session, **kw)
    if path.index(upto) >= 2:
        enr.approve(session, **kw)
    if path.index(upto) >= 3:
        for party in enr.PARTIES:
            enr.sign(session, party=party, signer="某人", notice_version=1, **paper(session, row, party), **kw)
    assert row.state == upto
    return row


def do(session, school, row, action: str):
    kw = {"school": school, "enrollment_id": row.id, "actor": "t"}
    if action == "review":
        return enr.review(session, **kw)
    if action == "approve":
        return enr.approve(session, **kw)
    if action == "sign":
        return enr.sign(session, party="school", signer="校长", notice_version=1, role="school_admin", **kw)
    if action == "reject":
        return enr.reject(session, reason="名额已满", **kw)
    if action == "withdraw":
        return enr.withdraw(session, request="家长书面申请退出", effective_on=date(2026, 11, 30), **kw)
    raise AssertionError(action)


ALLOWED = {
    "applied -review-> class_reviewed": ("applied", "review", "class_reviewed"),
    "class_reviewed -approve-> approved": ("class_reviewed", "approve", "approved"),
    "approved -sign-> approved (one of three)": ("approved", "sign", "approved"),
    "applied -reject-> rejected": ("applied", "reject", "rejected"),
    "class_reviewed -reject-> rejected": ("class_reviewed", "reject", "rejected"),
    "approved -reject-> rejected": ("approved", "reject", "rejected"),
    "applied -withdraw-> withdrawn": ("applied", "withdraw", "withdrawn"),
    "approved -withdraw-> withdrawn": ("approved", "withdraw", "withdrawn"),
    "active -withdraw-> withdrawn": ("active", "withdraw", "withdrawn"),
}


@pytest.mark.parametrize("start,action,end", ALLOWED.values(), ids=ALLOWED.keys())
def test_every_allowed_step_moves_and_records_who_and_when(db, start, action, end):
    session, school, group = db
    row = walk(session, school, application(session, school, group), start)
    do(session, school, row, action)
    assert row.state == end
    steps = session.exec(select(EnrollmentStep).where(EnrollmentStep.enrollment_id == row.id)).all()
    if end != start:
        assert (steps[-1].from_state, steps[-1].to_state, steps[-1].actor) == (start, end, "t")
        assert steps[-1].at is not None


SKIPS = {
    # (state, action): the words the refusal must contain
    "approve an application not yet reviewed": ("applied", "approve", "class_reviewed"),
    "sign before review": ("applied", "sign", "approved"),
    "sign before approval": ("class_reviewed", "sign", "approved"),
    "review twice": ("class_reviewed", "review", "applied"),
    "review after approval": ("approved", "review", "applied"),
    "approve twice": ("approved", "approve", "class_reviewed"),
    "review an active enrollment": ("active", "review", "applied"),
    "approve an active enrollment": ("active", "approve", "class_reviewed"),
    "sign an active enrollment": ("active", "sign", "approved"),
    "reject an active enrollment (withdraw instead)": ("active", "reject", "applied / class_reviewed / approved"),
}


@pytest.mark.parametrize("start,action,needed", SKIPS.values(), ids=SKIPS.keys())
def test_every_skip_is_refused_with_the_state_it_needs(db, start, action, needed):
    session, school, group = db
    row = walk(session, school, application(session, school, group), start)
    with pytest.raises(Conflict) as refused:
        do(session, school, row, action)
    message = refused.value.text("en")
    assert f"is {start}" in message and needed in message and "P2.1" in message
    session.rollback()
    session.refresh(row)
    assert row.state == start


@pytest.mark.parametrize("final", ["withdrawn", "rejected"])
@pytest.mark.parametrize("action", ["review", "approve", "sign", "reject", "withdraw"])
def test_nothing_moves_a_closed_enrollment(db, final, action):
    session, school, group = db
    row = application(session, school, group)
    do(session, school, row, "withdraw" if final == "withdrawn" else "reject")
    with pytest.raises(Conflict, match=final):
        do(session, school, row, action)


def test_active_needs_all_three_signatures_of_one_notice_version(db):
    session, school, group = db
    row = walk(session, school, application(session, school, group), "approved")
    kw = {"school": school, "enrollment_id": row.id, "actor": "admin", "role": "school_admin"}
    g = {"guardian_id": guardian_of(session, "S1"), "paper": True}
    enr.sign(session, party="school", signer="校长", notice_version=1, **kw)
    enr.sign(session, party="guardian", signer="家长1", notice_version=1, **g, **kw)
    with pytest.raises(Conflict, match="已签署"):
        enr.sign(session, party="school", signer="校长", notice_version=1, **kw)
    enr.publish_notice(session, school=school, text="告知书 v2（接送时间调整）", actor="admin")
    with pytest.raises(Conflict) as old:
        enr.sign(session, party="student", signer="学生1", notice_version=1, **g, **kw)
    assert "replaced by version 2" in old.value.text("en")
    # The new version needs all three again: the two v1 signatures do not count.
    enr.sign(session, party="student", signer="学生1", notice_version=2, **g, **kw)
    assert row.state == "approved"
    enr.sign(session, party="school", signer="校长", notice_version=2, **kw)
    enr.sign(session, party="guardian", signer="家长1", notice_version=2, **g, **kw)
    assert row.state == "active"
    shown = enr.public(session, row)
    assert [(s.party, s.notice_version) for s in shown.signatures][-3:] == [("student", 2), ("school", 2), ("guardian", 2)]
    with pytest.raises(Invalid, match="teacher"):
        enr.sign(session, party="teacher", signer="x", notice_version=2, **kw)


def test_a_barred_person_cannot_apply_and_duplicates_are_refused(db):
    session, school, group = db
    with pytest.raises(Invalid, match="可接送"):
        enr.apply(session, school=school, actor="g", data=EnrollmentCreate(
            student="S3", guardian_id=guardian_of(session, "S3"), application="申请"))
    application(session, school, group)
    with pytest.raises(Conflict, match="进行中的报名"):
        application(session, school, group)


def test_the_roster_marks_only_active_students_enrolled(db):
    session, school, group = db
    row = application(session, school, group)

    def enrolled():
        roster.refresh(session, school)
        return {s["id"]: s["enrolled"] for s in roster.build_people(session, school)["students"]}

    assert enrolled() == {"S1": False, "S2": False, "S3": False}
    walk(session, school, row, "approved")
    assert enrolled()["S1"] is False
    before = school.roster_version
    walk_rest = [enr.sign(session, school=school, enrollment_id=row.id, actor="t", party=p, signer="x",
                          notice_version=1, **paper(session, row, p)) for p in enr.PARTIES]
    assert walk_rest[-1].state == "active"
    assert enrolled()["S1"] is True and school.roster_version == before + 1
    people = roster.build_people(session, school)
    assert next(s for s in people["students"] if s["id"] == "S1")["groups"] == [str(group.id)]


# P2.2: who may put which signature on record. (party, role, paper, guardian given) -> refused with, or None.
SIGNERS = [
    ("school", "school_admin", False, False, None),
    ("school", "teacher", False, False, "只有学校管理员可以代表学校签署"),
    ("school", "district", False, False, "只有学校管理员可以代表学校签署"),
    ("school", "guardian", False, True, "只有学校管理员可以代表学校签署"),
    ("school", "school_admin", True, False, "只有学校管理员可以录入纸质告知书"),
    ("guardian", "guardian", False, True, None),
    ("student", "guardian", False, True, None),
    ("guardian", "guardian", True, True, "只有学校管理员可以录入纸质告知书"),
    ("guardian", "school_admin", True, True, None),
    ("student", "school_admin", True, False, None),
    ("guardian", "school_admin", False, True, "paper=true"),
    ("student", "school_admin", False, False, "paper=true"),
    ("guardian", "school_admin", True, False, None),  # a paper form need not name a guardian on file
    ("guardian", "teacher", False, True, "由家长本人账号签署"),
    ("student", "teacher", True, False, "由家长本人账号签署"),
    ("student", "district", True, False, "由家长本人账号签署"),
    ("guardian", "guard", False, True, "由家长本人账号签署"),
]


@pytest.mark.parametrize(("party", "role", "on_paper", "names_guardian", "refused"), SIGNERS)
def test_who_may_record_which_signature(db, party, role, on_paper, names_guardian, refused):
    session, school, group = db
    row = walk(session, school, application(session, school, group), "approved")
    kw = {"school": school, "enrollment_id": row.id, "actor": f"user:{role}", "party": party, "signer": "某人",
          "notice_version": 1, "role": role, "paper": on_paper}
    if names_guardian:
        kw["guardian_id"] = guardian_of(session, "S1")
    if refused is None:
        enr.sign(session, **kw)
        stored = session.exec(select(NoticeSignature).where(NoticeSignature.enrollment_id == row.id)).one()
        assert (stored.party, stored.paper, stored.recorded_by) == (party, on_paper, f"user:{role}")
    else:
        with pytest.raises((Forbidden, Invalid)) as caught:
            enr.sign(session, **kw)
        assert refused in str(caught.value)
        assert caught.value.text("en") != str(caught.value)  # an English text too
        assert session.exec(select(NoticeSignature)).all() == []


def test_a_guardian_cannot_sign_for_a_child_of_someone_else(db):
    session, school, group = db
    row = walk(session, school, application(session, school, group), "approved")
    with pytest.raises(Invalid, match="可接送"):
        enr.sign(session, school=school, enrollment_id=row.id, actor="user:p2", party="student", signer="x",
                 notice_version=1, role="guardian", guardian_id=guardian_of(session, "S2"))


def test_paper_forms_are_marked_in_the_enrollment_shown(db):
    session, school, group = db
    row = walk(session, school, application(session, school, group), "active")
    shown = {s.party: (s.paper, s.recorded_by) for s in enr.public(session, row).signatures}
    assert shown == {"school": (False, "t"), "guardian": (True, "t"), "student": (True, "t")}


# --- a withdrawal as of a later date (P7.4) ------------------------------------------------------
# 2026-11-30 is a Monday; the withdrawal takes effect on Wednesday 2026-12-02.
MON, TUE, WED, FRI = date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 4)


def enrolled_on(session, school, day: date) -> dict[str, list[str]]:
    """student -> the groups the kiosk roster built for ``day`` puts them in (only the enrolled)."""
    people = roster.build_people(session, school, today=day)
    return {s["id"]: s["groups"] for s in people["students"] if s["enrolled"]}


def test_a_withdrawal_as_of_a_later_date_keeps_the_child_in_until_that_date(db):
    session, school, group = db
    leaving = walk(session, school, application(session, school, group, "S1"), "active")
    never_served = walk(session, school, application(session, school, group, "S2"), "approved")
    kw = {"school": school, "request": "家长书面申请：下周三起退出", "effective_on": WED, "actor": "t"}
    enr.withdraw(session, enrollment_id=leaving.id, **kw)
    enr.withdraw(session, enrollment_id=never_served.id, **kw)
    # The request is on record at once, and closes the enrollment...
    assert (leaving.state, leaving.withdrawn_on) == ("withdrawn", WED)
    # ... but the child is in the service, on the roster, in the group's seat, the day before the date,
    assert enrolled_on(session, school, TUE) == {"S1": [str(group.id)]}
    assert groups.seats_taken(session, group.id, TUE) == 1
    # and out from the date on. A withdrawal before the child ever served keeps no one in.
    assert enrolled_on(session, school, WED) == {}
    assert enrolled_on(session, school, FRI) == {}
    assert groups.seats_taken(session, group.id, WED) == 0


def test_a_sessions_expected_students_follow_the_withdrawal_date(db):
    from datetime import time

    from central.programme import schedule
    from central.programme.models import DismissalTimeCreate, TermCreate

    session, school, group = db
    schedule.add_term(session, school=school, actor="admin",
                      data=TermCreate(name="秋季", starts_on=date(2026, 9, 1), ends_on=date(2027, 1, 20)))
    for season in ("summer", "winter"):
        schedule.set_dismissal(session, school=school, actor="admin",
                               data=DismissalTimeCreate(grade="三年级", season=season, dismissal=time(16, 0)))
    for no in ("S1", "S2"):
        walk(session, school, application(session, school, group, no), "active")
    rows = schedule.plan_sessions(session, school=school, start=MON, end=FRI, group_id=group.id, actor="admin",
                                  settings=SETTINGS)
    leaving = enr.list_enrollments(session, school=school, student="S1")[0]
    enr.withdraw(session, school=school, enrollment_id=leaving.id, request="家长书面申请退出", effective_on=WED,
                 actor="t")
    shown = schedule.sessions_public(session, school=school, rows=rows, settings=SETTINGS)
    assert [(s.day, s.expected) for s in shown] == [
        (MON, 2), (TUE, 2), (WED, 1), (date(2026, 12, 3), 1), (FRI, 1)]


class Published:
    def __init__(self):
        self.messages: list[tuple[str, bytes, bool]] = []

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.messages.append((topic, payload, retain))


def test_the_roster_timer_publishes_a_new_version_when_the_withdrawal_date_arrives(db):
    import json

    from gateway import protocol

    session, school, group = db
    leaving = walk(session, school, application(session, school, group, "S1"), "active")
    assert roster.refresh(session, school, today=TUE) is not None
    version = school.roster_version
    enr.withdraw(session, school=school, enrollment_id=leaving.id, request="家长书面申请退出", effective_on=WED,
                 actor="t")
    assert roster.refresh(session, school, today=TUE) is None  # nothing to send yet: the child is still in
    # The timer's round on the date: every school rebuilt for its day, the change published.
    out = Published()
    topics = protocol.Topics("sg/v1")
    changes = roster.refresh_all(session.get_bind(), settings=SETTINGS, publisher=out, topics=topics, today=WED)
    assert [(c.school, c.version) for c in changes] == [("s1", version + 1)]
    assert [(topic, retain) for topic, _, retain in out.messages] == [
        ("sg/v1/s1/roster/delta", False), ("sg/v1/s1/roster", True)]
    delta = json.loads(out.messages[0][1])
    assert [(s["id"], s["enrolled"], s["groups"]) for s in delta["students"]] == [("S1", False, [])]
    # Later rounds on the same day send nothing more.
    assert roster.refresh_all(session.get_bind(), settings=SETTINGS, publisher=out, topics=topics, today=WED) == []


def test_through_the_api_a_withdrawal_as_of_a_later_date_leaves_the_child_with_their_teacher(world):
    api, admin = "/api/v1/schools/s1", world.as_("admin1")

    def teacher_sees():
        return [s["student_no"] for s in world.client.get(f"{api}/students", headers=world.as_("teacherB")).json()]

    row = world.client.get(f"{api}/enrollments", params={"student": "B1"}, headers=admin).json()[-1]
    later = world.client.post(f"{api}/enrollments/{row['id']}/withdraw", headers=admin,
                              json={"request": "家长书面申请退出", "effective_on": "2099-09-01"})
    assert later.status_code == 200 and later.json()["state"] == "withdrawn", later.text
    assert teacher_sees() == ["B1"]  # still in teacherB's group until 2099-09-01
    assert world.client.get(f"{api}/roster", headers=admin).json()["enrolled"] == 2  # A1 and B1
    group = world.client.get(f"{api}/groups", headers=admin).json()
    assert {g["name"]: g["enrolled"] for g in group} == {"groupA": 1, "groupB": 1}


# --- a group takes the grades it names ------------------------------------------------------------


def fifth_grader(session, school) -> Student:
    klass = SchoolClass(school_id=school.id, grade="五年级", name="2班")
    session.add(klass)
    session.flush()
    child = Student(school_id=school.id, class_id=klass.id, student_no="F1", name="五年级学生")
    guardian = Guardian(school_id=school.id, name="五年级家长", phone="13800000005")
    session.add_all([child, guardian])
    session.flush()
    session.add(GuardianLink(guardian_id=guardian.id, student_id=child.id))
    session.commit()
    return child


def test_a_child_cannot_apply_to_or_be_placed_in_a_group_of_another_grade(db):
    session, school, group = db  # group 阅读 takes 三年级 only
    fifth_grader(session, school)
    with pytest.raises(Invalid) as refused:
        application(session, school, group, "F1")
    assert str(refused.value) == "学生 F1（五年级）不能参加兴趣组“阅读”：该组只面向三年级"
    assert refused.value.text("en") == "student F1 (五年级) cannot join group '阅读': it is only for 三年级"
    # Applying without a group does not get round it: the school's placement is refused the same way.
    row = enr.apply(session, school=school, actor="admin", data=EnrollmentCreate(
        student="F1", guardian_id=guardian_of(session, "F1"), application="申请参加课后服务"))
    enr.review(session, school=school, enrollment_id=row.id, actor="t")
    with pytest.raises(Invalid, match="只面向三年级"):
        enr.approve(session, school=school, enrollment_id=row.id, group_id=group.id, actor="admin")
    session.rollback()
    session.refresh(row)
    assert (row.state, row.group_id) == ("class_reviewed", None)


def test_a_group_for_several_grades_takes_a_child_of_each(db):
    session, school, _ = db
    fifth_grader(session, school)
    mixed = groups.create_group(session, school=school, actor="admin", settings=SETTINGS, data=InterestGroupCreate(
        name="合唱", category="arts", capacity=30, place="音乐室", grades=["三年级", "五年级"]))
    for no in ("S1", "F1"):
        row = application(session, school, mixed, no)
        enr.review(session, school=school, enrollment_id=row.id, actor="t")
        assert enr.approve(session, school=school, enrollment_id=row.id, actor="admin").state == "approved"


def test_through_the_api_an_application_to_another_grades_group_is_a_localized_422(world):
    api, admin = "/api/v1/schools/s1", world.as_("admin1")
    older = world.client.post(f"{api}/groups", headers=admin, json={
        "name": "五年级篮球", "category": "sports", "capacity": 20, "place": "操场", "grades": ["五年级", "六年级"]})
    assert older.status_code == 201, older.text
    body = {"student": "A1", "guardian_id": world.ids["gA"], "application": "申请", "group_id": older.json()["id"]}
    r = world.client.post(f"{api}/enrollments", json=body, headers=world.as_("parentA"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["msg"] == "学生 A1（三年级）不能参加兴趣组“五年级篮球”：该组只面向五年级/六年级"
    r = world.client.post(f"{api}/enrollments", json=body, headers=world.as_("parentA") | {"Accept-Language": "en"})
    assert r.json()["detail"][0]["msg"] == "student A1 (三年级) cannot join group '五年级篮球': it is only for 五年级/六年级"
    assert world.client.get(f"{api}/enrollments", params={"student": "A1"}, headers=admin).json()[-1]["group_id"] == world.ids["groupA"]


def test_a_withdrawal_is_committed_with_its_request_and_its_date_in_the_history(db):
    # Seen from another session: the service commits, and the step says from when (P7.4).
    session, school, group = db
    leaving = walk(session, school, application(session, school, group, "S1"), "active")
    enr.withdraw(session, school=school, enrollment_id=leaving.id, request="  家长书面申请退出  ", effective_on=WED,
                 actor="admin")
    with Session(session.get_bind()) as other:
        row = other.get(Enrollment, leaving.id)
        assert (row.state, row.withdrawn_on, row.withdrawal_request) == ("withdrawn", WED, "家长书面申请退出")
        last = other.exec(select(EnrollmentStep).where(EnrollmentStep.enrollment_id == leaving.id)
                          .order_by(EnrollmentStep.id.desc())).first()
        assert (last.from_state, last.to_state, last.actor, last.note) == ("active", "withdrawn", "admin", f"effective {WED.isoformat()}")
