from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from central.api.deps import SchoolDep, SessionDep, require_role
from central.kiosks import services
from gateway import protocol

# Kiosk events and safety incidents are the school's safety log: its admins, the guards who work the
# gate, and the district that inspects. A teacher follows their own groups on the live roster instead.
router = APIRouter(
    prefix="/schools/{school}", tags=["events"], dependencies=[Depends(require_role("district", "school_admin", "guard"))]
)


# A kiosk id as the wire protocol has it (ARCHITECTURE.md "Wire protocol v1"): anything else names no kiosk.
KioskId = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


@router.get("/events")
def list_events(
    school: SchoolDep,
    session: SessionDep,
    kiosk: KioskId = None,
    kind: Annotated[list[protocol.Kind] | None, Query()] = None,
    after_kiosk: KioskId = None,
    after_seq: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # SQLite compares 64-bit integers only
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    """Events in (kiosk, seq) order. ``kind`` (repeatable) keeps those kinds; an unknown kind is a 422.
    Next page: ``after_kiosk`` and ``after_seq`` of the last event received. ``kiosk`` lists one
    kiosk's, where ``after_seq`` alone is enough; ``after_seq`` without either kiosk is a 422."""
    return services.list_events(
        session, school=school, kiosk=kiosk, kinds=kind, after_kiosk=after_kiosk, after_seq=after_seq, limit=limit
    )


@router.get("/incidents")
def list_incidents(school: SchoolDep, session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict]:
    rows = services.list_incidents(session, school=school, limit=limit)
    return [i.model_dump(exclude={"payload"}) for i in rows]


# An incident whose topic names no known school (an unregistered or malformed school id) belongs to
# no school's log; the district, which inspects every school, sees it here with all the others.
district_router = APIRouter(tags=["events"], dependencies=[Depends(require_role("district"))])


@district_router.get("/incidents")
def list_all_incidents(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100, no_school: bool = False
) -> list[dict]:
    """Every incident, newest first, with its school's id (``null``: it names no known school);
    ``no_school=true`` lists only those."""
    return services.list_all_incidents(session, no_school=no_school, limit=limit)
