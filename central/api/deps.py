"""Request dependencies: the database session, the caller, and what the caller's role may do.

Every route under ``/api/v1`` passes ``authorize`` (on the router): the caller must present a valid
bearer token, may only name a ``{school}`` of their own (district: any), and may only use the route
if their role is among those the route declares with ``require_role(...)``. A route that declares no
roles is open to the district role only, so a new route is closed until someone decides who may use it.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlmodel import Session

from central.accounts import access as accounts

from central.accounts.access import Principal, Role
from central.accounts import users
from central.core import events
from central.core.columns import MAX_ID
from central.core.errors import Forbidden, Unauthenticated, status_of
from central.core.i18n import LocalizedError, pick_locale
from central.schools import registry
from central.schools.models import School

bearer = HTTPBearer(auto_error=False)


def get_db(request: Request):
    with Session(request.app.state.engine) as session:
        # What the request's services record (e.g. RosterChanged) reaches the app's subscribers once committed.
        events.attach(session, request.app.state.events)
        yield session


SessionDep = Annotated[Session, Depends(get_db)]


def current_principal(
    request: Request, session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    if credentials is None:
        raise _http(request, Unauthenticated("token_required"))
    service = request.app.state.settings.api_token.get_secret_value()
    # The service token (SCHOOLGATE_API_TOKEN) is for machines; empty turns it off.
    if service and hmac.compare_digest(credentials.credentials.encode(), service.encode()):
        return accounts.SERVICE
    principal = users.principal_for_token(session, token=credentials.credentials)
    if principal is None:
        raise _http(request, Unauthenticated("token_required"))
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]


def _check(request: Request, principal: Principal, roles: frozenset[Role]) -> None:
    if principal.role not in roles:
        raise _http(request, Forbidden("role_refused", role=principal.role.value))
    school = request.path_params.get("school")
    if school is not None and not principal.may_use_school(school):
        raise _http(request, Forbidden("school_refused", school=school))


def require_role(*roles: Role | str) -> Callable[..., Principal]:
    """A dependency that lets only these roles through, and only into their own ``{school}`` (district: any).

    Use it as a parameter (``user: Annotated[Principal, Depends(require_role(...))]``) or in a
    route's ``dependencies``; list ``"district"`` where the district may use the route too.
    """
    allowed = frozenset(Role(r) for r in roles)

    def dependency(request: Request, principal: CurrentUser) -> Principal:
        _check(request, principal, allowed)
        return principal

    dependency.roles = allowed  # read by ``authorize``; tests/central/test_role_matrix.py checks the outcome by hand
    return dependency


def declared_roles(route) -> frozenset[Role] | None:
    """The roles a route lets in through ``require_role``, or None when it declares none."""
    found: set[Role] = set()
    stack = list(getattr(getattr(route, "dependant", None), "dependencies", []))
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "roles", None)
        if roles is not None:
            found |= roles
        stack.extend(dep.dependencies)
    return frozenset(found) or None


def authorize(request: Request, principal: CurrentUser, session: SessionDep) -> Principal:
    roles = declared_roles(request.scope.get("route")) or frozenset({Role.DISTRICT})
    _check(request, principal, roles)
    # The request's one session: whatever it changes is audited in this caller's name.
    session.info["actor"] = principal.label
    return principal


def path_school(school: Annotated[str, Path(description="The school's code")], session: SessionDep) -> School:
    """The ``{school}`` of the path as the row every service takes: the one way a route names its school.

    Resolved after ``authorize`` (a router dependency, so it runs first): a caller of another school
    is refused (403) before anyone learns whether the school exists (404).
    """
    return registry.get_school(session, school)


SchoolDep = Annotated[School, Depends(path_school)]


# Bounding ids in the schema makes a number past the database's integer range a 422, not a 500.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


class ErrorOut(BaseModel):
    detail: str


# Documented on every /api/v1 route, so clients (and schemathesis) know each refusal's shape.
ERROR_RESPONSES: dict[int | str, dict] = {
    401: {"model": ErrorOut, "description": "No valid bearer token"},
    403: {"model": ErrorOut, "description": "The caller's role or school may not use this"},
    404: {"model": ErrorOut, "description": "Not found, or not visible to the caller"},
    409: {"model": ErrorOut, "description": "Clashes with the current state"},
}


def _http(request: Request, exc: LocalizedError) -> HTTPException:
    locale = pick_locale(request.query_params.get("lang"), request.headers.get("accept-language"))
    headers = {"WWW-Authenticate": "Bearer"} if status_of(exc) == status.HTTP_401_UNAUTHORIZED else None
    return HTTPException(status_of(exc), exc.text(locale), headers)


async def localized_error_handler(request: Request, exc: LocalizedError) -> JSONResponse:
    """The route boundary for service errors: status by kind, message in the caller's language.

    A 422 keeps FastAPI's own shape (``detail`` a list with ``msg`` and ``type``), so a client reads
    a rule broken in a service and a malformed field the same way.
    """
    http = _http(request, exc)
    detail: object = http.detail
    if http.status_code == status.HTTP_422_UNPROCESSABLE_CONTENT:
        detail = [{"loc": [], "msg": http.detail, "type": exc.key}]
    return JSONResponse({"detail": detail}, status_code=http.status_code, headers=http.headers)
