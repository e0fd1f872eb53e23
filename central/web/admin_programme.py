"""Setting a school's programme up without curl (issue 14): ``/admin/groups`` and ``/admin/calendar``.

``/admin/groups``: the school's care groups (分类编组, P4.1) with their category, grades, capacity and seats
taken, place, the staff member in charge and the pattern their sessions follow; creating one and editing
one (only what changed is sent, as a PATCH of ``/api/v1/schools/{school}/groups/{id}``), through
``central.programme.groups`` as the API.

``/admin/calendar``: the terms, the days off and make-up days (调休), the grades' dismissal times by season
(P3.2), planning a range of sessions for a group or all, and the coming sessions in the school's zone with
the staff on duty, put on and taken off (P6.3), through ``central.programme.schedule`` as the API.

Both are the school admin's (the API's writers); the district reads them (the API's readers beside it) with
``?school=`` and no forms. Every write is audited by the session as the API's are (``caller`` names the actor).
A form refused shows why in the page's language, above the form, with what was typed kept in it.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlmodel import Session, col, select

from central.accounts.access import Principal, Role
from central.api.deps import MAX_ID, IdPath
from central.core import clock
from central.core.columns import RowId
from central.core.errors import status_of
from central.core.i18n import LocalizedError, has, t
from central.programme import groups as group_service
from central.programme import schedule
from central.programme import staff as staff_service
from central.programme.models import (
    CalendarDayCreate,
    DismissalTimeCreate,
    InterestGroup,
    InterestGroupCreate,
    InterestGroupUpdate,
    TermCreate,
)
from central.schools.models import School, SchoolClass
from central.web import session as web_session
from central.web.pages import DbDep, PageError, caller, check_csrf, render, school_of

router = APIRouter(include_in_schema=False)
#: who opens the pages: the API's writers, and the district that reads every school (with ``?school=``)
VIEWERS = frozenset({Role.SCHOOL_ADMIN, Role.DISTRICT})
#: who changes anything: as ``require_role("school_admin")`` on the API's groups, calendar and sessions routes
EDITORS = frozenset({Role.SCHOOL_ADMIN})
#: coming sessions shown at once, from the day asked (default: the school's today)
WINDOW_DAYS = 14
#: what a write answers with on the page after its redirect (``?done=``)
DONE = frozenset({"group_created", "group_saved", "group_unchanged", "term_added", "day_set", "day_marked", "day_removed", "day_unmarked", "dismissal_set",
                  "planned", "duty_on", "duty_off"})
M = TypeVar("M", bound=BaseModel)
GRADE_SPLIT = re.compile(r"[,，、;；\s]+")
EDITABLE = ("name", "description", "capacity", "place", "off_site", "staff_id")  # InterestGroupUpdate's fields


class Refused(Exception):
    """A form refused: its messages (in the page's language) and the status the page answers with."""

    def __init__(self, status: int, problems: list[str]) -> None:
        super().__init__(*problems)
        self.status, self.problems = status, problems


# --- what a form sends ------------------------------------------------------------------------------


def _problems(exc: ValidationError, form: dict[str, Any], locale: str) -> list[str]:
    """Pydantic's refusals of a form as messages naming the field as the page labels it."""
    found = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        label = t(f"web.programme.field.{field}", locale) if has(f"web.programme.field.{field}") else field
        kind = err["type"]
        if kind.startswith("date"):
            key = "web.programme.bad_date"
        elif kind.startswith("time"):
            key = "web.programme.bad_time"
        elif kind in ("missing", "string_too_short", "too_short"):
            key = "web.programme.required"
        elif kind == "string_too_long":
            key = "web.programme.too_long"
        elif kind.startswith(("int", "greater", "less")):
            key = "web.programme.bad_number"
        else:
            key = "web.programme.bad_value"
        value = form.get(field, "")
        found.append(t(key, locale, field=label, value=", ".join(value) if isinstance(value, list) else value))
    return found


def _parse(model: type[M], form: dict[str, Any], locale: str) -> M:
    """The form's fields as ``model``; an empty field is left out (the model's default, or "required"). A list
    (boxes ticked) is given as it is, none ticked too: the service says why that is refused."""
    try:
        return model.model_validate({k: v for k, v in form.items() if v != ""})
    except ValidationError as exc:
        raise Refused(422, _problems(exc, form, locale)) from None


async def _posted(request: Request, db: Session) -> tuple[Any, Principal, School, str]:
    """A form post: its token checked first, then the caller's role, then the school (404 if not theirs)."""
    form = await request.form()
    check_csrf(request, str(form.get("csrf", "")))
    principal = caller(request, db, EDITORS)
    row = school_of(db, principal, str(form.get("school", "")).strip() or None)
    return form, principal, row, web_session.locale(request)


def _text(form, name: str, limit: int = 1000) -> str:
    value = form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def _done(path: str, school: School, done: str, **params: Any) -> RedirectResponse:
    query = {"school": school.code, "done": done, **{k: v for k, v in params.items() if v is not None}}
    return RedirectResponse(f"{path}?{urlencode(query)}", status_code=303)


def _staff(db: Session, school: School) -> list:
    return staff_service.list_staff(db, school=school)


def _grades(db: Session, school: School) -> list[str]:
    return sorted({c.grade for c in db.exec(select(SchoolClass).where(SchoolClass.school_id == school.id))})


# --- /admin/groups ----------------------------------------------------------------------------------


def _groups_page(request: Request, db: Session, principal: Principal, school: School, *, status: int = 200, **context) -> HTMLResponse:
    groups = group_service.list_groups(db, school=school)
    staff = _staff(db, school)
    return render(request, "groups.html", status=status, principal=principal, school=school, groups=groups, staff=staff,
                  staff_names={s.id: s.name for s in staff}, kinds=group_service.ALLOWED, grades=_grades(db, school),
                  may_edit=principal.role in EDITORS, typed=context.pop("typed", {}), **context)


@router.get("/admin/groups")
def groups_page(request: Request, db: DbDep, school: Annotated[str | None, Query(max_length=64)] = None,
                done: Annotated[str | None, Query(max_length=32)] = None) -> HTMLResponse:
    principal = caller(request, db, VIEWERS)
    return _groups_page(request, db, principal, school_of(db, principal, school), done=done if done in DONE else None)


@router.post("/admin/groups")
async def create_group(request: Request, db: DbDep) -> Response:
    """A new group, as ``POST /api/v1/schools/{school}/groups``."""
    form, principal, row, locale = await _posted(request, db)
    typed = {
        "name": _text(form, "name", 100), "category": _text(form, "category", 32), "description": _text(form, "description"),
        "capacity": _text(form, "capacity", 10), "place": _text(form, "place", 200), "off_site": form.get("off_site") == "on",
        "start_time": _text(form, "start_time", 16), "periods": _text(form, "periods", 4),
        "grades": [g for g in GRADE_SPLIT.split(_text(form, "grades", 500)) if g], "weekdays": list(form.getlist("weekdays"))[:7],
        "staff_id": _text(form, "staff_id", 12),
    }
    try:
        data = _parse(InterestGroupCreate, typed, locale)
        group = group_service.create_group(db, school=row, data=data, actor=principal.label, settings=request.app.state.settings)
    except LocalizedError as exc:
        db.rollback()
        return _groups_page(request, db, principal, row, status=status_of(exc), problems=[exc.text(locale)], typed={"new": typed})
    except Refused as exc:
        return _groups_page(request, db, principal, row, status=exc.status, problems=exc.problems, typed={"new": typed})
    return _done("/admin/groups", row, "group_created", group=group.id)


@router.post("/admin/groups/{group_id}")
async def update_group(request: Request, db: DbDep, group_id: IdPath) -> Response:
    """A group changed, as ``PATCH /api/v1/schools/{school}/groups/{id}`` with only the fields that differ."""
    form, principal, row, locale = await _posted(request, db)
    typed = {"name": _text(form, "name", 100), "description": _text(form, "description"), "capacity": _text(form, "capacity", 10),
             "place": _text(form, "place", 200), "off_site": form.get("off_site") == "on", "staff_id": _text(form, "staff_id", 12)}
    try:
        group = group_service.get_group(db, school=row, group_id=group_id)
        # Every field is given (an empty staff is nobody in charge; an empty description is none).
        given = InterestGroupUpdate.model_validate(
            {**{k: v for k, v in typed.items() if k not in ("staff_id", "description")}, "description": typed["description"],
             "staff_id": typed["staff_id"] or None})
        changes = {k: v for k, v in given.model_dump().items() if v != getattr(group, k)}
        if not changes:
            return _done("/admin/groups", row, "group_unchanged", group=group.id)
        group_service.update_group(db, school=row, group_id=group.id, data=InterestGroupUpdate(**changes), actor=principal.label)
    except ValidationError as exc:
        problems = _problems(exc, typed, locale)
        return _groups_page(request, db, principal, row, status=422, problems=problems, typed={group_id: typed}, editing=group_id)
    except LocalizedError as exc:
        db.rollback()
        return _groups_page(request, db, principal, row, status=status_of(exc), problems=[exc.text(locale)], typed={group_id: typed},
                            editing=group_id)
    return _done("/admin/groups", row, "group_saved", group=group_id)


# --- /admin/calendar --------------------------------------------------------------------------------


def _calendar_page(request: Request, db: Session, principal: Principal, school: School, *, status: int = 200,
                   start: date | None = None, group_id: int | None = None, **context) -> HTMLResponse:
    settings = request.app.state.settings
    today = clock.local_today(school)
    start = start or today
    end = start + timedelta(days=WINDOW_DAYS - 1)
    rows = schedule.sessions_between(db, school=school, start=start, end=end, group_id=group_id)
    sessions = schedule.sessions_public(db, school=school, rows=rows, settings=settings)
    staff = _staff(db, school)
    groups = list(db.exec(select(InterestGroup).where(InterestGroup.school_id == school.id).order_by(col(InterestGroup.name))))
    terms = schedule.list_terms(db, school=school)
    term = next((x for x in terms if x.starts_on <= today <= x.ends_on), None) or next((x for x in terms if x.starts_on > today), None)
    return render(request, "calendar.html", status=status, principal=principal, school=school, today=today, start=start, end=end,
                  earlier=start - timedelta(days=WINDOW_DAYS), later=end + timedelta(days=1), group_id=group_id,
                  sessions=sessions, staff=staff, staff_names={s.id: s.name for s in staff}, groups=groups, terms=terms, term=term,
                  days=schedule.list_calendar(db, school=school), dismissal=schedule.list_dismissal(db, school=school),
                  grades=_grades(db, school), seasons=schedule.SEASONS, day_kinds=schedule.DAY_KINDS,
                  zone=str(clock.zone(school)), may_edit=principal.role in EDITORS, typed=context.pop("typed", {}), **context)


@router.get("/admin/calendar")
def calendar_page(
    request: Request, db: DbDep, school: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[date | None, Query(alias="from")] = None, group: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    done: Annotated[str | None, Query(max_length=32)] = None, n: Annotated[int | None, Query(ge=0, le=100_000)] = None,
) -> HTMLResponse:
    principal = caller(request, db, VIEWERS)
    return _calendar_page(request, db, principal, school_of(db, principal, school), start=start, group_id=group,
                          done=done if done in DONE else None, count=n)


async def _calendar_write(request: Request, db: Session, what: str, write) -> Response:
    """One of the calendar page's forms: ``write(form, principal, school, locale)`` returns the redirect's
    ``done`` and count; a refusal shows the page again with the message and what was typed in ``what``'s form."""
    form, principal, row, locale = await _posted(request, db)
    typed = {k: _text(form, k) for k in form if k not in ("csrf", "school")}
    # The window of coming sessions the form was sent from (a duty form's), shown again after it.
    try:
        start = date.fromisoformat(_text(form, "from", 10)) if _text(form, "from", 10) else None
        group = int(_text(form, "group", 12)) if _text(form, "group", 12) else None
    except ValueError:
        start = group = None
    group = group if group is not None and 1 <= group <= MAX_ID else None
    try:
        done, count = write(form, principal, row, locale)
    except (Refused, LocalizedError) as exc:
        db.rollback()
        status, problems = (exc.status, exc.problems) if isinstance(exc, Refused) else (status_of(exc), [exc.text(locale)])
        return _calendar_page(request, db, principal, row, status=status, start=start, group_id=group, problems=problems,
                              typed={what: typed}, failed=what)
    return _done("/admin/calendar", row, done, n=count, **({"from": start.isoformat()} if start else {}),
                 **({"group": group} if group else {}))


@router.post("/admin/calendar/terms")
async def add_term(request: Request, db: DbDep) -> Response:
    """A term, as ``POST /api/v1/schools/{school}/terms``."""

    def write(form, principal, row, locale):
        fields = {k: _text(form, k, 100) for k in ("name", "starts_on", "ends_on", "summer_from", "winter_from")}
        schedule.add_term(db, school=row, data=_parse(TermCreate, fields, locale), actor=principal.label)
        return "term_added", None

    return await _calendar_write(request, db, "term", write)


@router.post("/admin/calendar/days")
async def set_day(request: Request, db: DbDep) -> Response:
    """A day off or a make-up day, as ``PUT /api/v1/schools/{school}/calendar/{day}``: a day off removes
    that day's planned sessions (the count is shown)."""

    def write(form, principal, row, locale):
        fields = {k: _text(form, k, 200) for k in ("day", "kind", "follows_weekday", "note")}
        _, removed = schedule.set_calendar_day(db, school=row, data=_parse(CalendarDayCreate, fields, locale), actor=principal.label)
        return ("day_set", removed) if removed else ("day_marked", None)

    return await _calendar_write(request, db, "day", write)


@router.post("/admin/calendar/days/delete")
async def delete_day(request: Request, db: DbDep) -> Response:
    """A marked day forgotten, as ``DELETE /api/v1/schools/{school}/calendar/{day}`` (a make-up day's sessions go)."""

    def write(form, principal, row, locale):
        day = _parse(CalendarDayCreate, {"day": _text(form, "day", 20), "kind": "holiday"}, locale).day
        removed = schedule.delete_calendar_day(db, school=row, day=day, actor=principal.label)
        return ("day_removed", removed) if removed else ("day_unmarked", None)

    return await _calendar_write(request, db, "remove_day", write)


@router.post("/admin/calendar/dismissal")
async def set_dismissal(request: Request, db: DbDep) -> Response:
    """A grade's dismissal in one season, as ``PUT /api/v1/schools/{school}/dismissal-times``."""

    def write(form, principal, row, locale):
        fields = {k: _text(form, k, 32) for k in ("grade", "season", "dismissal")}
        schedule.set_dismissal(db, school=row, data=_parse(DismissalTimeCreate, fields, locale), actor=principal.label)
        return "dismissal_set", None

    return await _calendar_write(request, db, "dismissal", write)


class PlanForm(BaseModel):
    """The plan form, as the API's ``PlanIn`` (central/api/routes/sessions.py)."""

    start: date
    end: date
    group_id: RowId | None = None


@router.post("/admin/calendar/plan")
async def plan(request: Request, db: DbDep) -> Response:
    """A range of sessions planned for a group or every group, as ``POST /api/v1/schools/{school}/sessions/plan``."""

    def write(form, principal, row, locale):
        data = _parse(PlanForm, {k: _text(form, k, 20) for k in ("start", "end", "group_id")}, locale)
        made = schedule.plan_sessions(db, school=row, start=data.start, end=data.end, group_id=data.group_id, actor=principal.label,
                                      settings=request.app.state.settings)
        return "planned", len(made)

    return await _calendar_write(request, db, "plan", write)


class DutyForm(BaseModel):
    session_id: RowId
    staff_id: RowId


@router.post("/admin/calendar/duty")
async def duty(request: Request, db: DbDep) -> Response:
    """A staff member put on duty at a session (``action=on``, as ``POST …/sessions/{id}/duty``) or taken off
    (``action=off``, as ``DELETE …/sessions/{id}/duty/{staff}``)."""

    def write(form, principal, row, locale):
        data = _parse(DutyForm, {k: _text(form, k, 12) for k in ("session_id", "staff_id")}, locale)
        action = _text(form, "action", 8)
        if action == "on":
            schedule.assign_duty(db, school=row, session_id=data.session_id, staff_id=data.staff_id, actor=principal.label)
            return "duty_on", None
        if action == "off":
            schedule.unassign_duty(db, school=row, session_id=data.session_id, staff_id=data.staff_id, actor=principal.label)
            return "duty_off", None
        raise PageError(422, "web.programme.bad_action")

    return await _calendar_write(request, db, "duty", write)
