"""The school calendar: terms, holidays and make-up days, dismissal times by season (P3)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, SessionDep, require_role
from central.programme import schedule
from central.programme.models import (
    CalendarDayCreate,
    CalendarDayPublic,
    DismissalTimeCreate,
    DismissalTimePublic,
    TermCreate,
    TermPublic,
)
from central.schools import registry

router = APIRouter(prefix="/schools/{school}", tags=["calendar"], responses=ERROR_RESPONSES)
# The district reads every school and inspects; it does not set a school up (README, "Users, roles").
Admin = Annotated[Principal, Depends(require_role("school_admin"))]
Reader = Annotated[Principal, Depends(require_role("school_admin", "district", "teacher", "guard", "finance"))]


@router.post("/terms", status_code=201)
def add_term(school: str, body: TermCreate, session: SessionDep, user: Admin) -> TermPublic:
    found = registry.get_school(session, school)
    return TermPublic.model_validate(schedule.add_term(session, school_id=found.id, data=body, actor=user.label))


@router.get("/terms")
def list_terms(school: str, session: SessionDep, user: Reader) -> list[TermPublic]:
    found = registry.get_school(session, school)
    return [TermPublic.model_validate(t) for t in schedule.list_terms(session, school_id=found.id)]


@router.put("/calendar/{day}")
def set_day(school: str, day: date, body: CalendarDayCreate, session: SessionDep, user: Admin) -> CalendarDayPublic:
    """Mark ``day`` a holiday (its sessions are removed) or a make-up day; the body's ``day`` must match."""
    found = registry.get_school(session, school)
    row, _removed = schedule.set_calendar_day(
        session, school_id=found.id, data=body.model_copy(update={"day": day}), actor=user.label
    )
    return CalendarDayPublic.model_validate(row)


@router.delete("/calendar/{day}", status_code=204)
def delete_day(school: str, day: date, session: SessionDep, user: Admin) -> None:
    found = registry.get_school(session, school)
    schedule.delete_calendar_day(session, school_id=found.id, day=day, actor=user.label)


@router.get("/calendar")
def list_days(school: str, session: SessionDep, user: Reader) -> list[CalendarDayPublic]:
    found = registry.get_school(session, school)
    return [CalendarDayPublic.model_validate(d) for d in schedule.list_calendar(session, school_id=found.id)]


@router.put("/dismissal-times")
def set_dismissal(school: str, body: DismissalTimeCreate, session: SessionDep, user: Admin) -> DismissalTimePublic:
    """A grade's regular dismissal in one season; sessions planned later start no earlier (P3.3)."""
    found = registry.get_school(session, school)
    return DismissalTimePublic.model_validate(schedule.set_dismissal(session, school_id=found.id, data=body, actor=user.label))


@router.get("/dismissal-times")
def list_dismissal(school: str, session: SessionDep, user: Reader) -> list[DismissalTimePublic]:
    found = registry.get_school(session, school)
    return [DismissalTimePublic.model_validate(d) for d in schedule.list_dismissal(session, school_id=found.id)]
