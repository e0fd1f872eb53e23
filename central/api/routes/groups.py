"""Interest groups (P4.1, P5): categories from the allowed list, capacity, staff in charge, place."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, IdPath, SchoolDep, SessionDep, require_role
from central.programme import groups as group_service
from central.programme.models import InterestGroupCreate, InterestGroupPublic, InterestGroupUpdate

router = APIRouter(prefix="/schools/{school}/groups", tags=["groups"], responses=ERROR_RESPONSES)
# The district reads every school and inspects; it does not set a school up (README, "Users, roles").
Admin = Annotated[Principal, Depends(require_role("school_admin"))]
Reader = Annotated[Principal, Depends(require_role("school_admin", "district", "teacher", "guard", "finance"))]


@router.post("", status_code=201)
def create_group(school: SchoolDep, body: InterestGroupCreate, request: Request, session: SessionDep, user: Admin) -> InterestGroupPublic:
    group = group_service.create_group(
        session, school=school, data=body, actor=user.label, settings=request.app.state.settings
    )
    return group_service.group_public(session, group)


@router.get("")
def list_groups(school: SchoolDep, session: SessionDep, user: Reader) -> list[InterestGroupPublic]:
    return group_service.list_groups(session, school=school)


@router.get("/{group_id}")
def get_group(school: SchoolDep, group_id: IdPath, session: SessionDep, user: Reader) -> InterestGroupPublic:
    return group_service.group_public(session, group_service.get_group(session, school=school, group_id=group_id))


@router.patch("/{group_id}")
def update_group(
    school: SchoolDep, group_id: IdPath, body: InterestGroupUpdate, session: SessionDep, user: Admin
) -> InterestGroupPublic:
    group = group_service.update_group(session, school=school, group_id=group_id, data=body, actor=user.label)
    return group_service.group_public(session, group)
