"""After a change that kiosks must see: rebuild the school's roster and publish it when it changed."""

from __future__ import annotations

import logging

from fastapi import Request
from sqlmodel import Session

from central.core.models import School
from central.kiosks import roster
from gateway import protocol
from gateway.mqtt import MqttError

log = logging.getLogger(__name__)


def publish_roster(request: Request, session: Session, school: School) -> int:
    """Refresh and publish; returns the school's roster version. A broker that is away gets the
    snapshot when central reconnects (Bus.republish_rosters), so a publish failure is only logged."""
    settings = request.app.state.settings
    bus = getattr(request.app.state, "bus", None)
    if bus is None:
        roster.refresh(session, school, settings=settings)
        return school.roster_version
    try:
        roster.refresh_and_publish(session, school, settings=settings, publisher=bus, topics=protocol.Topics(settings.topic_prefix))
    except MqttError as exc:
        log.warning("roster v%s of %s not published now: %s", school.roster_version, school.code, exc)
    return school.roster_version
