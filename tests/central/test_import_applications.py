"""A bulk import creates applications, never active enrollments (P2.1)."""

from __future__ import annotations

from sqlmodel import Session, select

from central.core.db import make_engine, migrate
from central.kiosks import roster
from central.programme.models import Enrollment, EnrollmentStep
from central.imports import importer
from central.schools.models import School


def test_imported_students_are_not_enrolled_and_marked_applications_wait_for_review(tmp_path):
    students = tmp_path / "学生.csv"
    students.write_text(
        "学号,姓名,年级,班级,卡号,建档立卡,报名\n1001,王一,三年级,1班,04A1B2C3,否,是\n1002,李二,三年级,1班,,否,否\n",
        encoding="utf-8",
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        result = importer.import_roster(session, school="s1", students=students, guardians=None, create_school=True)
        assert result.applications == 1
        rows = session.exec(select(Enrollment)).all()
        assert [(r.state, r.group_id) for r in rows] == [("applied", None)]
        step = session.exec(select(EnrollmentStep)).one()
        assert (step.from_state, step.to_state, step.actor) == (None, "applied", "import")
        # Importing the same file again adds no second application.
        assert importer.import_roster(session, school="s1", students=students, guardians=None).applications == 0
        school = session.exec(select(School)).one()
        people = roster.build_people(session, school)
        assert {s["id"]: s["enrolled"] for s in people["students"]} == {"1001": False, "1002": False}
    engine.dispose()
