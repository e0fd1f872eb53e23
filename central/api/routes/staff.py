"""Staff (P6.1): teachers, employees, volunteers, third-party staff; their cards (P6.3)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, IdPath, SchoolDep, SessionDep, require_role
from central.programme import staff as staff_service
from central.programme.models import StaffCreate, StaffPublic, StaffUpdate

router = APIRouter(prefix="/schools/{school}/staff", tags=["staff"], responses=ERROR_RESPONSES)
# The district reads every school and inspects; it does not set a school up (README, "Users, roles").
Admin = Annotated[Principal, Depends(require_role("school_admin"))]
Reader = Annotated[Principal, Depends(require_role("school_admin", "district", "teacher", "guard", "finance"))]


class CardIn(BaseModel):
    uid: str = Field(min_length=1, max_length=64)


@router.post("", status_code=201)
def create_staff(school: SchoolDep, body: StaffCreate, session: SessionDep, user: Admin) -> StaffPublic:
    person = staff_service.create_staff(session, school=school, data=body, actor=user.label)
    return staff_service.staff_public(session, person)


@router.get("")
def list_staff(school: SchoolDep, session: SessionDep, user: Reader) -> list[StaffPublic]:
    return staff_service.list_staff(session, school=school)


@router.patch("/{staff_id}")
def update_staff(school: SchoolDep, staff_id: IdPath, body: StaffUpdate, session: SessionDep, user: Admin) -> StaffPublic:
    person = staff_service.update_staff(session, school=school, staff_id=staff_id, data=body, actor=user.label)
    return staff_service.staff_public(session, person)


@router.post("/{staff_id}/cards", status_code=201)
def add_card(school: SchoolDep, staff_id: IdPath, body: CardIn, session: SessionDep, user: Admin) -> StaffPublic:
    staff_service.add_card(session, school=school, staff_id=staff_id, uid=body.uid, actor=user.label)
    return staff_service.staff_public(session, staff_service.get_staff(session, school=school, staff_id=staff_id))


# The UID travels in the body, not the path: a path lands in every access log and proxy on the way,
# and a card UID is what a cloned card needs.
@router.post("/{staff_id}/cards/remove")
def remove_card(school: SchoolDep, staff_id: IdPath, body: CardIn, session: SessionDep, user: Admin) -> StaffPublic:
    staff_service.remove_card(session, school=school, staff_id=staff_id, uid=body.uid, actor=user.label)
    return staff_service.staff_public(session, staff_service.get_staff(session, school=school, staff_id=staff_id))
