"""Duty records (P6.3): the school admin confirms the planned duty of a staff member who did not tap."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, SchoolDep, SessionDep, require_role
from central.billing import staffpay
from central.billing.models import DutyConfirmationIn, DutyConfirmationPublic

router = APIRouter(prefix="/schools/{school}/duty", tags=["duty"], responses=ERROR_RESPONSES)
Admin = Annotated[Principal, Depends(require_role("school_admin"))]


@router.post("/confirmations", status_code=201)
def confirm_duty(school: SchoolDep, body: DutyConfirmationIn, request: Request, session: SessionDep, user: Admin) -> DutyConfirmationPublic:
    """Confirm, with a reason, that a staff member served their planned duty of a past day they did not
    tap at a gate: that day's planned periods count for their pay (P8.1). Audited."""
    return staffpay.confirm_duty(session, school=school, data=body, actor=user.label,
                                 period_minutes=request.app.state.settings.period_minutes)
