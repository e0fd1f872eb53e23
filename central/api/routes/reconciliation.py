"""Reconciliation (issue 15). A month's: billed but never attended, attended but not billed, withdrawn
mid-month (refund due), exempt — lines for finance and the school admin (they name the P7.3 flag). A
day's: each session's expected, checked in, absent, gone, unresolved (a safety item) and unexpected —
for finance, the school admin and the district (it names no P7.3 flag)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from sqlmodel import col, select

from central.accounts.access import POVERTY_READERS, Principal, log_child_reads
from central.api.deps import ERROR_RESPONSES, SchoolDep, SessionDep, require_role
from central.billing.statements import Month
from central.core.i18n import pick_locale
from central.reconciliation import daily as daily_service
from central.reconciliation import monthly as monthly_service
from central.reconciliation.monthly import MonthlyReconciliation
from central.schools.models import Student

router = APIRouter(prefix="/schools/{school}", tags=["reconciliation"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require_role(*POVERTY_READERS))]
DayReader = Annotated[Principal, Depends(require_role("school_admin", "finance", "district"))]
MonthQuery = Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM, the school's calendar")]


@router.get("/reconciliation/monthly")
def monthly(school: SchoolDep, month: MonthQuery, request: Request, session: SessionDep, user: Reader) -> MonthlyReconciliation:
    """Each line in the caller's language (``text``), beside its amounts in fen."""
    locale = pick_locale(request.query_params.get("lang"), request.headers.get("accept-language"))
    return monthly_service.monthly(session, school=school, month=Month.parse(month), locale=locale)


@router.get("/reconciliation/daily")
def daily(school: SchoolDep, day: date, session: SessionDep, user: DayReader) -> dict:
    """``day`` (the school's date, YYYY-MM-DD), every session: the children it names are logged as read."""
    result = daily_service.reconcile_day(session, school=school, day=day)
    named = {no for s in result["sessions"] for no in (*s["expected"], *s["checked_in"], *s["unexpected"])}
    if named:
        students = session.exec(select(Student).where(Student.school_id == school.id, col(Student.student_no).in_(sorted(named)))).all()
        log_child_reads(session, principal=user, students=list(students), what="reconciliation")
    return result

