"""Integrators' webhooks (issue 16): the school admin subscribes the school's own systems to event kinds and
reads each delivery's answer; the payload is documented in the OpenAPI's ``webhooks``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, IdPath, SchoolDep, SessionDep, require_role
from central.notifications import webhooks as service
from central.notifications.webhooks import DeliveryOut, SubscriptionCreated, SubscriptionIn, SubscriptionOut

router = APIRouter(prefix="/schools/{school}/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES)
Admin = Annotated[Principal, Depends(require_role("school_admin"))]


@router.get("")
def list_webhooks(school: SchoolDep, session: SessionDep, user: Admin) -> list[SubscriptionOut]:
    return service.listed(session, school=school)


@router.post("", status_code=201)
def subscribe(school: SchoolDep, body: SubscriptionIn, session: SessionDep, user: Admin) -> SubscriptionCreated:
    """Subscribe a URL to event kinds; the answer holds the signing secret, the only time it is shown."""
    return service.subscribe(session, school=school, body=body, actor=user.label)


@router.delete("/{subscription_id}", status_code=204)
def unsubscribe(school: SchoolDep, subscription_id: IdPath, session: SessionDep, user: Admin) -> None:
    service.unsubscribe(session, school=school, subscription_id=subscription_id)


@router.get("/{subscription_id}/deliveries")
def list_deliveries(school: SchoolDep, subscription_id: IdPath, session: SessionDep, user: Admin) -> list[DeliveryOut]:
    return service.deliveries(session, school=school, subscription_id=subscription_id)


def document(app) -> None:
    """The payload each delivery carries, in the OpenAPI's ``webhooks`` section."""

    @app.webhooks.post("schoolgate-event")
    def schoolgate_event(body: service.WebhookPayload) -> None:
        """POSTed to each subscribed URL. Headers: ``X-Schoolgate-Id`` (the delivery's id, its idempotency key),
        ``X-Schoolgate-Timestamp`` (Unix seconds), ``X-Schoolgate-Signature`` (hex HMAC-SHA256 with the
        subscription's secret over the timestamp, ``.``, and the raw body). Answer 2xx; anything else is retried."""
