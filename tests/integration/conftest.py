"""Back-ends for the integration tests: the embedded broker with SQLite, and the real servers.

The real pair (Mosquitto on 127.0.0.1:1883, PostgreSQL on 127.0.0.1:5432) is skipped where it is
not reachable, except under CI=true, where a skip would hide a failure: there it must run.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest

from gateway.broker import EmbeddedBroker
from gateway.mqtt import BrokerAddress, free_port, reachable

REAL_MQTT = os.environ.get("SG_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
REAL_POSTGRES = os.environ.get("SG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def require_real_services() -> None:
    mqtt = BrokerAddress.parse(REAL_MQTT)
    pg = urlsplit(REAL_POSTGRES)
    missing = [
        what
        for what, host, port in (("Mosquitto", mqtt.host, mqtt.port), ("PostgreSQL", pg.hostname, pg.port or 5432))
        if not reachable(host, port)
    ]
    if missing:
        message = f"needs {' and '.join(missing)} ({REAL_MQTT}, {REAL_POSTGRES})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}, and a skip here would hide a failure")
        pytest.skip(message)


@dataclass
class Backend:
    name: str
    mqtt_url: str
    database_url: str
    topic_prefix: str
    embedded: EmbeddedBroker | None = None


@pytest.fixture(params=["embedded+sqlite", "mosquitto+postgres"])
def backend(request, tmp_path):
    # A fresh topic prefix per test: retained rosters of earlier runs are never seen.
    prefix = f"sgtest-{uuid.uuid4().hex[:10]}/v1"
    if request.param == "embedded+sqlite":
        broker = EmbeddedBroker("127.0.0.1", free_port()).start()
        try:
            yield Backend(request.param, broker.url, f"sqlite:///{tmp_path / 'central.sqlite3'}", prefix, broker)
        finally:
            broker.stop()
        return
    require_real_services()
    import psycopg

    name = f"sgtest_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(REAL_POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlsplit(REAL_POSTGRES)
    try:
        yield Backend(request.param, REAL_MQTT, urlunsplit(url._replace(path=f"/{name}")), prefix)
    finally:
        with psycopg.connect(REAL_POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
