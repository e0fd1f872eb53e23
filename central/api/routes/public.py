"""The public page of each school (no login), and the profile behind it (school admins)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from central.accounts.access import Principal, Role
from central.api.deps import SchoolDep, SessionDep, require_role
from central.billing import public as fund
from central.core import clock
from central.core.errors import Missing
from central.core.i18n import pick_locale
from central.programme import public
from central.programme.models import PublicProfileBase
from central.schools import registry

page_router = APIRouter(tags=["public"])
router = APIRouter(prefix="/schools/{school}", tags=["public"])

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parents[2] / "templates"), autoescape=select_autoescape(["html"])
)


@page_router.get("/public/{school}", response_class=HTMLResponse, responses={404: {"content": {"text/html": {}}}})
def public_page(
    school: str, request: Request, session: SessionDep, lang: Annotated[str | None, Query(max_length=16)] = None,
    period: Annotated[str | None, Query(pattern=r"^20\d{2}(-(0[1-9]|1[0-2]))?$", description="YYYY or YYYY-MM: the service fund's period (default: this year to date)")] = None,
) -> HTMLResponse:
    """P4.2: times, groups and content, safety measures, fee and how to apply; P7.5: the service fund's
    income and spending per use for ``period``; zh_CN, or en with ``?lang=en``."""
    locale = pick_locale(lang, request.headers.get("accept-language"))
    try:
        row = registry.get_school(session, school)
        page = public.build_page(session, school=row, locale=locale, settings=request.app.state.settings)
    except Missing as exc:
        return HTMLResponse(f"<!doctype html><title>404</title><p>{escape(exc.text(locale))}</p>", status_code=404)
    start, end = fund.period(period, today=clock.local_today(row))
    page.sections.append(fund.section(session, school=row, locale=locale, start=start, end=end))
    html = _templates.get_template("public.html").render(page=page)
    return HTMLResponse(html, headers={"Content-Language": locale.replace("_", "-"), "Vary": "Accept-Language"})


@router.get("/public-profile")
def get_profile(
    school: SchoolDep, session: SessionDep, _: Annotated[Principal, Depends(require_role(Role.DISTRICT, Role.SCHOOL_ADMIN))]
) -> PublicProfileBase:
    return public.get_profile(session, school=school)


@router.put("/public-profile")
def set_profile(
    school: SchoolDep,
    body: PublicProfileBase,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_role(Role.SCHOOL_ADMIN))],
) -> PublicProfileBase:
    """The fee (P7.2: at most the district's cap), contact and a note on applying, as the public page shows them."""
    return public.set_profile(
        session, actor=principal, school=school, data=body, fee_cap_fen=request.app.state.settings.fee_cap_fen
    )
