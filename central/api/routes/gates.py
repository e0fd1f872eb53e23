"""A school's gates (issue 13): each gate and its health as central last heard it, and the alerts about
children the gates raised, once each however many gates raised them."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlmodel import col, select

from central.accounts import access
from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, SchoolDep, SessionDep, require_role
from central.core import clock
from central.kiosks import alerts, health
from central.schools.models import Student

router = APIRouter(prefix="/schools/{school}/kiosks", tags=["kiosks"], responses=ERROR_RESPONSES)
alerts_router = APIRouter(prefix="/schools/{school}/alerts", tags=["kiosks"], responses=ERROR_RESPONSES)
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


class ChildAlertPublic(BaseModel):
    kind: str  # absent, late_pickup
    student: str  # student number
    name: str | None  # None: no such student in the school's records now
    session: str
    at: datetime  # the first gate's event
    kiosk: str  # the first gate to raise it
    raised: int  # how many gates' events raised it


@alerts_router.get("")
def list_alerts(
    school: SchoolDep, session: SessionDep, user: Reader, day: Annotated[date | None, Query()] = None
) -> list[ChildAlertPublic]:
    """The alerts about children first raised on ``day`` (default: the school's today), once each."""
    rows = alerts.on_day(session, school=school, day=day or clock.local_today(school))
    numbers = sorted({row.student for row in rows})
    students = session.exec(select(Student).where(Student.school_id == school.id, col(Student.student_no).in_(numbers))).all()
    access.log_child_reads(session, principal=user, students=list(students), what="alerts")
    names = {s.student_no: s.name for s in students}
    return [
        ChildAlertPublic(kind=r.kind, student=r.student, name=names.get(r.student), session=r.session,
                         at=clock.as_utc(r.at), kiosk=r.kiosk, raised=r.raised)
        for r in rows
    ]
