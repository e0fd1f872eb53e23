"""Enrollment by consent (P2.1, P2.2): the only way a student comes into the service.

    applied ──review──► class_reviewed ──approve──► approved ──3 signatures──► active
       │                     │                         │                         │
       └──────── reject / withdraw (any open state) ───┴─────── withdraw ────────┘

The guardian applies in writing (the text is kept), the class teacher reviews, the school approves
into a group (capacity, P4.1), and the enrollment turns active only once school, guardian and
student have each signed the same version of the notice (告知书). Every change is an
``EnrollmentStep`` row: from, to, who, when. No function here skips a step, and nothing else in
central writes ``Enrollment.state``.

A withdrawal is a written request as of a date (P7.4): it closes the enrollment at once, and an
active child stays in the service until that date (``programme.models.enrollment_in_service``).
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, col, func, select

from central.core import clock
from central.core.errors import Conflict, Forbidden, Invalid, Missing
from central.core.events import RosterChanged, record
from central.programme import groups as group_service
from central.programme.models import (
    Enrollment,
    EnrollmentCreate,
    EnrollmentPublic,
    EnrollmentStep,
    EnrollmentStepPublic,
    InterestGroup,
    Notice,
    NoticeSignature,
    SignaturePublic,
    enrollment_in_service,
)
from central.schools import links
from central.schools.models import Guardian, GuardianLink, School, SchoolClass, Student

APPLIED, CLASS_REVIEWED, APPROVED, ACTIVE = "applied", "class_reviewed", "approved", "active"
WITHDRAWN, REJECTED = "withdrawn", "rejected"
STATES = (APPLIED, CLASS_REVIEWED, APPROVED, ACTIVE, WITHDRAWN, REJECTED)
OPEN = (APPLIED, CLASS_REVIEWED, APPROVED, ACTIVE)
PARTIES = ("school", "guardian", "student")  # P2.2

# action -> (states it may start from, state it leads to). "activate" happens only through sign().
STEPS: dict[str, tuple[tuple[str, ...], str]] = {
    "review": ((APPLIED,), CLASS_REVIEWED),
    "approve": ((CLASS_REVIEWED,), APPROVED),
    "activate": ((APPROVED,), ACTIVE),
    "reject": ((APPLIED, CLASS_REVIEWED, APPROVED), REJECTED),
    "withdraw": (OPEN, WITHDRAWN),  # P2.1: voluntary, at any time
}


# --- the notice ----------------------------------------------------------------------------------


def publish_notice(session: Session, *, school: School, text: str, actor: str) -> Notice:
    """A new version of the school's notice; signatures of older versions do not count towards activation."""
    latest = session.exec(select(func.max(Notice.version)).where(Notice.school_id == school.id)).one() or 0
    notice = Notice(school_id=school.id, version=latest + 1, text=text, published_by=actor)
    session.add(notice)
    session.commit()
    session.refresh(notice)
    return notice


def current_notice(session: Session, *, school: School) -> Notice | None:
    stmt = select(Notice).where(Notice.school_id == school.id).order_by(col(Notice.version).desc())
    return session.exec(stmt).first()


# --- the chain -----------------------------------------------------------------------------------


def get(session: Session, *, school: School, enrollment_id: int) -> Enrollment:
    row = session.get(Enrollment, enrollment_id)
    if row is None or row.school_id != school.id:
        raise Missing("enrollment.missing", id=enrollment_id)
    return row


def _step(session: Session, row: Enrollment, action: str, actor: str, note: str = "") -> None:
    starts, to = STEPS[action]
    if row.state not in starts:
        if row.state in (WITHDRAWN, REJECTED):
            raise Conflict("enrollment.closed", id=row.id, state=row.state)
        raise Conflict("enrollment.step", id=row.id, state=row.state, action=action, needed=" / ".join(starts))
    session.add(EnrollmentStep(enrollment_id=row.id, from_state=row.state, to_state=to, actor=actor, note=note))
    row.state, row.updated_at = to, clock.utcnow()
    session.add(row)


def _done(session: Session, row: Enrollment, commit: bool) -> Enrollment:
    if commit:
        session.commit()
        session.refresh(row)
    else:
        session.flush()
    return row


