"""The roster publisher: rebuild a school's roster and publish it when it changed.

Subscribed in ``central.main.create_app`` to ``RosterChanged`` (central/core/events.py): services record
the event where they change what kiosks copy, and it arrives here once their change is committed. The
explicit ``POST …/roster/refresh`` calls ``publish_roster`` itself, since the refresh is its action.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from sqlmodel import Session

from central.core.events import RosterChanged
from central.kiosks import roster
from central.schools.models import School
from gateway import protocol
from gateway.mqtt import MqttError

log = logging.getLogger(__name__)


def refresh_and_publish(app: FastAPI, session: Session, school: School) -> int:
    """Refresh and publish; returns the school's roster version. A broker that is away gets the
    snapshot when central reconnects (Bus.republish_rosters), so a publish failure is only logged."""
    settings = app.state.settings
    bus = getattr(app.state, "bus", None)
    if bus is None:
        roster.refresh(session, school, settings=settings)
        return school.roster_version
    try:
        roster.refresh_and_publish(session, school, settings=settings, publisher=bus, topics=protocol.Topics(settings.topic_prefix))
    except MqttError as exc:
        log.warning("roster v%s of %s not published now: %s", school.roster_version, school.code, exc)
    return school.roster_version


def publish_roster(request: Request, session: Session, school: School) -> int:
    """The refresh route's action, in the request's own session."""
    return refresh_and_publish(request.app, session, school)


def on_roster_changed(app: FastAPI) -> Callable[[RosterChanged], None]:
    """The handler for ``RosterChanged``: runs after the commit, in a session of its own (the committing
    one may emit no SQL then). A roster that cannot be rebuilt now is logged by the dispatcher; the
    roster timer or the next change publishes it."""

    def handle(event: RosterChanged) -> None:
        with Session(app.state.engine) as session:
            school = session.get(School, event.school_id)
            if school is None:
                log.warning("roster change for school id %s, which does not exist", event.school_id)
                return
            refresh_and_publish(app, session, school)

    return handle
