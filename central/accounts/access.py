"""Roles, the caller (``Principal``), and who may see or act for which child; the log of every child read by staff.

Roles (POLICY.md "Who uses the system"): ``district`` sees every school; every other role belongs to
one school. A ``teacher`` sees the children of the groups they are in charge of, a ``guardian`` the
children they are linked to (never one they are barred from). Accounts and logins are in ``users.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, col, select

from central.accounts.models import ChildRead
from central.core import clock
from central.core.errors import Missing
from central.schools.links import link_holds
from central.schools.models import GuardianLink, School, Student


class Role(StrEnum):
    DISTRICT = "district"
    SCHOOL_ADMIN = "school_admin"
    TEACHER = "teacher"
    GUARD = "guard"
    FINANCE = "finance"
    GUARDIAN = "guardian"


STAFF_ROLES = frozenset(Role) - {Role.GUARDIAN}
# Roles that see every child of their school; a teacher and a guardian see fewer (see student_filter).
SCHOOL_WIDE = frozenset({Role.DISTRICT, Role.SCHOOL_ADMIN, Role.GUARD, Role.FINANCE})
# P7.3: whose family is registered poor (建档立卡) — and so every statement, exemption and money line
# naming a child — is seen by finance and the school admin only: never a teacher, a guard, a guardian,
# nor the district (which sees a school's totals, not its children's flags).
POVERTY_READERS = frozenset({Role.SCHOOL_ADMIN, Role.FINANCE})
# Enrollment states in which a group's teacher sees the child (applied ones too: they review them).
TEACHER_VISIBLE_STATES = ("applied", "class_reviewed", "approved", "active")


@dataclass(frozen=True)
class Principal:
    """Who is asking: a logged-in user, or the service token (district role, no user row)."""

    role: Role
    username: str
    user_id: int | None = None
    school_id: int | None = None
    school_code: str | None = None
    guardian_id: int | None = None
    staff_id: int | None = None

    @property
    def label(self) -> str:
        return f"user:{self.username}" if self.user_id is not None else self.username

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    def may_use_school(self, code: str) -> bool:
        return self.role is Role.DISTRICT or self.school_code == code


SERVICE = Principal(role=Role.DISTRICT, username="service-token")
CLI = "cli"  # the actor of changes made with the ``schoolgate central`` commands


# --- which children a caller may see ------------------------------------------------------------


def teacher_group_ids(principal: Principal) -> sa.Select:
    """The groups a teacher is in charge of: the only applications they may review or reject."""
    from central.programme.models import InterestGroup

    return select(InterestGroup.id).where(
        InterestGroup.staff_id == principal.staff_id, InterestGroup.school_id == principal.school_id
    )


def teacher_student_ids(principal: Principal, day: date) -> sa.Select:
    """Children with an open enrollment in a group the teacher is in charge of, or still in it on
    ``day`` (the school's date) after a withdrawal as of a later date (P7.4).

    The hook between accounts and the service's tables (central/programme/models.py): a teacher's reach is
    defined here and only here, so routes never work it out on their own.
    """
    from central.programme.models import Enrollment, enrollment_in_service

    return select(Enrollment.student_id).where(
        col(Enrollment.group_id).in_(teacher_group_ids(principal)),
        sa.or_(col(Enrollment.state).in_(TEACHER_VISIBLE_STATES), enrollment_in_service(day)),
    )


def guardian_student_ids(principal: Principal, school: School) -> sa.Select:
    """Children the guardian is linked to today (the school's date); a custody bar or a link out of its
    dates hides the child (P9.4)."""
    return select(GuardianLink.student_id).where(
        GuardianLink.guardian_id == principal.guardian_id, link_holds(clock.local_today(school))
    )


def student_filter(principal: Principal, school: School) -> sa.ColumnElement[bool]:
    """The WHERE clause of the students of ``school`` that ``principal`` may see."""
    in_school = Student.school_id == school.id
    if not principal.may_use_school(school.code):
        return sa.false()
    if principal.role in SCHOOL_WIDE:
        return in_school
    if principal.role is Role.TEACHER and principal.staff_id is not None:
        return sa.and_(in_school, col(Student.id).in_(teacher_student_ids(principal, clock.local_today(school))))
    if principal.role is Role.GUARDIAN and principal.guardian_id is not None:
        return sa.and_(in_school, col(Student.id).in_(guardian_student_ids(principal, school)))
    return sa.false()


def log_child_reads(session: Session, *, principal: Principal, students: list[Student], what: str) -> None:
    """Record that a member of staff read these children's records; a guardian's own reads are not staff reads."""
    if not principal.is_staff or not students:
        return
    now = clock.utcnow()
    session.add_all(
        ChildRead(school_id=s.school_id, student_id=s.id, actor=principal.label, what=what, at=now) for s in students
    )
    session.commit()


def visible_students(session: Session, *, principal: Principal, school: School, what: str = "student_list") -> list[Student]:
    """The children of a school the caller may see, each read logged for staff."""
    students = list(session.exec(select(Student).where(student_filter(principal, school)).order_by(Student.student_no)))
    log_child_reads(session, principal=principal, students=students, what=what)
    return students


def find_student(session: Session, *, principal: Principal, school: School, student_no: str) -> Student:
    """One child the caller may see, without logging the read (the caller logs what it shows)."""
    student = session.exec(
        select(Student).where(Student.student_no == student_no, student_filter(principal, school))
    ).first()
    if student is None:
        # Not "forbidden": a caller who may not see the child does not learn that it exists.
        raise Missing("no_student", student=student_no)
    return student


def read_student(session: Session, *, principal: Principal, school: School, student_no: str, what: str = "student") -> Student:
    student = find_student(session, principal=principal, school=school, student_no=student_no)
    log_child_reads(session, principal=principal, students=[student], what=what)
    return student


def child_reads(session: Session, *, school: School, student_id: int | None = None, limit: int = 100) -> list[ChildRead]:
    stmt = select(ChildRead).where(ChildRead.school_id == school.id).order_by(col(ChildRead.id).desc()).limit(limit)
    if student_id is not None:
        stmt = stmt.where(ChildRead.student_id == student_id)
    return list(session.exec(stmt))
