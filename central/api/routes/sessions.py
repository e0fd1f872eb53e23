"""Sessions (one group's care on one school day), the duty schedule and the staff ratio (P3, P6.3, P9.2)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, MAX_ID, IdPath, SchoolDep, SessionDep, require_role
from central.core.columns import RowId
from central.programme import schedule
from central.programme.models import CareSessionPublic

router = APIRouter(prefix="/schools/{school}/sessions", tags=["sessions"], responses=ERROR_RESPONSES)
# The district reads every school and inspects; it does not set a school up (README, "Users, roles").
Admin = Annotated[Principal, Depends(require_role("school_admin"))]
Reader = Annotated[Principal, Depends(require_role("school_admin", "district", "teacher", "guard", "finance"))]


class PlanIn(BaseModel):
    start: date
    end: date
    group_id: RowId | None = None  # None: every group of the school


class DutyIn(BaseModel):
    staff_id: int = Field(ge=1, le=MAX_ID)


@router.post("/plan", status_code=201)
def plan(school: SchoolDep, body: PlanIn, request: Request, session: SessionDep, user: Admin) -> list[CareSessionPublic]:
    """Materialise the sessions of a date range on school days; returns the sessions made."""
    settings = request.app.state.settings
    made = schedule.plan_sessions(
        session, school=school, start=body.start, end=body.end, group_id=body.group_id, actor=user.label, settings=settings
    )
    return schedule.sessions_public(session, school=school, rows=made, settings=settings)


@router.get("")
def list_sessions(
    school: SchoolDep, request: Request, session: SessionDep, user: Reader, start: date, end: date,
    group_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> list[CareSessionPublic]:
    """Sessions of ``start``..``end`` with the expected students, staff on duty and the ratio flag (P9.2)."""
    rows = schedule.sessions_between(session, school=school, start=start, end=end, group_id=group_id)
    return schedule.sessions_public(session, school=school, rows=rows, settings=request.app.state.settings)


@router.post("/{session_id}/duty", status_code=201)
def assign(school: SchoolDep, session_id: IdPath, body: DutyIn, request: Request, session: SessionDep, user: Admin) -> CareSessionPublic:
    """Put a staff member on duty; third-party staff only after their vendor's last approval (P6.2), and
    nobody already on duty in another session of the school at the same time (409)."""
    schedule.assign_duty(session, school=school, session_id=session_id, staff_id=body.staff_id, actor=user.label)
    row = schedule.get_session(session, school=school, session_id=session_id)
    return schedule.sessions_public(session, school=school, rows=[row], settings=request.app.state.settings)[0]


@router.delete("/{session_id}/duty/{staff_id}", status_code=204)
def unassign(school: SchoolDep, session_id: IdPath, staff_id: IdPath, session: SessionDep, user: Admin) -> None:
    schedule.unassign_duty(session, school=school, session_id=session_id, staff_id=staff_id, actor=user.label)
