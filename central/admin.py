"""What the administrator's commands do: import a roster, register a kiosk, publish rosters."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlmodel import Session

from central import importer, roster, services
from central.bus import publish_once
from central.core.config import Settings
from central.core.db import make_engine, migrate
from gateway import protocol
from gateway.mqtt import BrokerAddress, MqttError

log = logging.getLogger(__name__)


def open_db(settings: Settings):
    engine = make_engine(settings.sqlalchemy_url)
    migrate(engine)
    return engine


def publish_change(settings: Settings, change: roster.RosterChange | None) -> bool:
    """Publish a roster change now; False when no broker answered (central republishes on connect)."""
    if change is None:
        return True
    topics = protocol.Topics(settings.topic_prefix)
    messages = []
    if change.delta is not None:
        messages.append((topics.roster_delta(change.school), change.delta, False))
    messages.append((topics.roster(change.school), change.snapshot, True))
    try:
        publish_once(BrokerAddress.parse(settings.mqtt_url), messages)
    except (OSError, MqttError) as exc:
        log.warning("roster v%s not published now (%s); central publishes it when it connects", change.version, exc)
        return False
    return True


def import_files(
    settings: Settings, *, school: str, students: Path | None, guardians: Path | None, school_name: str | None = None
) -> tuple[importer.ImportResult, roster.RosterChange | None]:
    engine = open_db(settings)
    try:
        with Session(engine) as session:
            result = importer.import_roster(
                session, school=school, students=students, guardians=guardians, school_name=school_name
            )
            change = roster.refresh(session, services.get_school(session, code=school))
    finally:
        engine.dispose()
    publish_change(settings, change)
    return result, change


def register_kiosk(settings: Settings, *, school: str, kiosk: str, secret: str | None = None) -> str:
    engine = open_db(settings)
    try:
        with Session(engine) as session:
            services.ensure_school(session, code=school)
            _, secret = services.register_kiosk(session, school=school, kiosk=kiosk, secret=secret)
    finally:
        engine.dispose()
    return secret