def _check_guardian(session: Session, student_id: int, guardian_id: int) -> None:
    stmt = select(GuardianLink).where(GuardianLink.student_id == student_id, GuardianLink.guardian_id == guardian_id)
    link = session.exec(stmt).first()
    school = session.get(School, session.get(Student, student_id).school_id)
    # An ended or not yet started link acts for the child no more than a barred one (P9.4).
    if not links.link_acts_on(link, clock.local_today(school), pick_up=True):
        raise Invalid("enrollment.guardian", guardian=guardian_id)


def _check_grade(session: Session, student: Student, group: InterestGroup) -> None:
    """A child joins only a group of their own grade: the group names the grades it takes (P4.1),
    and its times follow those grades' dismissal (P3.3)."""
    grade = session.get(SchoolClass, student.class_id).grade.strip()
    if grade not in group.grades:
        raise Invalid("enrollment.grade", student=student.student_no, grade=grade, group=group.name,
                      grades="/".join(group.grades))


def _open_in_group(session: Session, student_id: int, group_id: int | None, other_than: int | None = None) -> Enrollment | None:
    stmt = select(Enrollment).where(Enrollment.student_id == student_id, col(Enrollment.state).in_(OPEN))
    stmt = stmt.where(Enrollment.group_id == group_id) if group_id is not None else stmt.where(col(Enrollment.group_id).is_(None))
    return next((e for e in session.exec(stmt) if e.id != other_than), None)


def has_open(session: Session, *, student_id: int) -> bool:
    stmt = select(Enrollment.id).where(Enrollment.student_id == student_id, col(Enrollment.state).in_(OPEN))
    return session.exec(stmt).first() is not None


def apply(session: Session, *, school: School, data: EnrollmentCreate, actor: str, commit: bool = True) -> Enrollment:
    """The guardian's written application (P2.1 家长申请)."""
    student = session.exec(select(Student).where(Student.school_id == school.id, Student.student_no == data.student)).first()
    if student is None:
        raise Missing("enrollment.student_missing", student=data.student)
    _check_guardian(session, student.id, data.guardian_id)
    if data.group_id is not None:
        _check_grade(session, student, group_service.get_group(session, school=school, group_id=data.group_id))
    return record_application(session, school=school, student_id=student.id, group_id=data.group_id,
                              guardian_id=data.guardian_id, application=data.application, actor=actor, commit=commit)


def record_application(
    session: Session, *, school: School, student_id: int, application: str, actor: str, group_id: int | None = None,
    guardian_id: int | None = None, commit: bool = True,
) -> Enrollment:
    """An application as received (also from a bulk import of paper forms): never more than ``applied``."""
    clash = _open_in_group(session, student_id, group_id)
    if clash is not None:
        raise Conflict("enrollment.duplicate", id=clash.id)
    row = Enrollment(school_id=school.id, student_id=student_id, group_id=group_id, guardian_id=guardian_id,
                     application=application, state=APPLIED)
    session.add(row)
    session.flush()
    session.add(EnrollmentStep(enrollment_id=row.id, from_state=None, to_state=APPLIED, actor=actor))
    return _done(session, row, commit)


def review(session: Session, *, school: School, enrollment_id: int, actor: str, note: str = "", commit: bool = True) -> Enrollment:
    """The class teacher's review (P2.1 班级审核)."""
    row = get(session, school=school, enrollment_id=enrollment_id)
    _step(session, row, "review", actor, note)
    return _done(session, row, commit)


def approve(
    session: Session, *, school: School, enrollment_id: int, actor: str, group_id: int | None = None, note: str = "",
    commit: bool = True,
) -> Enrollment:
    """The school's approval (P2.1 学校统一实施), placing the student in a group with a free place."""
    row = get(session, school=school, enrollment_id=enrollment_id)
    if row.state != CLASS_REVIEWED:
        _step(session, row, "approve", actor)  # raises with the state it needs
    group = group_service.get_group(session, school=school, group_id=group_id or row.group_id) if (
        group_id or row.group_id) else None
    if group is None:
        raise Invalid("enrollment.no_group")
    _check_grade(session, session.get(Student, row.student_id), group)
    clash = _open_in_group(session, row.student_id, group.id, other_than=row.id)
    if clash is not None:
        raise Conflict("enrollment.duplicate", id=clash.id)
    group_service.check_seat(session, group)
    row.group_id = group.id
    _step(session, row, "approve", actor, note)
    return _done(session, row, commit)


