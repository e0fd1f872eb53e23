"""The school's notifications to guardians (issue 16): the admin sees what was sent and what was parked."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, SchoolDep, SessionDep, require_role
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


@router.get("")
def list_notifications(
    school: SchoolDep, session: SessionDep, user: Admin,
    state: Annotated[Literal["pending", "sent", "parked"] | None, Query()] = None,
) -> list[NotificationPublic]:
    """The school's notifications, newest first (500 at most); ``state=parked``: those that gave up."""
    return [
        NotificationPublic(id=n.id, event_ref=n.event_ref, recipient=n.recipient, channel=n.channel, state=n.state,
                           tries=n.tries, next_try_at=clock.as_utc(n.next_try_at), last_error=n.last_error,
                           sent_at=clock.as_utc(n.sent_at))
        for n in outbox.listed(session, school=school, state=state)
    ]
