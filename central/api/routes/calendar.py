"""The school calendar: terms, holidays and make-up days, dismissal times by season (P3)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, SchoolDep, SessionDep, require_role
from central.programme import schedule
from central.programme.models import (
    CalendarDayCreate,
    CalendarDayPublic,
    DismissalTimeCreate,
    DismissalTimePublic,
    TermCreate,
    TermPublic,
)

router = APIRouter(prefix="/schools/{school}", tags=["calendar"], responses=ERROR_RESPONSES)
# The district reads every school and inspects; it does not set a school up (README, "Users, roles").
Admin = Annotated[Principal, Depends(require_role("school_admin"))]
Reader = Annotated[Principal, Depends(require_role("school_admin", "district", "teacher", "guard", "finance"))]


@router.post("/terms", status_code=201)
def add_term(school: SchoolDep, body: TermCreate, session: SessionDep, user: Admin) -> TermPublic:
    return TermPublic.model_validate(schedule.add_term(session, school=school, data=body, actor=user.label))


@router.get("/terms")
def list_terms(school: SchoolDep, session: SessionDep, user: Reader) -> list[TermPublic]:
    return [TermPublic.model_validate(t) for t in schedule.list_terms(session, school=school)]


@router.put("/calendar/{day}")
def set_day(school: SchoolDep, day: date, body: CalendarDayCreate, session: SessionDep, user: Admin) -> CalendarDayPublic:
    """Mark ``day`` a holiday (its sessions are removed) or a make-up day; the body's ``day`` must match."""
    row, _removed = schedule.set_calendar_day(
        session, school=school, data=body.model_copy(update={"day": day}), actor=user.label
    )
    return CalendarDayPublic.model_validate(row)


@router.delete("/calendar/{day}", status_code=204)
def delete_day(school: SchoolDep, day: date, session: SessionDep, user: Admin) -> None:
    schedule.delete_calendar_day(session, school=school, day=day, actor=user.label)


@router.get("/calendar")
def list_days(school: SchoolDep, session: SessionDep, user: Reader) -> list[CalendarDayPublic]:
    return [CalendarDayPublic.model_validate(d) for d in schedule.list_calendar(session, school=school)]


@router.put("/dismissal-times")
def set_dismissal(school: SchoolDep, body: DismissalTimeCreate, session: SessionDep, user: Admin) -> DismissalTimePublic:
    """A grade's regular dismissal in one season; sessions planned later start no earlier (P3.3)."""
    return DismissalTimePublic.model_validate(schedule.set_dismissal(session, school=school, data=body, actor=user.label))


@router.get("/dismissal-times")
def list_dismissal(school: SchoolDep, session: SessionDep, user: Reader) -> list[DismissalTimePublic]:
    return [DismissalTimePublic.model_validate(d) for d in schedule.list_dismissal(session, school=school)]
