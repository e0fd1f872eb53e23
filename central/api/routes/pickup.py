"""One-time pickup codes and photos, for people (kiosks have their own routes in ``kiosks.py``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, UploadFile
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from central.accounts.access import Principal, Role
from central.api.deps import IdPath, SchoolDep, SessionDep, require_role
from central.pickup import codes as pickup
from central.pickup.models import (
    Photo,
    PhotoPublic,
    PickupCodeCreate,
    PickupCodeIssued,
    PickupCodePublic,
    PickupCodeRedeem,
)

router = APIRouter(prefix="/schools/{school}", tags=["pickup"])

Issuer = Annotated[Principal, Depends(require_role(Role.SCHOOL_ADMIN, Role.GUARDIAN))]
CodeReader = Annotated[Principal, Depends(require_role(Role.SCHOOL_ADMIN, Role.GUARD, Role.GUARDIAN))]
Guard = Annotated[Principal, Depends(require_role(Role.SCHOOL_ADMIN, Role.GUARD))]
PhotoEditor = Annotated[Principal, Depends(require_role(Role.SCHOOL_ADMIN, Role.GUARDIAN))]
PhotoViewer = Annotated[Principal, Depends(require_role(Role.SCHOOL_ADMIN, Role.GUARD, Role.TEACHER, Role.GUARDIAN))]
JPEG = {200: {"content": {"image/jpeg": {}}, "description": "The thumbnail (JPEG)"}}


@router.post("/pickup-codes", status_code=201)
def issue_code(school: SchoolDep, body: PickupCodeCreate, request: Request, session: SessionDep, principal: Issuer) -> PickupCodeIssued:
    """Issue a code for one named person, one child, one date; the answer holds the only copy of the code."""
    # Live codes travel in the roster: each issue, revocation and use (and a wrong try, which may void
    # today's codes) records RosterChanged in central/pickup/codes.py, and a new version follows the commit.
    return pickup.issue_code(
        session,
        principal=principal,
        school=school,
        student=body.student,
        day=body.day,
        person=body.person,
        digits=request.app.state.settings.pickup_code_digits,
    )


@router.get("/pickup-codes")
def list_codes(school: SchoolDep, session: SessionDep, principal: CodeReader, day: date | None = None) -> list[PickupCodePublic]:
    return pickup.list_codes(session, principal=principal, school=school, day=day)


@router.delete("/pickup-codes/{code_id}")
def revoke_code(school: SchoolDep, code_id: IdPath, session: SessionDep, principal: Issuer) -> PickupCodePublic:
    return pickup.revoke_code(session, principal=principal, school=school, code_id=code_id)


@router.post("/pickup-codes/redeem")
def redeem_code(school: SchoolDep, body: PickupCodeRedeem, session: SessionDep, principal: Guard) -> PickupCodePublic:
    """A guard checks a code online; a right code is used up at once."""
    return pickup.redeem_code(session, principal=principal, school=school, student=body.student, code=body.code)


async def _upload(request: Request, file: UploadFile) -> bytes:
    limit = request.app.state.settings.photo_max_bytes
    return await file.read(limit + 1)  # one byte more than allowed is enough to refuse it


async def _put_photo(request: Request, session: Session, **owner) -> PhotoPublic:
    """Decoding a photo takes the CPU for a while: in a worker thread the event loop (``/healthz``,
    every other request) keeps answering meanwhile."""
    settings = request.app.state.settings
    return await run_in_threadpool(
        pickup.put_photo,
        session,
        **owner,
        max_px=settings.thumbnail_px,
        max_bytes=settings.photo_max_bytes,
        max_pixels=settings.photo_max_pixels,
    )


def _jpeg(photo: Photo) -> Response:
    return Response(photo.data, media_type="image/jpeg", headers={"ETag": f'"{photo.etag}"', "Cache-Control": "private, no-store"})


@router.put("/students/{student}/photo")
async def put_student_photo(
    school: SchoolDep, student: str, file: UploadFile, request: Request, session: SessionDep, principal: PhotoEditor
) -> PhotoPublic:
    data = await _upload(request, file)
    return await _put_photo(request, session, principal=principal, school=school, student=student, data=data)


@router.get("/students/{student}/photo", response_class=Response, responses=JPEG)
def get_student_photo(school: SchoolDep, student: str, session: SessionDep, principal: PhotoViewer) -> Response:
    return _jpeg(pickup.get_photo(session, principal=principal, school=school, student=student))


@router.delete("/students/{student}/photo", status_code=204)
def delete_student_photo(school: SchoolDep, student: str, session: SessionDep, principal: PhotoEditor) -> None:
    pickup.delete_photo(session, principal=principal, school=school, student=student)


@router.put("/guardians/{guardian_id}/photo")
async def put_guardian_photo(
    school: SchoolDep, guardian_id: IdPath, file: UploadFile, request: Request, session: SessionDep, principal: PhotoEditor
) -> PhotoPublic:
    data = await _upload(request, file)
    return await _put_photo(request, session, principal=principal, school=school, guardian_id=guardian_id, data=data)


@router.get("/guardians/{guardian_id}/photo", response_class=Response, responses=JPEG)
def get_guardian_photo(school: SchoolDep, guardian_id: IdPath, session: SessionDep, principal: PhotoViewer) -> Response:
    return _jpeg(pickup.get_photo(session, principal=principal, school=school, guardian_id=guardian_id))


@router.delete("/guardians/{guardian_id}/photo", status_code=204)
def delete_guardian_photo(school: SchoolDep, guardian_id: IdPath, session: SessionDep, principal: PhotoEditor) -> None:
    pickup.delete_photo(session, principal=principal, school=school, guardian_id=guardian_id)
