"""Each gate of a school and its health, as central last heard it (issue 13: a school has several gates)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, SchoolDep, SessionDep, require_role
from central.core import clock
from central.kiosks import health

router = APIRouter(prefix="/schools/{school}/kiosks", tags=["kiosks"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require_role("school_admin", "district", "guard"))]


class GateHealth(BaseModel):
    kiosk: str
    online: bool  # its last status said online, and it has not been silent since
    last_seen: datetime | None  # the last message central received from it (its own signed events or status)
    silent: bool  # nothing from it for longer than gate_silent_minutes
    last_seq_stored: int  # the highest of its events central has stored in order
    last_seq_written: int | None
    last_seq_acked: int | None
    queue: int | None  # events waiting in its outbox, as it last said
    roster_version: int | None
    clock_offset_ms: int | None
    reader: str | None
    guard: str | None  # the guard signed in at the gate, as it last said
    status_at: datetime | None  # when its last status arrived


@router.get("")
def list_gates(school: SchoolDep, request: Request, session: SessionDep, user: Reader) -> list[GateHealth]:
    """Every registered gate of the school, online or not, with its last known values."""
    limit = timedelta(minutes=request.app.state.settings.gate_silent_minutes)
    return [GateHealth(**gate) for gate in health.gates(session, school=school, now=clock.utcnow(), limit=limit)]
