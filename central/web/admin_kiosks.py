"""``/admin/kiosks``: every gate of the school and its health as central last heard it (online, last
seen, queue, roster version, clock offset, reader, guard signed in: ``central.kiosks.health.gates``, as
``GET /api/v1/schools/{school}/kiosks``), and registering a new gate (``central.kiosks.services.register_kiosk``,
as ``schoolgate central register-kiosk``): its secret is shown once, with the exact command to run on it.
"""

from __future__ import annotations

import shlex
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session, select

from central.accounts.access import Principal, Role
from central.core import clock, keys
from central.core.config import Settings
from central.core.i18n import t
from central.kiosks import health, services
from central.programme.models import Staff
from central.schools.models import Kiosk, School
from central.web import session as web_session
from central.web.pages import DbDep, caller, check_csrf, render, school_of
from gateway.protocol import DEFAULT_PREFIX, ProtocolError, check_id

router = APIRouter(include_in_schema=False)
VIEWERS = frozenset({Role.SCHOOL_ADMIN, Role.DISTRICT})
REGISTRARS = frozenset({Role.SCHOOL_ADMIN})


def _broker(url: str) -> str:
    """Central's broker URL without the user and password central itself connects with."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, f"{netloc}:{parts.port}" if parts.port else netloc, parts.path, "", ""))


def run_command(settings: Settings, *, school: str, kiosk: str, secret: str, central_key: str, central_url: str) -> str:
    """The command that starts the new gate with what it needs to talk to this central."""
    env = {"SCHOOLGATE_KIOSK_CENTRAL_URL": central_url}
    if settings.topic_prefix != DEFAULT_PREFIX:
        env["SCHOOLGATE_KIOSK_TOPIC_PREFIX"] = settings.topic_prefix
    words = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    words += ["schoolgate", "kiosk", "run", "--school", school, "--kiosk", kiosk, "--secret", secret, "--central-key", central_key,
              "--mqtt-url", _broker(settings.mqtt_url), "--reader", "nfc:usb", "--no-ui"]
    return " ".join(shlex.quote(w) if "=" not in w else w for w in words)


def _page(request: Request, db: Session, principal: Principal, school: School, *, status: int = 200, error: str = "",
          made: dict | None = None, kiosk: str = "") -> HTMLResponse:
    settings = request.app.state.settings
    now = clock.utcnow()
    gates = health.gates(db, school=school, now=now, limit=timedelta(minutes=settings.gate_silent_minutes))
    tz = clock.zone(school)
    staff = {f"st{s.id}": s.name for s in db.exec(select(Staff).where(Staff.school_id == school.id))}
    for gate in gates:
        gate["guard_name"] = staff.get(gate["guard"] or "", gate["guard"])  # the gate says "st{id}"
        gate["last_seen_local"] = gate["last_seen"].astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if gate["last_seen"] else ""
    return render(request, "kiosks.html", status=status, principal=principal, school=school, gates=gates, error=error, made=made,
                  kiosk=kiosk, may_register=principal.role in REGISTRARS)


@router.get("/admin/kiosks")
def kiosks(request: Request, db: DbDep, school: Annotated[str | None, Query(max_length=64)] = None) -> HTMLResponse:
    principal = caller(request, db, VIEWERS)
    return _page(request, db, principal, school_of(db, principal, school))


@router.post("/admin/kiosks")
def register(
    request: Request, db: DbDep, kiosk: Annotated[str, Form(max_length=64)] = "", csrf: Annotated[str, Form(max_length=100)] = "",
    school: Annotated[str | None, Form(max_length=64)] = None,
) -> HTMLResponse:
    """Register a new gate: its secret (made here) is shown once, with the command to run on the gate.
    A gate already registered keeps its secret: a new one is given by ``central register-kiosk``."""
    check_csrf(request, csrf)
    principal = caller(request, db, REGISTRARS)
    row = school_of(db, principal, school)
    locale = web_session.locale(request)
    kiosk = kiosk.strip()
    try:
        check_id(kiosk, "kiosk")
    except ProtocolError:
        return _page(request, db, principal, row, status=422, error=t("web.kiosks.bad_id", locale), kiosk=kiosk)
    if db.exec(select(Kiosk).where(Kiosk.school_id == row.id, Kiosk.code == kiosk)).first() is not None:
        return _page(request, db, principal, row, status=409, error=t("web.kiosks.taken", locale, kiosk=kiosk), kiosk=kiosk)
    settings = request.app.state.settings
    _, secret = services.register_kiosk(db, school=row, kiosk=kiosk, actor=principal)
    central_key = keys.public_hex(settings.signing_key_file)
    made = {"kiosk": kiosk, "secret": secret, "central_key": central_key,
            "command": run_command(settings, school=row.code, kiosk=kiosk, secret=secret, central_key=central_key,
                                   central_url=str(request.base_url).rstrip("/"))}
    return _page(request, db, principal, row, status=201, made=made)
