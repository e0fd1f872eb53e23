"""Excused absences (请假): the teacher in charge of the child's group, or the school, excuses a day with
a note (audited); the live roster (/teacher) shows it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlmodel import select

from central.accounts import access as accounts
from central.accounts.access import Principal, Role
from central.api.deps import ERROR_RESPONSES, SchoolDep, SessionDep, require_role
from central.core import clock
from central.programme import excuses
from central.schools.models import Student

router = APIRouter(prefix="/schools/{school}", tags=["absences"], responses=ERROR_RESPONSES)
Excuser = Annotated[Principal, Depends(require_role(Role.SCHOOL_ADMIN, Role.TEACHER))]
Reader = Annotated[Principal, Depends(require_role(Role.DISTRICT, Role.SCHOOL_ADMIN, Role.TEACHER))]


class ExcuseIn(BaseModel):
    note: str = Field("", max_length=excuses.NOTE_MAX)


class ExcuseOut(BaseModel):
    student_no: str
    day: date
    note: str
    created_at: datetime


@router.put("/students/{student}/absences/{day}")
def excuse(school: SchoolDep, student: str, day: date, body: ExcuseIn, session: SessionDep, principal: Excuser) -> ExcuseOut:
    """Excuse the child's absence on ``day`` (the school's date) with a note; again: the note changes.
    A teacher excuses the children of the groups they are in charge of (another child: 404)."""
    child = accounts.find_student(session, principal=principal, school=school, student_no=student)
    row = excuses.excuse(session, school=school, student=child, day=day, note=body.note, by_user_id=principal.user_id)
    return ExcuseOut(student_no=child.student_no, day=row.day, note=row.note, created_at=clock.as_utc(row.created_at))


@router.get("/absences")
def excused(school: SchoolDep, session: SessionDep, principal: Reader, day: Annotated[date, Query()]) -> list[ExcuseOut]:
    """The excused absences of ``day`` among the children the caller may see."""
    visible = {s.id: s.student_no for s in session.exec(select(Student).where(accounts.student_filter(principal, school)))}
    rows = excuses.excused_on(session, school=school, day=day, student_ids=list(visible))
    return [
        ExcuseOut(student_no=visible[r.student_id], day=r.day, note=r.note, created_at=clock.as_utc(r.created_at))
        for r in sorted(rows.values(), key=lambda r: visible[r.student_id])
    ]
