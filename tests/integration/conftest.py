"""Back-ends for the integration tests: the embedded broker with SQLite, and the real servers
(Mosquitto and PostgreSQL, see tests/sgtest.py: skipped where absent, required under CI=true)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sgtest import REAL_MQTT, Broker, fresh_postgres_database, require


@dataclass
class Backend:
    name: str
    mqtt_url: str  # central's, with its login on the embedded broker
    database_url: str
    topic_prefix: str
    embedded: Broker | None = None
    kiosk_url: str = ""  # a kiosk's: it adds the login derived from its secret
    probe_url: str = ""  # a test's own raw client

    def __post_init__(self) -> None:
        self.kiosk_url = self.kiosk_url or self.mqtt_url
        self.probe_url = self.probe_url or self.mqtt_url


@pytest.fixture(params=["embedded+sqlite", "mosquitto+postgres"])
def backend(request, tmp_path):
    # A fresh topic prefix per test: retained rosters of earlier runs are never seen.
    prefix = f"sgtest-{uuid.uuid4().hex[:10]}/v1"
    if request.param == "embedded+sqlite":
        database_url = f"sqlite:///{tmp_path / 'central.sqlite3'}"
        broker = Broker(database_url).start()
        try:
            yield Backend(request.param, broker.central_url, database_url, prefix, broker, broker.url, broker.probe_url)
        finally:
            broker.stop()
        return
    require("mosquitto", "postgres")
    with fresh_postgres_database(migrated=True) as url:
        yield Backend(request.param, REAL_MQTT, url, prefix)


@pytest.fixture(params=["embedded+sqlite", "mosquitto+postgres"])
def chaos_backend(request, tmp_path):
    """(broker kind, database URL): the embedded broker with SQLite, or Mosquitto with PostgreSQL."""
    if request.param == "embedded+sqlite":
        yield "embedded", f"sqlite:///{tmp_path / 'central.sqlite3'}"
        return
    with fresh_postgres_database(migrated=True) as url:
        yield "mosquitto", url


@pytest.fixture
def fresh_postgres():
    """The URL of a new PostgreSQL database at the newest schema."""
    with fresh_postgres_database(migrated=True) as url:
        yield url
