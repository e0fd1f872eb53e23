"""Accounts, the audit log and the log of child-record reads: for the district and school admins."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field
from sqlmodel import SQLModel, select

from central.accounts import access as accounts

from central.accounts.access import Principal, Role
from central.accounts import users
from central.accounts.models import User
from central.api.deps import MAX_ID, IdPath, SchoolDep, SessionDep, require_role
from central.core import audit, clock
from central.schools import registry
from central.schools.models import School, Student

router = APIRouter(tags=["users"])
Admin = Annotated[Principal, Depends(require_role(Role.DISTRICT, Role.SCHOOL_ADMIN))]


class UserCreate(SQLModel):
    username: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=10, max_length=256)
    role: Role
    school: str | None = Field(default=None, max_length=64)
    guardian_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    staff_id: int | None = Field(default=None, ge=1, le=MAX_ID)


class UserUpdate(SQLModel):
    active: bool | None = None
    password: str | None = Field(default=None, min_length=10, max_length=256)


class UserPublic(SQLModel):
    id: int
    username: str
    role: Role
    school: str | None
    guardian_id: int | None
    staff_id: int | None
    active: bool
    created_at: datetime


class AuditPublic(SQLModel):
    seq: int
    at: datetime
    actor: str
    action: str
    entity: str
    school_id: int | None
    before: Any
    after: Any
    prev: str
    hash: str


class ChildReadPublic(SQLModel):
    student: str
    actor: str
    what: str
    at: datetime


def _public(session, user: User) -> UserPublic:
    school = session.get(School, user.school_id) if user.school_id is not None else None
    return UserPublic(
        id=user.id,
        username=user.username,
        role=Role(user.role),
        school=school.code if school else None,
        guardian_id=user.guardian_id,
        staff_id=user.staff_id,
        active=user.active,
        created_at=clock.as_utc(user.created_at),
    )


@router.post("/users", status_code=201)
def create_user(body: UserCreate, session: SessionDep, principal: Admin) -> UserPublic:
    user = users.create_user(session, actor=principal, **body.model_dump())
    return _public(session, user)


@router.get("/users")
def list_users(session: SessionDep, principal: Admin) -> list[UserPublic]:
    return [_public(session, u) for u in users.list_users(session, actor=principal)]


@router.patch("/users/{user_id}")
def update_user(user_id: IdPath, body: UserUpdate, session: SessionDep, principal: Admin) -> UserPublic:
    user = users.update_user(session, actor=principal, user_id=user_id, active=body.active, password=body.password)
    return _public(session, user)


@router.get("/audit")
def list_audit(
    session: SessionDep,
    principal: Admin,
    school: Annotated[str | None, Query(max_length=64)] = None,
    after_seq: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditPublic]:
    """The district reads every school's rows (or one school's); a school admin their school's."""
    school_id = principal.school_id
    if principal.role is Role.DISTRICT and school is not None:
        school_id = registry.get_school(session, school).id
    rows = audit.list_rows(session, school_id=school_id, after_seq=after_seq, limit=limit)
    return [
        AuditPublic(**{**r.model_dump(exclude={"id", "before", "after"}), "at": clock.as_utc(r.at), "before": json.loads(r.before), "after": json.loads(r.after)})
        for r in rows
    ]


@router.get("/schools/{school}/child-reads")
def list_child_reads(
    school: SchoolDep,
    session: SessionDep,
    principal: Admin,
    student: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ChildReadPublic]:
    """Who read which child's record, newest first (a school's safety review)."""
    student_id = None
    if student is not None:
        child = accounts.find_student(session, principal=principal, school=school, student_no=student)
        student_id = child.id
    reads = accounts.child_reads(session, school=school, student_id=student_id, limit=limit)
    numbers = dict(session.exec(select(Student.id, Student.student_no).where(Student.school_id == school.id)).all())
    return [ChildReadPublic(student=numbers[r.student_id], actor=r.actor, what=r.what, at=clock.as_utc(r.at)) for r in reads]
