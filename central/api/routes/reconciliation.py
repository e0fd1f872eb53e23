"""A month's reconciliation (issue 15): billed but never attended, attended but not billed, withdrawn
mid-month (refund due), exempt — lines for finance and the school admin (they name the P7.3 flag)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from central.accounts.access import POVERTY_READERS, Principal
from central.api.deps import ERROR_RESPONSES, SchoolDep, SessionDep, require_role
from central.billing.statements import Month
from central.core.i18n import pick_locale
from central.reconciliation import monthly as monthly_service
from central.reconciliation.monthly import MonthlyReconciliation

router = APIRouter(prefix="/schools/{school}", tags=["reconciliation"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require_role(*POVERTY_READERS))]
MonthQuery = Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM, the school's calendar")]


@router.get("/reconciliation/monthly")
def monthly(school: SchoolDep, month: MonthQuery, request: Request, session: SessionDep, user: Reader) -> MonthlyReconciliation:
    """Each line in the caller's language (``text``), beside its amounts in fen."""
    locale = pick_locale(request.query_params.get("lang"), request.headers.get("accept-language"))
    return monthly_service.monthly(session, school=school, month=Month.parse(month), locale=locale)
