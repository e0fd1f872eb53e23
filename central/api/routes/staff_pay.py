"""Staff pay (P8.1): the pay run of a month or a term by periods served, the admin's confirmation that makes it
final, and the school's share setting (at least 80 %)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, SchoolDep, SessionDep, require_role
from central.billing import staffpay
from central.billing.models import StaffPayIn, StaffPayRunPublic, StaffPaySettingIn, StaffPaySettingPublic

router = APIRouter(prefix="/schools/{school}/staff-pay", tags=["staff pay"], responses=ERROR_RESPONSES)
# Finance works the pay out; the school admin sets the share and confirms the month; the district
# inspects (P8.1: at least 80 % to serving staff). Colleagues' pay is not the teachers' or the gate's.
Finance = Annotated[Principal, Depends(require_role("finance"))]
Admin = Annotated[Principal, Depends(require_role("school_admin"))]
Reader = Annotated[Principal, Depends(require_role("school_admin", "finance", "district"))]


@router.post("")
def run_pay(
    school: SchoolDep, month: str, request: Request, session: SessionDep, user: Finance, body: StaffPayIn | None = None
) -> StaffPayRunPublic:
    """Work out ``month``'s (YYYY-MM) staff pay: the pool (the school's share of fee income + subsidy,
    from the month's issued statements — a higher figure in the body counts instead) split by periods
    served, volunteers' allowances apart. Replaces the month's draft; refused (409) once the month is confirmed."""
    body = body or StaffPayIn()
    return staffpay.run_pay(session, school=school, month=month, fee_income_fen=body.fee_income_fen, subsidy_fen=body.subsidy_fen,
                            actor=user.label, period_minutes=request.app.state.settings.period_minutes)


@router.get("")
def get_pay(school: SchoolDep, month: str, session: SessionDep, user: Reader) -> StaffPayRunPublic:
    return staffpay.get_run(session, school=school, month=month)


@router.post("/confirm")
def confirm_pay(school: SchoolDep, month: str, session: SessionDep, user: Admin) -> StaffPayRunPublic:
    """The school admin confirms the month's pay run: final, never worked out again."""
    return staffpay.confirm_run(session, school=school, month=month, actor=user.label)


@router.post("/terms/{term_id}")
def run_term_pay(
    school: SchoolDep, term_id: int, request: Request, session: SessionDep, user: Finance, body: StaffPayIn | None = None
) -> StaffPayRunPublic:
    """Work out a term's staff pay (P8.1 allows a term as the pay period): the income of every month the
    term touches, the periods served over its days. Refused (409) once confirmed, and where a confirmed
    run of a month it touches (or of another term sharing a month) exists: nobody is paid twice."""
    body = body or StaffPayIn()
    return staffpay.run_pay(session, school=school, term_id=term_id, fee_income_fen=body.fee_income_fen,
                            subsidy_fen=body.subsidy_fen, actor=user.label, period_minutes=request.app.state.settings.period_minutes)


@router.get("/terms/{term_id}")
def get_term_pay(school: SchoolDep, term_id: int, session: SessionDep, user: Reader) -> StaffPayRunPublic:
    return staffpay.get_run(session, school=school, term_id=term_id)


@router.post("/terms/{term_id}/confirm")
def confirm_term_pay(school: SchoolDep, term_id: int, session: SessionDep, user: Admin) -> StaffPayRunPublic:
    """The school admin confirms the term's pay run: final; refused (409) where a month it touches is paid."""
    return staffpay.confirm_run(session, school=school, term_id=term_id, actor=user.label)


@router.get("/settings")
def get_setting(school: SchoolDep, session: SessionDep, user: Reader) -> StaffPaySettingPublic:
    return staffpay.get_setting(session, school=school)


@router.put("/settings")
def set_setting(school: SchoolDep, body: StaffPaySettingIn, session: SessionDep, user: Admin) -> StaffPaySettingPublic:
    """The share paid to serving staff (80 to 100 %; below 80 % is refused, P8.1) and a volunteer's
    allowance per period served."""
    return staffpay.set_setting(session, school=school, data=body, actor=user.label)
