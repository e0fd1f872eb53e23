"""Children's records, as far as the caller may see them; every read by staff is logged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlmodel import SQLModel, col, select

from central.accounts import access as accounts
from central.accounts.access import Principal, Role
from central.api.deps import SchoolDep, SessionDep, require_role
from central.kiosks.roster import mask_phone
from central.schools.models import Guardian, GuardianLink, SchoolClass

router = APIRouter(prefix="/schools/{school}/students", tags=["students"])
Reader = Annotated[
    Principal,
    Depends(require_role(Role.DISTRICT, Role.SCHOOL_ADMIN, Role.TEACHER, Role.GUARD, Role.FINANCE, Role.GUARDIAN)),
]


class StudentPublic(SQLModel):
    student_no: str
    name: str
    class_name: str
    may_leave_alone: bool


class GuardianOfStudent(SQLModel):
    id: int
    name: str
    relation: str
    phone_masked: str  # never the whole number on a screen
    may_pick_up: bool
    barred: bool


class StudentDetail(StudentPublic):
    guardians: list[GuardianOfStudent]


def _class_names(session, school_id: int) -> dict[int, str]:
    return {c.id: f"{c.grade}{c.name}" for c in session.exec(select(SchoolClass).where(SchoolClass.school_id == school_id))}


@router.get("")
def list_students(school: SchoolDep, session: SessionDep, principal: Reader) -> list[StudentPublic]:
    """School-wide roles see every child, a teacher those of their groups, a guardian their own."""
    students = accounts.visible_students(session, principal=principal, school=school)
    names = _class_names(session, students[0].school_id) if students else {}
    return [
        StudentPublic(student_no=s.student_no, name=s.name, class_name=names.get(s.class_id, ""), may_leave_alone=s.may_leave_alone)
        for s in students
    ]


@router.get("/{student_no}")
def get_student(school: SchoolDep, student_no: str, session: SessionDep, principal: Reader) -> StudentDetail:
    child = accounts.read_student(session, principal=principal, school=school, student_no=student_no)
    links = session.exec(
        select(Guardian, GuardianLink)
        .join(GuardianLink, col(GuardianLink.guardian_id) == Guardian.id)
        .where(GuardianLink.student_id == child.id)
        .order_by(col(Guardian.id))
    ).all()
    return StudentDetail(
        student_no=child.student_no,
        name=child.name,
        class_name=_class_names(session, child.school_id).get(child.class_id, ""),
        may_leave_alone=child.may_leave_alone,
        guardians=[
            GuardianOfStudent(
                id=g.id, name=g.name, relation=link.relation, phone_masked=mask_phone(g.phone), may_pick_up=link.may_pick_up, barred=link.barred
            )
            for g, link in links
            # A guardian sees their own link only: not, say, the parent a custody order bars.
            if principal.role is not Role.GUARDIAN or g.id == principal.guardian_id
        ],
    )