SCHOOL_ADMIN, GUARDIAN = "school_admin", "guardian"  # the roles that sign (central.accounts.access.Role values)


def _check_signer(party: str, role: str, paper: bool, guardian_id: int | None) -> None:
    """P2.2: who may put which party's signature on record."""
    if party == "school":
        if role != SCHOOL_ADMIN:
            raise Forbidden("enrollment.school_signs")
        if paper:
            raise Invalid("enrollment.paper_not_yours")  # the school signs as itself, not from a form
        return
    # The guardian's and the student's signatures: the guardian's own account, or a paper form.
    if role == GUARDIAN:
        if paper:
            raise Invalid("enrollment.paper_not_yours")
    elif role == SCHOOL_ADMIN:
        if not paper:
            raise Invalid("enrollment.paper_needed", party=party)
    else:
        raise Forbidden("enrollment.family_signs")


def sign(
    session: Session, *, school: School, enrollment_id: int, party: str, signer: str, notice_version: int, actor: str,
    role: str, guardian_id: int | None = None, paper: bool = False, commit: bool = True,
) -> Enrollment:
    """Record one party's signature of the notice (P2.2); the third signature of one version activates.

    ``role`` is the recording caller's: only a school admin signs for the school; the guardian's and
    the student's signatures come from a guardian's own account (``guardian_id`` theirs) or from a
    school admin recording the paper form (``paper=True``, kept on the signature).
    """
    row = get(session, school=school, enrollment_id=enrollment_id)
    if party not in PARTIES:
        raise Invalid("enrollment.party", party=party)
    _check_signer(party, role, paper, guardian_id)
    if row.state != APPROVED:
        _step(session, row, "activate", actor)  # raises: signatures come after approval
    notice = current_notice(session, school=school)
    if notice is None:
        raise Conflict("enrollment.no_notice")
    if notice_version != notice.version:
        raise Conflict("enrollment.old_notice", version=notice_version, latest=notice.version)
    if not signer.strip():
        raise Invalid("enrollment.signer")
    if party != "school" and guardian_id is not None:
        _check_guardian(session, row.student_id, guardian_id)
    stmt = select(NoticeSignature.party).where(NoticeSignature.enrollment_id == row.id, NoticeSignature.notice_id == notice.id)
    signed = set(session.exec(stmt))
    if party in signed:
        raise Conflict("enrollment.signed", party=party, version=notice.version)
    session.add(NoticeSignature(enrollment_id=row.id, notice_id=notice.id, party=party, signer=signer.strip()[:100],
                                guardian_id=guardian_id if party != "school" else None, recorded_by=actor,
                                paper=paper and party != "school"))
    if signed | {party} == set(PARTIES):
        _step(session, row, "activate", actor, f"notice v{notice.version}")
        record(session, RosterChanged(school.id))  # the child is in the service now
    return _done(session, row, commit)


def reject(session: Session, *, school: School, enrollment_id: int, reason: str, actor: str) -> Enrollment:
    row = get(session, school=school, enrollment_id=enrollment_id)
    if not reason.strip():
        raise Invalid("enrollment.reason")
    _step(session, row, "reject", actor, reason)
    row.rejection_reason = reason.strip()[:1000]
    return _done(session, row, True)


def withdraw(session: Session, *, school: School, enrollment_id: int, request: str, effective_on: date, actor: str) -> Enrollment:
    """The guardian's written request to stop (P7.4), recorded now, as of ``effective_on``.

    The state turns ``withdrawn`` at once (nothing moves a closed enrollment any more), but an active
    child stays in the service until ``effective_on`` and is out from that date on: every reader of
    "who is in" goes through ``programme.models.enrollment_in_service(day)``. The date is also where a refund
    will count from.
    """
    row = get(session, school=school, enrollment_id=enrollment_id)
    if not request.strip():
        raise Invalid("enrollment.request")
    _step(session, row, "withdraw", actor, f"effective {effective_on.isoformat()}")
    row.withdrawal_request, row.withdrawn_on = request.strip(), effective_on
    record(session, RosterChanged(school.id))  # out from ``effective_on``: the roster follows the date
    return _done(session, row, True)


