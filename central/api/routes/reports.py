"""Annual reports (P7.6): a school's year as of now, filing it, and the district's roll-up of who filed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, SchoolDep, SessionDep, require_role
from central.reconciliation import annual
from central.reconciliation.models import AnnualFilingPublic, AnnualReportOut, DistrictRollup

router = APIRouter(prefix="/schools/{school}/annual-reports", tags=["reports"], responses=ERROR_RESPONSES)
district_router = APIRouter(prefix="/district/annual-reports", tags=["reports"], responses=ERROR_RESPONSES)
# The school files its report; finance and the district read it (P7.6: to the education and finance departments).
Admin = Annotated[Principal, Depends(require_role("school_admin"))]
Reader = Annotated[Principal, Depends(require_role("school_admin", "finance", "district"))]
District = Annotated[Principal, Depends(require_role("district"))]
YearPath = Annotated[int, Path(ge=2000, le=2100)]


@router.get("/{year}")
def read_annual_report(school: SchoolDep, year: YearPath, session: SessionDep, user: Reader) -> AnnualReportOut:
    """The year's figures as of now, and what the school filed (``filed``: null until it has)."""
    return annual.read_report(session, school=school, year=year)


@router.post("/{year}", status_code=201)
def file_annual_report(school: SchoolDep, year: YearPath, session: SessionDep, user: Admin) -> AnnualFilingPublic:
    """File the year's report: its figures as of now are kept; filing again replaces them (audited)."""
    return annual.file_report(session, school=school, year=year, actor=user.label)


@district_router.get("/{year}")
def district_annual_reports(year: YearPath, session: SessionDep, user: District) -> DistrictRollup:
    """Every school's filing for the year, the schools that have not filed, and the sums of the filed."""
    return annual.district_rollup(session, year=year)
