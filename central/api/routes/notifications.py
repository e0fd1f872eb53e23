"""The school's notifications to guardians (issue 16): the admin sees what was sent and what was parked."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, IdPath, SchoolDep, SessionDep, require_role
from central.core import clock
from central.notifications import outbox

router = APIRouter(prefix="/schools/{school}/notifications", tags=["notifications"], responses=ERROR_RESPONSES)
Admin = Annotated[Principal, Depends(require_role("school_admin"))]


class NotificationPublic(BaseModel):
    id: int
    event_ref: str
    recipient: str  # g<guardian id>
    channel: str
    state: str
    tries: int
    next_try_at: datetime
    last_error: str
    sent_at: datetime | None


def _public(n) -> NotificationPublic:
    return NotificationPublic(id=n.id, event_ref=n.event_ref, recipient=n.recipient, channel=n.channel, state=n.state,
                              tries=n.tries, next_try_at=clock.as_utc(n.next_try_at), last_error=n.last_error,
                              sent_at=clock.as_utc(n.sent_at))


@router.get("")
def list_notifications(
    school: SchoolDep, session: SessionDep, user: Admin,
    state: Annotated[Literal["pending", "sent", "parked"] | None, Query()] = None,
) -> list[NotificationPublic]:
    """The school's notifications, newest first (500 at most); ``state=parked``: those that gave up."""
    return [_public(n) for n in outbox.listed(session, school=school, state=state)]


@router.post("/{notification_id}/resend")
def resend_notification(
    school: SchoolDep, notification_id: IdPath, session: SessionDep, user: Admin, request: Request,
) -> NotificationPublic:
    """Send a parked notification again, due at once under the same id (its consent checked again at the send)."""
    n = outbox.resend(session, school=school, notification_id=notification_id, now=clock.utcnow())
    wake = getattr(request.app.state, "notify_wake", None)
    if wake is not None:
        wake.set()
    return _public(n)
