"""Enrollment by consent (P2.1, P2.2): application, class review, approval, three signatures, withdrawal.

Each action is one POST that moves the enrollment one step; central/programme/enrollment.py refuses any skip.
A guardian acts only for their own children; the change reaches the kiosks as a new roster version.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlmodel import Session

from central.accounts import access as accounts
from central.accounts.access import Principal, Role
from central.api.deps import ERROR_RESPONSES, IdPath, SchoolDep, SessionDep, require_role
from central.core import clock
from central.core.columns import MAX_ID, RowId
from central.core.errors import Forbidden, Missing
from central.programme import enrollment
from central.programme.models import Enrollment, EnrollmentCreate, EnrollmentPublic
from central.schools.models import School

router = APIRouter(prefix="/schools/{school}/enrollments", tags=["enrollments"], responses=ERROR_RESPONSES)
# The district reads every school's enrollments and inspects; it takes no step in them (P2.1).
Applicant = Annotated[Principal, Depends(require_role("school_admin", "guardian"))]
Reviewer = Annotated[Principal, Depends(require_role("school_admin", "teacher"))]
Admin = Annotated[Principal, Depends(require_role("school_admin"))]
Reader = Annotated[Principal, Depends(require_role("school_admin", "district", "teacher", "guardian"))]
# P2.2: a school admin signs for the school (and records paper forms); a guardian signs in their own account.
Signer = Annotated[Principal, Depends(require_role("school_admin", "guardian"))]

class ApproveIn(BaseModel):
    group_id: RowId | None = None  # the group to place the student in, if the application named none
    note: str = Field(default="", max_length=1000)


class ReviewIn(BaseModel):
    note: str = Field(default="", max_length=1000)


class SignIn(BaseModel):
    party: str = Field(description="school, guardian or student (P2.2)")
    signer: str = Field(min_length=1, max_length=100, description="the name signed")
    notice_version: int = Field(ge=1, le=MAX_ID)
    guardian_id: RowId | None = Field(
        default=None, description="who signed for the guardian or student; a guardian's own account signs as itself"
    )
    paper: bool = Field(
        default=False, description="a school admin records the guardian's or student's signature from a signed paper form"
    )


class RejectIn(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


class WithdrawIn(BaseModel):
    request: str = Field(min_length=1, max_length=5000, description="the written request (P7.4)")
    effective_on: date


def _visible_ids(user: Principal, school: School):
    """The students whose enrollments this caller may see, or None for all of the school's."""
    if user.role is Role.GUARDIAN:
        return accounts.guardian_student_ids(user, school)
    if user.role is Role.TEACHER:
        return accounts.teacher_student_ids(user, clock.local_today(school))
    return None


def _row(session: Session, user: Principal, school: School, enrollment_id: IdPath, *, reviewing: bool = False) -> Enrollment:
    row = enrollment.get(session, school=school, enrollment_id=enrollment_id)
    ids = _visible_ids(user, school)
    if ids is not None and row.student_id not in set(session.exec(ids)):
        raise Missing("enrollment.missing", id=enrollment_id)  # not "forbidden": do not reveal it exists
    if reviewing and user.role is Role.TEACHER and row.group_id not in set(session.exec(accounts.teacher_group_ids(user))):
        # A teacher reviews (or rejects) applications to their own groups only, even for a child
        # they see because of another group.
        raise Missing("enrollment.missing", id=enrollment_id)
    return row


def _out(session: Session, row: Enrollment) -> EnrollmentPublic:
    # The steps that change who is in the service (activation, withdrawal) record RosterChanged in
    # central/programme/enrollment.py; the kiosks get a new roster version after the commit.
    return enrollment.public(session, row)


