"""The pages' session (a signed cookie: Starlette's SessionMiddleware with itsdangerous), the caller
behind it, the page's language and the CSRF token every form carries.

The cookie holds the API login token (the same ``auth_token`` row as ``POST /api/v1/auth/login``
gives), the user id, the language chosen and the CSRF token; nothing else. Its secret is
``SCHOOLGATE_SESSION_SECRET``, or one made on first use and kept in ``SCHOOLGATE_SESSION_SECRET_FILE``.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from sqlmodel import Session
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from central.accounts import users
from central.accounts.access import Principal
from central.core import keys
from central.core.config import Settings
from central.core.i18n import LOCALES, pick_locale

COOKIE = "schoolgate_session"
#: paths that are no page: the API (bearer tokens), the probes, the public page
NOT_PAGES = ("/api/", "/healthz", "/metrics", "/public/")


class PageSessions:
    """SessionMiddleware on the pages only, made on the first page request (so a central that serves
    no page never makes a secret file)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self._sessions: SessionMiddleware | None = None

    def _middleware(self) -> SessionMiddleware:
        if self._sessions is None:
            secret = self.settings.session_secret.get_secret_value() or keys.session_secret(self.settings.session_secret_file)
            self._sessions = SessionMiddleware(
                self.app, secret_key=secret, session_cookie=COOKIE, max_age=self.settings.token_ttl_minutes * 60,
                same_site="lax", https_only=self.settings.session_cookie_secure,
            )
        return self._sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(NOT_PAGES):
            await self.app(scope, receive, send)
            return
        await self._middleware()(scope, receive, send)


def principal(request: Request, db: Session) -> Principal | None:
    """The caller logged in on this session, or None (never logged in, logged out, token expired)."""
    token = request.session.get("token")
    if not token:
        return None
    found = users.principal_for_token(db, token=token)
    if found is None or found.user_id != request.session.get("uid"):
        request.session.pop("token", None)
        return None
    return found


def locale(request: Request) -> str:
    """``?lang=`` (kept in the session), else the session's, else the browser's; zh_CN by default."""
    asked = request.query_params.get("lang")
    if asked in LOCALES:
        request.session["lang"] = asked
    return pick_locale(request.session.get("lang"), request.headers.get("accept-language"))


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, sent: object) -> bool:
    expected = request.session.get("csrf")
    return bool(expected) and isinstance(sent, str) and hmac.compare_digest(sent.encode(), expected.encode())
