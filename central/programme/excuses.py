"""Excused absences (请假): a child's absence on one school day, excused with a note by the teacher in
charge or the school (the live roster shows the child absent and excused).

One row per child and day; excusing again changes the note. Every change is audited (the session's
actor, ``absence_excuse`` in central/core/audit.py). Who may excuse which child is the caller's
business (the route or page resolves the child through the caller's reach first).
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, col, select

from central.core.events import AbsenceExcused, record
from central.core.errors import Invalid
from central.programme.models import AbsenceExcuse
from central.schools.models import School, Student

NOTE_MAX = 500


def excuse(session: Session, *, school: School, student: Student, day: date, note: str, by_user_id: int | None) -> AbsenceExcuse:
    """Excuse ``student``'s absence on ``day`` (the school's date) with ``note``; again: the note changes."""
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise Invalid("excuse.note_too_long", max=NOTE_MAX)
    if student.school_id != school.id:
        raise Invalid("excuse.other_school")
    row = session.exec(select(AbsenceExcuse).where(AbsenceExcuse.student_id == student.id, AbsenceExcuse.day == day)).first()
    if row is None:
        row = AbsenceExcuse(school_id=school.id, student_id=student.id, day=day, note=note, by_user_id=by_user_id)
        session.add(row)
    elif row.note != note:
        row.note, row.by_user_id = note, by_user_id
    else:
        return row
    record(session, AbsenceExcused(school.id, student.id, day))
    session.commit()
    session.refresh(row)
    return row


def excused_on(session: Session, *, school: School, day: date, student_ids: list[int] | None = None) -> dict[int, AbsenceExcuse]:
    """The excuses of ``day`` at ``school`` by student id (of ``student_ids`` only, when given)."""
    stmt = select(AbsenceExcuse).where(AbsenceExcuse.school_id == school.id, AbsenceExcuse.day == day)
    if student_ids is not None:
        if not student_ids:
            return {}
        stmt = stmt.where(col(AbsenceExcuse.student_id).in_(student_ids))
    return {row.student_id: row for row in session.exec(stmt)}