# --- reading ---------------------------------------------------------------------------------------


def public(session: Session, row: Enrollment) -> EnrollmentPublic:
    student = session.get(Student, row.student_id)
    steps = session.exec(select(EnrollmentStep).where(EnrollmentStep.enrollment_id == row.id).order_by(EnrollmentStep.id))
    sigs = session.exec(
        select(NoticeSignature, Notice.version)
        .join(Notice, col(Notice.id) == NoticeSignature.notice_id)
        .where(NoticeSignature.enrollment_id == row.id)
        .order_by(NoticeSignature.id)
    )
    return EnrollmentPublic.model_validate(
        row,
        update={
            "student": student.student_no,
            "steps": [EnrollmentStepPublic.model_validate(s) for s in steps],
            "signatures": [SignaturePublic(party=s.party, signer=s.signer, notice_version=v, signed_at=s.signed_at,
                                           paper=s.paper, recorded_by=s.recorded_by) for s, v in sigs],
        },
    )


def list_enrollments(
    session: Session, *, school: School, state: str | None = None, group_id: int | None = None, student: str | None = None,
    limit: int = 500, offset: int = 0,
) -> list[Enrollment]:
    stmt = select(Enrollment).where(Enrollment.school_id == school.id)
    if state is not None:
        stmt = stmt.where(Enrollment.state == state)
    if group_id is not None:
        stmt = stmt.where(Enrollment.group_id == group_id)
    if student is not None:
        stmt = stmt.join(Student, col(Student.id) == Enrollment.student_id).where(Student.student_no == student)
    return list(session.exec(stmt.order_by(Enrollment.id).offset(offset).limit(limit)))


def active_groups(session: Session, *, school: School, day: date) -> dict[int, list[int]]:
    """student id -> the groups they are in on ``day`` (the school's date): what makes a student
    ``enrolled`` on the roster. A withdrawal as of a later date keeps the child in until then (P7.4)."""
    out: dict[int, set[int]] = {}
    stmt = select(Enrollment.student_id, Enrollment.group_id).where(
        Enrollment.school_id == school.id, enrollment_in_service(day)
    )
    for student_id, group_id in session.exec(stmt):
        out.setdefault(student_id, set()).add(group_id)  # a re-application while leaving may name the group twice
    return {student_id: sorted(groups) for student_id, groups in out.items()}


def enroll_through_chain(
    session: Session, *, school: School, student_ids: list[int], group_id: int, actor: str, application: str,
    school_signer: str,
) -> list[Enrollment]:
    """Take each student through every step, as a school admin does after collecting paper forms: the
    application, the class review, approval into ``group_id``, and the three signatures of the current
    notice (the guardian's and the student's recorded as paper forms). One transaction; each step goes
    through the same checks as the API's."""
    notice = current_notice(session, school=school)
    if notice is None:
        raise Conflict("enrollment.no_notice")
    out = []
    for student_id in student_ids:
        student = session.get(Student, student_id)
        link = session.exec(
            select(GuardianLink).where(GuardianLink.student_id == student_id, col(GuardianLink.barred).is_(False),
                                       col(GuardianLink.may_pick_up).is_(True)).order_by(GuardianLink.id)
        ).first()
        row = _open_in_group(session, student_id, None) or _open_in_group(session, student_id, group_id)
        if row is None:
            row = record_application(session, school=school, student_id=student_id, group_id=group_id,
                                     guardian_id=link.guardian_id if link else None, application=application,
                                     actor=actor, commit=False)
        kw = {"school": school, "enrollment_id": row.id, "actor": actor, "commit": False}
        if row.state == APPLIED:
            review(session, **kw)
        if row.state == CLASS_REVIEWED:
            approve(session, group_id=group_id, **kw)
        guardian = session.get(Guardian, link.guardian_id).name if link else "监护人"
        for party, signer in (("school", school_signer), ("guardian", guardian), ("student", student.name)):
            if row.state == APPROVED:
                sign(session, party=party, signer=signer, notice_version=notice.version, role=SCHOOL_ADMIN,
                     paper=party != "school", guardian_id=link.guardian_id if link and party != "school" else None,
                     **kw)
        out.append(row)
    session.commit()
    return out
