"""The pages' routes: /login, /logout, the home page, /teacher (the live roster, the day's sheet, excused
absences) and its live feed /teacher/live (Server-Sent Events), /rollcall.

Every page takes the caller from the session cookie (central/web/session.py) and applies the same
services and role checks as the API: a page of another school answers 404, a form posted without its
CSRF token 403. None of these routes is in the OpenAPI document: they answer HTML.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from central.accounts import access as accounts
from central.accounts import users
from central.accounts.access import Principal, Role
from central.api.deps import get_db
from central.core import clock, events
from central.core.errors import Missing
from central.core.i18n import LOCALES, LocalizedError, t
from central.programme import excuses
from central.schools import registry
from central.schools.models import School
from central.web import roster as live_roster
from central.web import session as web_session
from central.web.live import Hub, Shared

HERE = Path(__file__).resolve().parent
#: a live page is sent its roster again (and its login checked) every ``Settings.live_refresh_seconds``
#: without a change; the check of a school's open pages' logins made for one such round serves the others
#: at most this long (or a quarter of that interval). A change is always checked afresh.
LOGINS_KEPT = 2.0
#: who may open the live rosters (a teacher sees their groups'; the admin and the district every group)
ROSTER_ROLES = frozenset({Role.TEACHER, Role.SCHOOL_ADMIN, Role.DISTRICT})
#: roll call: every child on site now, school-wide: the roles that see every child of the school
ROLLCALL_ROLES = frozenset({Role.SCHOOL_ADMIN, Role.GUARD, Role.DISTRICT})

router = APIRouter(include_in_schema=False)
templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))

DbDep = Annotated[Session, Depends(get_db)]


class PageError(Exception):
    """A page refused: rendered as a page in the caller's language, with this status."""

    def __init__(self, status: int, key: str) -> None:
        super().__init__(key)
        self.status, self.key = status, key


class LoginNeeded(Exception):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def install(app: FastAPI) -> None:
    """Mount the pages on central's app: routes, static files, the session cookie, the live hub."""
    app.state.live = Hub().attach(app.state.events)
    app.state.live_shared = Shared()
    app.state.live_logins = Shared(ttl=LOGINS_KEPT, keep=4096)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_exception_handler(PageError, _page_error)
    app.add_exception_handler(LoginNeeded, _login_needed)
    app.add_middleware(web_session.PageSessions, settings=app.state.settings)


def render(request: Request, name: str, *, status: int = 200, principal: Principal | None = None, **context) -> HTMLResponse:
    locale = web_session.locale(request)
    html = templates.get_template(name).render(
        _=lambda key, **params: t(key, locale, **params), locale=locale, lang=locale.replace("_", "-"),
        other_locale=next(loc for loc in LOCALES if loc != locale), csrf=web_session.csrf_token(request),
        me=principal, path=request.url.path, **context,
    )
    return HTMLResponse(html, status_code=status, headers={"Content-Language": locale.replace("_", "-"), "Cache-Control": "no-store"})


async def _page_error(request: Request, exc: PageError) -> HTMLResponse:
    return render(request, "error.html", status=exc.status, message_key=exc.key)


async def _login_needed(request: Request, exc: LoginNeeded) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(exc.path)}", status_code=303)


