"""``/admin/safety``: the safety list for the principal (issue 14) — filters by day, kind, gate and child,
paging that never skips or repeats (the service's cursor), each item acknowledged, given a follow-up or
closed with a note (CSRF, audited by the service), and the list as CSV and XLSX. The same service and
reach as ``/api/v1/schools/{school}/safety``: the school admin reads and acts, the district reads."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from central.accounts.access import Principal, Role, log_child_reads
from central.core import clock
from central.core.errors import Missing, status_of
from central.core.i18n import LocalizedError, t
from central.safety import export
from central.safety import items as service
from central.schools.models import School
from central.web import session as web_session
from central.web.pages import DbDep, PageError, caller, check_csrf, render, school_of

router = APIRouter(include_in_schema=False)
READERS = frozenset({Role.SCHOOL_ADMIN, Role.DISTRICT})
ACTORS = frozenset({Role.SCHOOL_ADMIN})
PAGE_SIZE = 50
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
GateQ = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{0,64}$")]
ChildQ = Annotated[str | None, Query(max_length=32)]
KindQ = Annotated[list[str] | None, Query()]
DayQ = Annotated[str | None, Query(max_length=10)]


def _query(school: str, day: date | None, kind: list[str] | None, gate: str | None, child: str | None, **more) -> dict:
    out = {"school": school, "day": day.isoformat() if day else None, "kind": kind or None, "gate": gate or None, "child": child or None, **more}
    return {k: v for k, v in out.items() if v}


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PageError(422, "web.safety.bad_filter") from None


def _kinds(kind: list[str] | None) -> list[str]:
    return [k for k in kind or () if k]


def _filters(day, kind, gate, child) -> service.Filters:
    unknown = set(kind or ()) - set(service.KINDS)
    if unknown:
        raise PageError(422, "web.safety.bad_kind")
    return service.Filters(day=day, kinds=tuple(kind or ()), gate=gate or None, child=child or None)


def _page(request: Request, db: Session, principal: Principal, school: School, *, day, kind, gate, child, cursor, status=200,
          error: str = "") -> HTMLResponse:
    try:
        page = service.list_items(db, school=school, filters=_filters(day, kind, gate, child), cursor=cursor or None, limit=PAGE_SIZE)
    except LocalizedError as exc:
        if isinstance(exc, Missing):
            raise PageError(404, "web.not_found") from None
        raise PageError(status_of(exc), "web.safety.bad_filter") from None
    log_child_reads(db, principal=principal, students=service.named_students(db, school=school, items=page.items), what="safety")
    q = _query(school.code, day, kind, gate, child)
    return render(request, "safety.html", status=status, principal=principal, school=school, items=page.items, error=error,
                  kinds=service.KINDS, day=day, kind=kind or [], gate=gate or "", child=child or "", may_act=principal.role in ACTORS,
                  next_url=f"/admin/safety?{urlencode(q | {'cursor': page.next}, doseq=True)}" if page.next else None,
                  first_url=f"/admin/safety?{urlencode(q, doseq=True)}" if cursor else None,
                  csv_url=f"/admin/safety.csv?{urlencode(q, doseq=True)}", xlsx_url=f"/admin/safety.xlsx?{urlencode(q, doseq=True)}",
                  back=f"/admin/safety?{urlencode(q | ({'cursor': cursor} if cursor else {}), doseq=True)}",
                  when=lambda at: clock.to_local(at, school).strftime("%Y-%m-%d %H:%M") if at else "")


@router.get("/admin/safety")
def safety(
    request: Request, db: DbDep, school: Annotated[str | None, Query(max_length=64)] = None, day: DayQ = None,
    kind: KindQ = None, gate: GateQ = None, child: ChildQ = None, cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> HTMLResponse:
    principal = caller(request, db, READERS)
    row = school_of(db, principal, school)
    return _page(request, db, principal, row, day=_day(day), kind=_kinds(kind), gate=gate, child=child, cursor=cursor)


def _export(request: Request, db: Session, school, day, kind, gate, child):
    principal = caller(request, db, READERS)
    row = school_of(db, principal, school)
    day, kind = _day(day), _kinds(kind)
    found = service.all_items(db, school=row, filters=_filters(day, kind, gate, child))
    log_child_reads(db, principal=principal, students=service.named_students(db, school=row, items=found), what="safety")
    name = f"safety-{row.code}{'-' + day.isoformat() if day else ''}"
    return row, found, web_session.locale(request), name


@router.get("/admin/safety.csv")
def safety_csv(request: Request, db: DbDep, school: Annotated[str | None, Query(max_length=64)] = None,
               day: DayQ = None, kind: KindQ = None, gate: GateQ = None, child: ChildQ = None) -> Response:
    row, found, locale, name = _export(request, db, school, day, kind, gate, child)
    return Response(export.to_csv(found, school=row, locale=locale), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"', "Cache-Control": "no-store"})


@router.get("/admin/safety.xlsx")
def safety_xlsx(request: Request, db: DbDep, school: Annotated[str | None, Query(max_length=64)] = None,
                day: DayQ = None, kind: KindQ = None, gate: GateQ = None, child: ChildQ = None) -> Response:
    row, found, locale, name = _export(request, db, school, day, kind, gate, child)
    return Response(export.to_xlsx(found, school=row, locale=locale), media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"', "Cache-Control": "no-store"})


def _safe_back(target: str) -> str:
    return target if target.startswith("/admin/safety?") or target == "/admin/safety" else "/admin/safety"


@router.post("/admin/safety/review")
def review(
    request: Request, db: DbDep, item: Annotated[str, Form(max_length=100, pattern=r"^[a-z]{1,10}:[A-Za-z0-9_.:-]{1,90}$")],
    step: Annotated[str, Form(max_length=16)], note: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "", school: Annotated[str | None, Form(max_length=64)] = None,
    back: Annotated[str, Form(max_length=1000)] = "/admin/safety",
) -> Response:
    """One review step (acknowledge, follow_up, close) with its note: ``safety.items.review``, audited."""
    check_csrf(request, csrf)
    principal = caller(request, db, ACTORS)
    row = school_of(db, principal, school)
    if step not in ("acknowledge", "follow_up", "close"):
        raise PageError(422, "web.safety.bad_filter")
    if not note.strip():
        return _page(request, db, principal, row, day=None, kind=None, gate=None, child=None, cursor=None, status=422,
                     error=t("web.safety.note_needed", web_session.locale(request)))
    try:
        service.review(db, school=row, key=item, step=step, note=note.strip(), actor=principal.label)
    except LocalizedError as exc:
        if isinstance(exc, Missing):
            raise PageError(404, "web.not_found") from None
        db.rollback()
        return _page(request, db, principal, row, day=None, kind=None, gate=None, child=None, cursor=None, status=status_of(exc),
                     error=exc.text(web_session.locale(request)))
    return RedirectResponse(_safe_back(back), status_code=303)
