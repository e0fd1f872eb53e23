"""Monthly statements (issue 15): finance bills a month; finance and the school admin read the
statements, their XLSX and what is still owed. The P7.3 flag they carry is theirs alone."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from central.accounts.access import POVERTY_READERS, Principal
from central.api.deps import ERROR_RESPONSES, SchoolDep, SessionDep, require_role
from central.billing import documents, rules, statements
from central.billing.models import BillingRun, StatementPublic
from central.core.i18n import pick_locale

router = APIRouter(prefix="/schools/{school}", tags=["statements"], responses=ERROR_RESPONSES)
Finance = Annotated[Principal, Depends(require_role("finance"))]
Reader = Annotated[Principal, Depends(require_role(*POVERTY_READERS))]
MonthQuery = Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM, the school's calendar")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PDF = "application/pdf"


@router.post("/statements")
def bill_month(school: SchoolDep, month: MonthQuery, request: Request, session: SessionDep, user: Finance,
               issue: bool = False) -> BillingRun:
    """Make the month's statements (drafts), or redo them: a second run doubles nothing; issued ones are
    kept. ``issue=true`` issues the drafts. Refused (409) while a child's term has no fee plan."""
    settings = request.app.state.settings
    subsidy = rules.Subsidy(per_child_month_fen=settings.subsidy_per_child_month_fen,
                            per_period_fen=settings.subsidy_per_period_fen)
    return statements.bill_month(session, school=school, month=statements.Month.parse(month),
                                 cap_fen=settings.fee_cap_fen, subsidy=subsidy, actor=user.label, issue=issue)


@router.get("/statements")
def list_statements(school: SchoolDep, month: MonthQuery, session: SessionDep, user: Reader) -> list[StatementPublic]:
    return statements.list_statements(session, school=school, month=statements.Month.parse(month), principal=user)


@router.get("/statements/outstanding")
def outstanding(school: SchoolDep, month: MonthQuery, session: SessionDep, user: Reader) -> list[StatementPublic]:
    """Issued statements of the month with a balance still owed."""
    return statements.list_statements(session, school=school, month=statements.Month.parse(month), principal=user,
                                      outstanding_only=True)


@router.get("/statements.xlsx", response_class=Response,
            responses={200: {"content": {XLSX: {}}, "description": "One row per child, Chinese headers"}})
def statements_xlsx(school: SchoolDep, month: MonthQuery, session: SessionDep, user: Reader) -> Response:
    when = statements.Month.parse(month)
    rows = statements.list_statements(session, school=school, month=when, principal=user)
    return Response(statements.statements_xlsx(rows, month=when), media_type=XLSX, headers={
        "Content-Disposition": f'attachment; filename="statements-{school.code}-{when.key}.xlsx"'})


@router.get("/statements.pdf", response_class=Response,
            responses={200: {"content": {PDF: {}}, "description": "The month's issued statements, one A4 page each"}})
def statements_pdf(school: SchoolDep, month: MonthQuery, request: Request, session: SessionDep, user: Reader) -> Response:
    """The month's issued statements for the families, in Chinese (``?lang=en`` for English labels)."""
    lang = pick_locale(request.query_params.get("lang"), request.headers.get("accept-language"))
    when = statements.Month.parse(month)
    rows = statements.list_statements(session, school=school, month=when, principal=user)
    docs = statements.statement_documents(rows, school=school)
    data = documents.statements_pdf(docs, locale=lang, font=documents.settings_font(request.app.state.settings))
    return Response(data, media_type=PDF, headers={
        "Content-Disposition": f'attachment; filename="statements-{school.code}-{when.key}.pdf"'})

