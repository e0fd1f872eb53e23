"""What kiosks fetch over HTTP, signed with their own secret (``gateway.photos``): photos, code digests
and the school's feed after a place (a gate catching up with what the others saw).

These routes sit beside ``/api/v1`` rather than behind its login: a kiosk is not a person and has
no role, only the secret it shares with central.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sqlmodel import SQLModel

from central.api.deps import ERROR_RESPONSES, SessionDep
from central.core import keys
from central.kiosks import feed
from central.pickup import codes as pickup
from central.pickup.codes import KioskCaller
from central.pickup.models import PhotoListed
from gateway import protocol
from gateway.photos import SIGNATURE_HEADER, TIME_HEADER

router = APIRouter(prefix="/kiosks/{school}/{kiosk}", tags=["kiosks"], responses=ERROR_RESPONSES)


def signed_kiosk(
    school: str,
    kiosk: str,
    request: Request,
    session: SessionDep,
    x_sg_time: Annotated[str | None, Header(alias=TIME_HEADER, max_length=20)] = None,
    x_sg_signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER, max_length=64)] = None,
) -> KioskCaller:
    return pickup.authenticate_kiosk(
        session,
        school=school,
        kiosk=kiosk,
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        at=x_sg_time,
        signature=x_sg_signature,
        skew_s=request.app.state.settings.kiosk_request_skew_s,
    )


KioskDep = Annotated[KioskCaller, Depends(signed_kiosk)]


class PickupCodeDigest(SQLModel):
    id: int
    student: str
    day: str
    person: str
    digest: str


@router.get("/photos")
def list_photos(session: SessionDep, caller: KioskDep) -> list[PhotoListed]:
    """Every thumbnail of the school with its ETag, for the kiosk to bring its cache up to date."""
    return pickup.kiosk_photo_list(session, caller=caller)


@router.get("/photos/{kind}/{ref}", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}, 304: {"description": "Not modified"}})
def get_photo(kind: str, ref: str, request: Request, session: SessionDep, caller: KioskDep) -> Response:
    photo = pickup.kiosk_photo(session, caller=caller, kind=kind, ref=ref)
    etag = f'"{photo.etag}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(photo.data, media_type="image/jpeg", headers={"ETag": etag, "Cache-Control": "private, no-store"})


@router.get("/pickup-codes")
def list_codes(session: SessionDep, caller: KioskDep) -> list[PickupCodeDigest]:
    """Live codes from today on, each as this kiosk's digest: no code ever leaves central."""
    return [PickupCodeDigest(**c) for c in pickup.kiosk_codes(session, school=caller.school, kiosk=caller.kiosk.code)]


@router.get(
    "/feed",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}, "description": "A run of the school's feed, signed by central"}},
)
def feed_after(
    request: Request,
    session: SessionDep,
    caller: KioskDep,
    after: Annotated[int, Query(ge=0, le=protocol.INT32, description="the last place the gate has")] = 0,
    limit: Annotated[int, Query(ge=1, le=feed.PER_MESSAGE)] = feed.PER_MESSAGE,
) -> Response:
    """The school's events after place ``after`` (every gate's, this one's too), and the head: a gate
    that was away reads on until it reaches the head. Signed by central like what it publishes."""
    message = feed.after(session, school=caller.school, after=after, limit=limit)
    key = keys.load_or_create(request.app.state.settings.signing_key_file)
    return Response(protocol.seal(protocol.canonical_json(message), key), media_type="application/json")
