"""Integrators' webhooks (issue 16): the school admin subscribes a URL of the school's own systems to event
kinds; each delivery goes through the outbox (stored first, retried, parked), signed HMAC-SHA256 over
``timestamp + "." + body`` with the subscription's secret (``X-Schoolgate-Signature``, ``X-Schoolgate-Timestamp``:
a receiver refuses a timestamp far from its clock, a replay), ``X-Schoolgate-Id`` its idempotency key."""

from __future__ import annotations

import secrets
from datetime import datetime

from pydantic import BaseModel, Field, HttpUrl
from sqlmodel import Session, col, select

from central.core import clock
from central.core.errors import Invalid, Missing
from central.notifications.models import EVENT_KINDS, Notification, WebhookSubscription
from central.schools.models import School


class WebhookPayload(BaseModel):
    """The JSON body of each delivery (``Content-Type: application/json``)."""

    event: str = Field(description="what happened, once: event:<gate event id>, absent:<session>:<child>, …")
    kind: str = Field(description="picked_up, left_alone, checked_in, absent, code_issued, code_used, late_pickup, barred_attempt")
    school: str = Field(description="the school's code")
    student: str = Field(description="the child's student number")
    at: datetime = Field(description="when it happened (UTC)")
    where: str = Field(description="the gate or the place")


class SubscriptionIn(BaseModel):
    url: HttpUrl
    kinds: list[str] = Field(min_length=1)


class SubscriptionOut(BaseModel):
    id: int
    url: str
    kinds: list[str]
    created_at: datetime


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="the signing secret: shown this once")


class DeliveryOut(BaseModel):
    id: int
    event_ref: str
    kind: str
    state: str
    tries: int
    last_error: str
    answer: str
    created_at: datetime
    sent_at: datetime | None


def _out(sub: WebhookSubscription) -> SubscriptionOut:
    return SubscriptionOut(id=sub.id, url=sub.url, kinds=sub.kinds, created_at=clock.as_utc(sub.created_at))


def _mine(session: Session, *, school: School, subscription_id: int) -> WebhookSubscription:
    sub = session.get(WebhookSubscription, subscription_id)
    if sub is None or sub.school_id != school.id:
        raise Missing("notify.webhook_missing", id=subscription_id)
    return sub


def subscribe(session: Session, *, school: School, body: SubscriptionIn, actor: str) -> SubscriptionCreated:
    unknown = sorted(set(body.kinds) - set(EVENT_KINDS))
    if unknown:
        raise Invalid("notify.unknown_choice", names=", ".join(unknown))
    sub = WebhookSubscription(school_id=school.id, url=str(body.url), kinds=sorted(set(body.kinds)),
                              secret=secrets.token_hex(32), created_by=actor)
    session.add(sub)
    session.commit()
    return SubscriptionCreated(**_out(sub).model_dump(), secret=sub.secret)


def listed(session: Session, *, school: School) -> list[SubscriptionOut]:
    rows = session.exec(select(WebhookSubscription).where(WebhookSubscription.school_id == school.id)
                        .order_by(col(WebhookSubscription.id)))
    return [_out(s) for s in rows]


def unsubscribe(session: Session, *, school: School, subscription_id: int) -> None:
    session.delete(_mine(session, school=school, subscription_id=subscription_id))
    session.commit()


def deliveries(session: Session, *, school: School, subscription_id: int) -> list[DeliveryOut]:
    """The subscription's deliveries, newest first (500 at most), each with the receiver's last answer."""
    sub = _mine(session, school=school, subscription_id=subscription_id)
    rows = session.exec(select(Notification).where(Notification.school_id == school.id, Notification.recipient == f"w{sub.id}")
                        .order_by(col(Notification.id).desc()).limit(500))
    return [DeliveryOut(id=n.id, event_ref=n.event_ref, kind=n.kind, state=n.state, tries=n.tries, last_error=n.last_error,
                        answer=n.answer, created_at=clock.as_utc(n.created_at), sent_at=clock.as_utc(n.sent_at)) for n in rows]
