"""Third-party vendors and P6.2's approval chain: panel, Party organisation, district, city, in order."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, IdPath, SchoolDep, SessionDep, require_role
from central.programme import staff as staff_service
from central.programme.models import VendorCreate, VendorPublic

router = APIRouter(prefix="/schools/{school}/vendors", tags=["vendors"], responses=ERROR_RESPONSES)
# The district reads every school and inspects; it does not set a school up (README, "Users, roles").
Admin = Annotated[Principal, Depends(require_role("school_admin"))]
# P6.2: the school records its panel's and its Party organisation's decisions, a district account the
# district's and the city's (central/programme/staff.py STEP_RECORDERS says which step is whose).
Approver = Annotated[Principal, Depends(require_role("school_admin", "district"))]


class DecisionIn(BaseModel):
    step: str = Field(description="review_panel, party_org, district or city (P6.2), in that order")
    approved: bool
    note: str = Field(default="", max_length=1000, description="the panel's members, a document number, a reason")


@router.post("", status_code=201)
def create_vendor(school: SchoolDep, body: VendorCreate, session: SessionDep, user: Admin) -> VendorPublic:
    return staff_service.vendor_public(session, staff_service.create_vendor(session, school=school, data=body, actor=user.label))


@router.get("")
def list_vendors(school: SchoolDep, session: SessionDep, user: Approver) -> list[VendorPublic]:
    return [staff_service.vendor_public(session, v) for v in staff_service.list_vendors(session, school=school)]


@router.post("/{vendor_id}/approvals", status_code=201)
def decide(school: SchoolDep, vendor_id: IdPath, body: DecisionIn, session: SessionDep, user: Approver) -> VendorPublic:
    """Record the next step's decision (who and when are recorded); the last approval lets the vendor's staff serve.

    ``review_panel`` and ``party_org``: the school admin; ``district`` and ``city``: a district account (P6.2).
    """
    vendor = staff_service.decide_step(
        session, school=school, vendor_id=vendor_id, step=body.step, approved=body.approved, note=body.note,
        actor=user.label, role=user.role.value,
    )
    return staff_service.vendor_public(session, vendor)
