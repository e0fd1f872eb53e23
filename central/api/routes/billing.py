"""A school's fees (issue 15): the fee plan of each term, refused when set if it could pass the cap (P7.2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, IdPath, SchoolDep, SessionDep, require_role
from central.billing import service
from central.billing.models import FeePlanIn, FeePlanPublic

router = APIRouter(prefix="/schools/{school}", tags=["billing"], responses=ERROR_RESPONSES)
# The school sets its fee; finance and the district read it (the district inspects, P7.2).
Admin = Annotated[Principal, Depends(require_role("school_admin"))]
Reader = Annotated[Principal, Depends(require_role("school_admin", "finance", "district"))]


@router.put("/terms/{term_id}/fee-plan")
def set_fee_plan(
    school: SchoolDep, term_id: IdPath, body: FeePlanIn, request: Request, session: SessionDep, user: Admin
) -> FeePlanPublic:
    """Monthly (a fee a month) or per service day attended; a plan that could charge a child more than
    the district's cap in a month (SCHOOLGATE_FEE_CAP_FEN, 10,000 fen) is refused."""
    return service.set_fee_plan(session, school=school, term_id=term_id, data=body, actor=user.label,
                                cap_fen=request.app.state.settings.fee_cap_fen)


@router.get("/fee-plans")
def list_fee_plans(school: SchoolDep, session: SessionDep, user: Reader) -> list[FeePlanPublic]:
    return service.fee_plans(session, school=school)