@router.post("", status_code=201)
def apply(school: SchoolDep, body: EnrollmentCreate, session: SessionDep, user: Applicant) -> EnrollmentPublic:
    """The guardian's written application (家长申请); a school admin may enter a paper one."""
    if user.role is Role.GUARDIAN and body.guardian_id != user.guardian_id:
        raise Forbidden("enrollment.guardian_only_own")
    if user.role is Role.GUARDIAN:
        # The same answer for a student number that does not exist and one that is not theirs: a
        # guardian learns nothing of the school's other children, not even which numbers exist.
        accounts.find_student(session, principal=user, school=school, student_no=body.student)
    row = enrollment.apply(session, school=school, data=body, actor=user.label)
    return _out(session, row)


@router.get("")
def list_enrollments(
    school: SchoolDep, session: SessionDep, user: Reader, state: str | None = None, group_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    student: str | None = None,
) -> list[EnrollmentPublic]:
    rows = enrollment.list_enrollments(session, school=school, state=state, group_id=group_id, student=student)
    ids = _visible_ids(user, school)
    if ids is not None:
        allowed = set(session.exec(ids))
        rows = [r for r in rows if r.student_id in allowed]
    return [enrollment.public(session, r) for r in rows]


@router.get("/{enrollment_id}")
def get_enrollment(school: SchoolDep, enrollment_id: IdPath, session: SessionDep, user: Reader) -> EnrollmentPublic:
    return enrollment.public(session, _row(session, user, school, enrollment_id))


@router.post("/{enrollment_id}/review")
def review(school: SchoolDep, enrollment_id: IdPath, body: ReviewIn, session: SessionDep, user: Reviewer) -> EnrollmentPublic:
    """The class teacher's review (班级审核)."""
    _row(session, user, school, enrollment_id, reviewing=True)
    row = enrollment.review(session, school=school, enrollment_id=enrollment_id, actor=user.label, note=body.note)
    return _out(session, row)


@router.post("/{enrollment_id}/approve")
def approve(school: SchoolDep, enrollment_id: IdPath, body: ApproveIn, session: SessionDep, user: Admin) -> EnrollmentPublic:
    """The school's approval into a group with a free place (学校统一实施)."""
    row = enrollment.approve(
        session, school=school, enrollment_id=enrollment_id, group_id=body.group_id, actor=user.label, note=body.note
    )
    return _out(session, row)


@router.post("/{enrollment_id}/signatures")
def sign(school: SchoolDep, enrollment_id: IdPath, body: SignIn, session: SessionDep, user: Signer) -> EnrollmentPublic:
    """One party's signature of the current notice; the third makes the enrollment active (P2.2).

    The school's: a school admin. The guardian's and the student's: the guardian in their own account,
    or a school admin recording the signed paper form (``paper: true``, kept on the signature).
    """
    _row(session, user, school, enrollment_id)
    guardian_id = body.guardian_id
    if user.role is Role.GUARDIAN:
        if guardian_id not in (None, user.guardian_id):
            raise Forbidden("enrollment.guardian_only_own")
        guardian_id = user.guardian_id
    row = enrollment.sign(
        session, school=school, enrollment_id=enrollment_id, party=body.party, signer=body.signer,
        notice_version=body.notice_version, guardian_id=guardian_id, paper=body.paper, actor=user.label,
        role=user.role.value,
    )
    return _out(session, row)


@router.post("/{enrollment_id}/reject")
def reject(school: SchoolDep, enrollment_id: IdPath, body: RejectIn, session: SessionDep, user: Reviewer) -> EnrollmentPublic:
    _row(session, user, school, enrollment_id, reviewing=True)
    row = enrollment.reject(session, school=school, enrollment_id=enrollment_id, reason=body.reason, actor=user.label)
    return _out(session, row)


@router.post("/{enrollment_id}/withdraw")
def withdraw(school: SchoolDep, enrollment_id: IdPath, body: WithdrawIn, session: SessionDep, user: Applicant) -> EnrollmentPublic:
    """The guardian's written request to stop (P7.4), as of ``effective_on``."""
    _row(session, user, school, enrollment_id)
    row = enrollment.withdraw(
        session, school=school, enrollment_id=enrollment_id, request=body.request, effective_on=body.effective_on,
        actor=user.label,
    )
    return _out(session, row)
