"""Excused absences (请假, issue 14): the teacher of the child's group excuses a day with a note, audited."""

from __future__ import annotations

import json

from sqlmodel import col, select

from central.core.audit import AuditLog
from central.programme.models import AbsenceExcuse

DAY = "2030-10-08"


def test_the_teacher_excuses_their_child_and_the_note_is_audited(world):
    r = world.client.put(f"/api/v1/schools/s1/students/A1/absences/{DAY}", json={"note": "发烧"}, headers=world.as_("teacherA"))
    assert r.status_code == 200, r.text
    assert (r.json()["student_no"], r.json()["day"], r.json()["note"]) == ("A1", DAY, "发烧")
    # Again: the note changes, still one row for the child and the day.
    r = world.client.put(f"/api/v1/schools/s1/students/A1/absences/{DAY}", json={"note": "发烧，家长来电"}, headers=world.as_("teacherA"))
    assert r.status_code == 200
    with world.session() as session:
        rows = session.exec(select(AbsenceExcuse)).all()
        assert [(row.student_id, row.note) for row in rows] == [(world.ids["A1"], "发烧，家长来电")]
        logged = session.exec(select(AuditLog).where(col(AuditLog.entity).startswith("absence_excuse")).order_by(AuditLog.seq)).all()
    assert [entry.action for entry in logged] == ["absence_excuse.create", "absence_excuse.update"]
    assert {entry.actor for entry in logged} == {"user:teacherA"}
    assert json.loads(logged[1].after)["note"] == "发烧，家长来电"


def test_a_teacher_excuses_no_child_of_another_teachers_group(world):
    r = world.client.put(f"/api/v1/schools/s1/students/B1/absences/{DAY}", json={"note": "x"}, headers=world.as_("teacherA"))
    assert r.status_code == 404
    with world.session() as session:
        assert session.exec(select(AbsenceExcuse)).all() == []


def test_the_days_excuses_list_only_the_children_the_caller_sees(world):
    for child in ("A1", "B1"):
        r = world.client.put(f"/api/v1/schools/s1/students/{child}/absences/{DAY}", json={"note": child}, headers=world.as_("admin1"))
        assert r.status_code == 200
    got = lambda user: [(e["student_no"], e["note"]) for e in world.client.get("/api/v1/schools/s1/absences", params={"day": DAY}, headers=world.as_(user)).json()]
    assert got("admin1") == [("A1", "A1"), ("B1", "B1")]
    assert got("teacherA") == [("A1", "A1")]
    assert world.client.get("/api/v1/schools/s1/absences", params={"day": "2030-10-09"}, headers=world.as_("admin1")).json() == []


def test_a_note_too_long_is_refused(world):
    r = world.client.put(f"/api/v1/schools/s1/students/A1/absences/{DAY}", json={"note": "长" * 501}, headers=world.as_("teacherA"))
    assert r.status_code == 422