def caller(request: Request, db: Session, roles: frozenset[Role] | None = None) -> Principal:
    """The logged-in caller (else off to /login), of one of ``roles`` (else 403); their changes are
    audited in their name, as through the API."""
    principal = web_session.principal(request, db)
    if principal is None:
        raise LoginNeeded(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    if roles is not None and principal.role not in roles:
        raise PageError(403, "web.role_refused")
    db.info["actor"] = principal.label
    return principal


def check_csrf(request: Request, sent: str) -> None:
    if not web_session.csrf_ok(request, sent):
        raise PageError(403, "web.csrf_refused")


def school_of(db: Session, principal: Principal, code: str | None) -> School:
    """The school a page is about: the caller's own, or ``code``; another school's answers 404."""
    code = code or principal.school_code
    if not code or not principal.may_use_school(code):
        raise PageError(404, "web.not_found")
    try:
        return registry.get_school(db, code)
    except Missing:
        raise PageError(404, "web.not_found") from None


def _safe_next(target: str | None) -> str | None:
    # Only a path of this site: never "//elsewhere" nor a full URL.
    return target if target and target.startswith("/") and not target.startswith("//") and "\\" not in target else None


def _home_of(principal: Principal) -> str:
    if principal.role is Role.GUARDIAN:
        return "/guardian"
    if principal.role is Role.DISTRICT:
        return "/district"
    return "/teacher" if principal.role in ROSTER_ROLES else "/"


# --- logging in and out -------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: Annotated[str | None, Query(max_length=500)] = None) -> HTMLResponse:
    return render(request, "login.html", next=_safe_next(next) or "")


@router.post("/login")
def login(
    request: Request, db: DbDep, username: Annotated[str, Form(max_length=64)] = "", password: Annotated[str, Form(max_length=256)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "", next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    check_csrf(request, csrf)
    settings = request.app.state.settings
    try:
        if not username or not password:
            raise PageError(401, "web.login.failed")
        token, _row, user = users.login(
            db, username=username, password=password, ttl=timedelta(minutes=settings.token_ttl_minutes),
            max_failures=settings.login_max_failures, lock_for=timedelta(minutes=settings.login_lock_minutes),
            source=users.source_of(request.client.host if request.client else None),
        )
    except (LocalizedError, PageError) as exc:
        message = exc.text(web_session.locale(request)) if isinstance(exc, LocalizedError) else None
        return render(request, "login.html", status=401, next=_safe_next(next) or "", error=message or t("web.login.failed", web_session.locale(request)),
                      username=username)
    principal = users.principal_of(db, user)
    lang = request.session.get("lang")
    request.session.clear()  # a new session at each login: nothing from before it is trusted
    request.session.update({"token": token, "uid": user.id, **({"lang": lang} if lang else {})})
    web_session.csrf_token(request)
    return RedirectResponse(_safe_next(next) or _home_of(principal), status_code=303)


@router.get("/logout")
def logout_page(request: Request, db: DbDep) -> Response:
    principal = web_session.principal(request, db)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return render(request, "logout.html", principal=principal)


@router.post("/logout")
def logout(request: Request, db: DbDep, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    check_csrf(request, csrf)
    token = request.session.get("token")
    if token:
        users.logout(db, token=token)
    lang = request.session.get("lang")
    request.session.clear()
    if lang:
        request.session["lang"] = lang
    return RedirectResponse("/login", status_code=303)


@router.get("/")
def home(request: Request, db: DbDep) -> Response:
    principal = caller(request, db)
    # A district account has no school: its school pages open from /district (?school=), not from here.
    in_school = principal.role is not Role.DISTRICT or bool(principal.school_code)
    return render(request, "home.html", principal=principal, roster=principal.role in ROSTER_ROLES and in_school,
                  rollcall=principal.role in ROLLCALL_ROLES and in_school, family=principal.role is Role.GUARDIAN, district=principal.role is Role.DISTRICT,
                  kiosks=principal.role in (Role.SCHOOL_ADMIN, Role.DISTRICT) and bool(principal.school_code),
                  safety=principal.role is Role.SCHOOL_ADMIN, finance=principal.role in accounts.POVERTY_READERS and bool(principal.school_code))


# --- the teacher's live roster ------------------------------------------------------------------


def _rosters(db: Session, principal: Principal, school: School, settings) -> tuple[date, list[live_roster.SessionRoster]]:
    day = clock.local_today(school)
    rows = live_roster.sessions_for(db, principal=principal, school=school, day=day)
    return day, live_roster.build(db, school=school, rows=rows, settings=settings, now=clock.utcnow())


@router.get("/teacher")
def teacher(request: Request, db: DbDep, school: Annotated[str | None, Query(max_length=64)] = None) -> HTMLResponse:
    """The day's sessions of the groups the teacher is in charge of, each with its live roster."""
    principal = caller(request, db, ROSTER_ROLES)
    row = school_of(db, principal, school)
    day, rosters = _rosters(db, principal, row, request.app.state.settings)
    return render(request, "teacher.html", principal=principal, school=row, day=day, rosters=rosters,
                  live_url=f"/teacher/live?school={quote(row.code)}", excusable=principal.role in (Role.TEACHER, Role.SCHOOL_ADMIN))


@router.post("/teacher/excuse")
def excuse(
    request: Request, db: DbDep, student: Annotated[str, Form(max_length=32)], note: Annotated[str, Form(max_length=excuses.NOTE_MAX)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "", school: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    """The teacher excuses a child's absence today (请假) with a note: the same service and reach as
    ``PUT /api/v1/schools/{school}/students/{student}/absences/{day}``."""
    check_csrf(request, csrf)
    principal = caller(request, db, frozenset({Role.TEACHER, Role.SCHOOL_ADMIN}))
    row = school_of(db, principal, school)
    try:
        child = accounts.find_student(db, principal=principal, school=row, student_no=student)
    except Missing:
        raise PageError(404, "web.not_found") from None
    excuses.excuse(db, school=row, student=child, day=clock.local_today(row), note=note, by_user_id=principal.user_id)
    return RedirectResponse(f"/teacher?school={quote(row.code)}", status_code=303)


#: where a shared rendering of a roster has the page's own form token (central/web/live.py ``Shared``):
#: put in unescaped (``Markup``), so text from users (an excuse's note), always escaped, can never spell it
CSRF_SLOT = "<csrf-slot>"
INDENT = re.compile(r"\n\s+")


def _stream(request: Request, school_id: int, key: tuple, fragment: Callable[[], tuple[str, int]]) -> StreamingResponse:
    """Server-Sent Events: the fragment now, then again at every change of the school's roster (or every
    ``live_refresh_seconds``). A browser that lost the stream reconnects by itself and is sent the whole
    fragment first, so it has missed nothing; ``id`` is the school's feed head it shows.

    ``fragment`` is made once for all the open pages of one ``key`` and the school's generation (``Shared``),
    with CSRF_SLOT where each page's own token goes. Before every round after the first (a change, or the
    clock's round) the page's login is checked, in one query with the logins of all the school's open pages
    (``Hub.logins``): a page whose login ended (logged out, revoked, expired, the user made inactive) is
    sent ``logout`` and no roster, and its stream ends."""
    hub: Hub = request.app.state.live
    shared: Shared = request.app.state.live_shared
    logins: Shared = request.app.state.live_logins
    engine, refresh = request.app.state.engine, request.app.state.settings.live_refresh_seconds
    csrf = request.session.get("csrf", "")
    login = (users.token_hash(request.session.get("token", "")), request.session.get("uid"))

    def made() -> tuple[str, int]:
        html, head = fragment()
        # Sent to every open page: no indentation, and Chinese as UTF-8 (not six bytes of \\uXXXX a character).
        return json.dumps({"html": INDENT.sub("\n", html)}, ensure_ascii=False), head

    def check_all() -> tuple[frozenset[str], frozenset[str]]:
        asked = hub.logins(school_id)  # every page of the school open now, this one with them
        with Session(engine) as db:
            return frozenset(asked), frozenset(users.logins_holding(db, logins=asked))

    def check_one() -> bool:
        with Session(engine) as db:
            return bool(users.logins_holding(db, logins={login[0]: login[1]}))

    async def holds(generation: int) -> bool:
        # A change makes a new generation, so a new check: a login ended before the change is never sent
        # it. Between changes (the clock's rounds) one check serves the school's pages a moment.
        asked, good = await logins.aget(("logins", school_id, generation), check_all, ttl=min(LOGINS_KEPT, refresh / 4))
        if login[0] in asked:
            return login[0] in good
        return await run_in_threadpool(check_one)  # opened after that check was made

    async def stream() -> AsyncIterator[str]:
        entry = hub.watch(school_id, login)
        try:
            yield "retry: 1000\n\n"
            check = False  # checked as the stream opened
            last = None
            while True:
                entry[1].clear()  # before reading: a change during the read wakes the next round
                generation = hub.generation(school_id)
                # The login is checked while the roster is rendered (a tap waits for neither twice); the
                # roster is sent only once the check says the login holds.
                holding = asyncio.ensure_future(holds(generation)) if check else None
                try:
                    data, head = await shared.aget((*key, generation), made)
                except BaseException:  # the page went away, or the database did
                    if holding is not None:
                        holding.cancel()
                    raise
                if holding is not None and not await holding:  # logged out meanwhile, revoked, expired, or the user made inactive
                    yield "event: logout\ndata: {}\n\n"
                    return
                check = True
                if data == last:
                    yield ":\n\n"  # nothing new this round (a comment keeps the connection alive)
                else:
                    last = data
                    yield f"id: {head}\nevent: roster\ndata: {data.replace(CSRF_SLOT, csrf)}\n\n"
                with contextlib.suppress(TimeoutError):
                    # Not all at once: pages opened together would otherwise refresh (and check their
                    # logins) together every round, and a tap then would wait behind them all.
                    await asyncio.wait_for(entry[1].wait(), timeout=refresh * random.uniform(0.75, 1.25))
        finally:
            hub.forget(school_id, entry)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/teacher/live")
async def teacher_live(request: Request, school: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    engine, settings = request.app.state.engine, request.app.state.settings
    locale = web_session.locale(request)

    def open_() -> tuple[Principal, School]:
        with Session(engine) as db:
            principal = caller(request, db, ROSTER_ROLES)
            return principal, school_of(db, principal, school)

    principal, row = await run_in_threadpool(open_)
    excusable = principal.role in (Role.TEACHER, Role.SCHOOL_ADMIN)

    def fragment() -> tuple[str, int]:
        with Session(engine) as db:
            here = db.get(School, row.id)
            day, rosters = _rosters(db, principal, here, settings)
            html = templates.get_template("_rosters.html").render(
                _=lambda key, **params: t(key, locale, **params), rosters=rosters, csrf=Markup(CSRF_SLOT),
                school=here, excusable=excusable, now=clock.utcnow(),
            )
            return html, here.feed_head

    # What the roster shows depends on the school, whose groups (a teacher's own; every group for the
    # others), the language and whether the excuse forms are there: pages alike share one rendering.
    reach = principal.user_id if principal.role is Role.TEACHER else None
    key = ("teacher", row.id, reach, principal.role.value, excusable, locale)
    return _stream(request, row.id, key, fragment)


# --- emergency roll call ----------------------------------------------------------------------------


def _render_rollcall(db: Session, school: School, settings, locale: str) -> str:
    call = live_roster.roll_call(db, school=school, day=clock.local_today(school), settings=settings, now=clock.utcnow())
    return templates.get_template("_rollcall.html").render(_=lambda key, **params: t(key, locale, **params), call=call)


@router.get("/rollcall")
def rollcall(request: Request, db: DbDep, school: Annotated[str | None, Query(max_length=64)] = None) -> HTMLResponse:
    """Emergency roll call: every child on site now at the school (from every gate), by group and place,
    with the staff present; live and printable."""
    principal = caller(request, db, ROLLCALL_ROLES)
    row = school_of(db, principal, school)
    body = _render_rollcall(db, row, request.app.state.settings, web_session.locale(request))
    return render(request, "rollcall.html", principal=principal, school=row, day=clock.local_today(row), body=body,
                  live_url=f"/rollcall/live?school={quote(row.code)}")


@router.get("/rollcall/live")
async def rollcall_live(request: Request, school: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    engine, settings = request.app.state.engine, request.app.state.settings
    locale = web_session.locale(request)

    def open_() -> School:
        with Session(engine) as db:
            principal = caller(request, db, ROLLCALL_ROLES)
            return school_of(db, principal, school)

    row = await run_in_threadpool(open_)

    def fragment() -> tuple[str, int]:
        with Session(engine) as db:
            here = db.get(School, row.id)
            return _render_rollcall(db, here, settings, locale), here.feed_head

    return _stream(request, row.id, ("rollcall", row.id, locale), fragment)
