"""Login and logout; who am I. ``login`` is the one /api/v1 route open without a token."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlmodel import SQLModel


from central.accounts.access import Principal, Role
from central.accounts import users
from central.api.deps import ERROR_RESPONSES, SessionDep, bearer, require_role
from central.core import clock

public_router = APIRouter(prefix="/auth", tags=["auth"], responses=ERROR_RESPONSES)
router = APIRouter(tags=["auth"])


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    role: Role
    school: str | None


class MePublic(SQLModel):
    username: str
    role: Role
    school: str | None
    guardian_id: int | None
    staff_id: int | None


@public_router.post("/login")
def login(body: LoginIn, request: Request, session: SessionDep) -> LoginOut:
    settings = request.app.state.settings
    token, row, user = users.login(
        session,
        username=body.username,
        password=body.password,
        ttl=timedelta(minutes=settings.token_ttl_minutes),
        max_failures=settings.login_max_failures,
        lock_for=timedelta(minutes=settings.login_lock_minutes),
        source=users.source_of(request.client.host if request.client else None),
    )
    principal = users.principal_of(session, user)
    return LoginOut(access_token=token, expires_at=clock.as_utc(row.expires_at), role=principal.role, school=principal.school_code)


EVERYONE = tuple(Role)


@router.post("/auth/logout", status_code=204)
def logout(
    session: SessionDep, request: Request, _: Annotated[Principal, Depends(require_role(*EVERYONE))], credentials=Depends(bearer)
) -> None:
    users.logout(session, token=credentials.credentials)


@router.get("/me")
def me(principal: Annotated[Principal, Depends(require_role(*EVERYONE))]) -> MePublic:
    return MePublic(
        username=principal.username,
        role=principal.role,
        school=principal.school_code,
        guardian_id=principal.guardian_id,
        staff_id=principal.staff_id,
    )
