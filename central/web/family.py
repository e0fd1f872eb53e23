"""The guardian's page, ``/guardian`` (phone first): my children today (on site, gone with whom,
absent), the current notice to sign as guardian and as the child's representative, one-time pickup
codes to issue and revoke, a day's leave to ask for.

Every action goes through the service the API uses — ``enrollment.sign`` (the third signature makes
the child active), ``pickup.codes.issue_code`` / ``revoke_code``, ``programme.excuses.excuse`` (the
teacher's roster shows the day excused) — with the guardian's own reach: a child the account is not
linked to today answers 404, as if it did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from central.accounts import access as accounts
from central.accounts.access import Principal, Role
from central.core import clock
from central.core.errors import Missing, status_of
from central.core.i18n import LocalizedError, t
from central.pickup import codes as pickup
from central.pickup.models import PickupCodeIssued
from central.programme import enrollment, excuses
from central.programme.models import CareSession, Enrollment, InterestGroup, Notice, NoticeSignature
from central.schools.models import GuardianLink, School, Student
from central.web import roster as live_roster
from central.web import session as web_session
from central.web.pages import DbDep, PageError, caller, check_csrf, render, school_of

router = APIRouter(include_in_schema=False)
GUARDIANS = frozenset({Role.GUARDIAN})
#: how far ahead a guardian may ask for a day's leave
LEAVE_DAYS_AHEAD = 30


@dataclass
class ToSign:
    enrollment_id: int
    group: str
    signed: set[str] = field(default_factory=set)  # parties that signed the current notice


@dataclass
class MyChild:
    student_no: str
    name: str
    relation: str
    today: live_roster.Child
    in_session: bool  # the child has a session today
    to_sign: list[ToSign] = field(default_factory=list)


def _school(db: Session, principal: Principal) -> School:
    if not principal.school_code or principal.guardian_id is None:
        raise PageError(404, "web.not_found")
    return school_of(db, principal, None)


def my_children(db: Session, *, principal: Principal, school: School, settings) -> tuple[list[MyChild], Notice | None]:
    """The guardian's children (linked today) as the gates saw them today, and the enrollments of theirs
    waiting for the current notice's signatures."""
    day, now = clock.local_today(school), clock.utcnow()
    rows = db.exec(
        select(Student, GuardianLink.relation)
        .join(GuardianLink, col(GuardianLink.student_id) == Student.id)
        .where(GuardianLink.guardian_id == principal.guardian_id, accounts.student_filter(principal, school))
        .order_by(col(Student.student_no))
    ).all()
    sessions = list(db.exec(select(CareSession).where(CareSession.school_id == school.id, CareSession.day == day)
                            .order_by(CareSession.starts_at, CareSession.id)))
    seen: dict[str, live_roster.Child] = {}
    for r in live_roster.build(db, school=school, rows=sessions, settings=settings, now=now):
        for c in r.children:
            seen.setdefault(c.student_no, c)
    moves = live_roster.day_moves(db, school=school, day=day) if rows else None
    notice = enrollment.current_notice(db, school=school)
    out = []
    for student, relation in rows:
        child = seen.get(student.student_no)
        in_session = child is not None
        if child is None:  # no session today: what the gates saw, if anything
            child = live_roster.Child(student_no=student.student_no, name=student.name, class_name="", state="none")
            last = moves.last.get(student.student_no) if moves else None
            if last is not None:
                event, gate = moves.first_in.get(student.student_no, last) if last[0].kind == "checkin" else last
                child.since, child.gate = clock.as_utc(event.at).astimezone(clock.zone(school)), gate
                child.state, child.kind = ("on_site", "") if last[0].kind == "checkin" else ("gone", event.kind)
                if event.kind == "pickup":  # who took the child, as the teacher's roster says it
                    child.by, child.relation = live_roster.taker(live_roster.takers(db, [event.guardian or ""]), event, student.id)
            child.excused = student.id in excuses.excused_on(db, school=school, day=day, student_ids=[student.id])
        mine = MyChild(student_no=student.student_no, name=student.name, relation=relation, today=child, in_session=in_session)
        if notice is not None:
            for e in db.exec(select(Enrollment).where(Enrollment.student_id == student.id, Enrollment.state == enrollment.APPROVED)
                             .order_by(col(Enrollment.id))):
                signed = set(db.exec(select(NoticeSignature.party).where(NoticeSignature.enrollment_id == e.id,
                                                                         NoticeSignature.notice_id == notice.id)))
                group = db.get(InterestGroup, e.group_id) if e.group_id else None
                mine.to_sign.append(ToSign(enrollment_id=e.id, group=group.name if group else "", signed=signed))
        out.append(mine)
    return out, notice


def _page(request: Request, db: Session, principal: Principal, school: School, *, status: int = 200, error: str = "",
          issued: PickupCodeIssued | None = None) -> HTMLResponse:
    children, notice = my_children(db, principal=principal, school=school, settings=request.app.state.settings)
    today = clock.local_today(school)
    codes = [c for c in pickup.list_codes(db, principal=principal, school=school) if c.day >= today]
    names = {c.student_no: c.name for c in children}
    return render(request, "guardian.html", status=status, principal=principal, school=school, day=today, children=children,
                  notice=notice, codes=codes, names=names, issued=issued, error=error,
                  max_day=(today + timedelta(days=LEAVE_DAYS_AHEAD)).isoformat(),
                  code_max_day=(today + timedelta(days=pickup.MAX_DAYS_AHEAD)).isoformat())


def _refused(request: Request, db: Session, principal: Principal, school: School, exc: LocalizedError) -> HTMLResponse:
    if isinstance(exc, Missing):
        raise PageError(404, "web.not_found") from None
    db.rollback()
    return _page(request, db, principal, school, status=status_of(exc), error=exc.text(web_session.locale(request)))


def _own_child(db: Session, principal: Principal, school: School, student_no: str) -> Student:
    try:
        return accounts.find_student(db, principal=principal, school=school, student_no=student_no)
    except Missing:
        raise PageError(404, "web.not_found") from None


@router.get("/guardian")
def guardian(request: Request, db: DbDep) -> HTMLResponse:
    principal = caller(request, db, GUARDIANS)
    return _page(request, db, principal, _school(db, principal))


@router.post("/guardian/sign")
def sign(
    request: Request, db: DbDep, enrollment_id: Annotated[int, Form(ge=1, le=2**31 - 1)], party: Annotated[str, Form(max_length=16)],
    signer: Annotated[str, Form(max_length=100)] = "", notice_version: Annotated[int, Form(ge=0, le=2**31 - 1)] = 0,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Sign the current notice for one of my children's enrollments, as guardian or as the child's
    representative: the same service as ``POST …/enrollments/{id}/signatures`` from a guardian's account."""
    check_csrf(request, csrf)
    principal = caller(request, db, GUARDIANS)
    school = _school(db, principal)
    row = db.get(Enrollment, enrollment_id)
    mine = set(db.exec(accounts.guardian_student_ids(principal, school)))
    if row is None or row.school_id != school.id or row.student_id not in mine:
        raise PageError(404, "web.not_found")
    if party not in ("guardian", "student"):
        raise PageError(404, "web.not_found")
    try:
        enrollment.sign(db, school=school, enrollment_id=row.id, party=party, signer=signer, notice_version=notice_version,
                        actor=principal.label, role=principal.role.value, guardian_id=principal.guardian_id)
    except LocalizedError as exc:
        return _refused(request, db, principal, school, exc)
    return RedirectResponse("/guardian", status_code=303)


@router.post("/guardian/codes")
def issue_code(
    request: Request, db: DbDep, student: Annotated[str, Form(max_length=32)], person: Annotated[str, Form(max_length=100)] = "",
    day: Annotated[date | None, Form()] = None, csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Issue a one-time pickup code (``POST …/pickup-codes``): the page that answers shows it once."""
    check_csrf(request, csrf)
    principal = caller(request, db, GUARDIANS)
    school = _school(db, principal)
    _own_child(db, principal, school, student)
    try:
        issued = pickup.issue_code(db, principal=principal, school=school, student=student, day=day or clock.local_today(school),
                                   person=person, digits=request.app.state.settings.pickup_code_digits)
    except LocalizedError as exc:
        return _refused(request, db, principal, school, exc)
    return _page(request, db, principal, school, status=201, issued=issued)


@router.post("/guardian/codes/{code_id}/revoke")
def revoke_code(request: Request, db: DbDep, code_id: int, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    check_csrf(request, csrf)
    principal = caller(request, db, GUARDIANS)
    school = _school(db, principal)
    if not 1 <= code_id < 2**31:
        raise PageError(404, "web.not_found")
    try:
        pickup.revoke_code(db, principal=principal, school=school, code_id=code_id)
    except LocalizedError as exc:
        return _refused(request, db, principal, school, exc)
    return RedirectResponse("/guardian", status_code=303)


@router.post("/guardian/leave")
def leave(
    request: Request, db: DbDep, student: Annotated[str, Form(max_length=32)], day: Annotated[date | None, Form()] = None,
    note: Annotated[str, Form(max_length=excuses.NOTE_MAX)] = "", csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Ask for a day's leave (请假) for my child: the day is excused with the note (``programme.excuses``,
    audited) and the teacher's roster shows it."""
    check_csrf(request, csrf)
    principal = caller(request, db, GUARDIANS)
    school = _school(db, principal)
    child = _own_child(db, principal, school, student)
    today = clock.local_today(school)
    day = day or today
    if not today <= day <= today + timedelta(days=LEAVE_DAYS_AHEAD):
        return _page(request, db, principal, school, status=422, error=t("web.guardian.leave_day", web_session.locale(request), days=LEAVE_DAYS_AHEAD))
    excuses.excuse(db, school=school, student=child, day=day, note=note, by_user_id=principal.user_id)
    return RedirectResponse("/guardian", status_code=303)
