"""What tests in several folders share: the real servers and fresh databases on them, waiting, a clock.

Mosquitto on 127.0.0.1:1883 and PostgreSQL on 127.0.0.1:5432 are skipped where they are not
reachable, except under CI=true, where a skip would hide a failure: there they must run.
"""

from __future__ import annotations

import atexit
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest

from gateway.mqtt import BrokerAddress, reachable

REAL_MQTT = os.environ.get("SG_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
REAL_POSTGRES = os.environ.get("SG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def require(*what: str) -> None:
    """Skip (or under CI=true fail) unless each of ``mosquitto`` and ``postgres`` named answers."""
    mqtt = BrokerAddress.parse(REAL_MQTT)
    pg = urlsplit(REAL_POSTGRES)
    where = {"mosquitto": ("Mosquitto", mqtt.host, mqtt.port), "postgres": ("PostgreSQL", pg.hostname, pg.port or 5432)}
    missing = [where[w][0] for w in what if not reachable(*where[w][1:])]
    if missing:
        message = f"needs {' and '.join(missing)} ({REAL_MQTT}, {REAL_POSTGRES})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}, and a skip here would hide a failure")
        pytest.skip(message)


def _database_url(name: str) -> str:
    return urlunsplit(urlsplit(REAL_POSTGRES)._replace(path=f"/{name}"))


_template: str | None = None  # this test process's migrated database, copied by fresh_postgres_database(migrated=True)


def _migrated_template() -> str:
    """A database at the newest schema, made once per test process (each xdist worker has its own)
    and dropped at exit: copying it is much faster than running every migration for each test."""
    global _template
    if _template is None:
        import psycopg

        from central.core.db import make_engine, migrate

        name = f"sgtest_template_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(REAL_POSTGRES, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        atexit.register(_drop, name)
        engine = make_engine(_database_url(name))
        try:
            migrate(engine)
        finally:
            engine.dispose()  # CREATE DATABASE … TEMPLATE needs nobody connected to the template
        _template = name
    return _template


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect(REAL_POSTGRES, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def require_chinese_font() -> None:
    """Skip (or under CI=true fail) unless a Chinese font for the PDFs is installed (Debian's
    fonts-noto-cjk; scripts/test installs it under CI=true)."""
    from central.billing.documents import find_font
    from central.core.errors import Unavailable

    try:
        find_font()
    except Unavailable as exc:
        message = f"needs a Chinese font for the PDFs (apt-get install fonts-noto-cjk): {exc.text('en')}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}, and a skip here would hide a failure")
        pytest.skip(message)


def require_chromium() -> str:
    """The Chromium to drive with Playwright (Debian's ``chromium``): skip saying why where there is none,
    or Playwright is missing; under CI=true fail instead, since a skip there would hide a failure."""
    import importlib.util
    import shutil

    found = shutil.which("chromium")
    missing = []
    if found is None:
        missing.append("Chromium (apt-get install chromium fonts-noto-cjk)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("Playwright for Python (the test extra)")
    if missing:
        message = f"the browser tests need {' and '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}, and a skip here would hide a failure")
        pytest.skip(message)
    return found


@contextmanager
def fresh_postgres_database(*, migrated: bool = False) -> Iterator[str]:
    """The URL of a new database on the real server, dropped afterwards: empty, or with ``migrated``
    already at the newest schema (a copy of one migrated database, as a new deployment would have)."""
    require("postgres")
    import psycopg

    name = f"sgtest_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{_migrated_template()}"' if migrated else ""
    with psycopg.connect(REAL_POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{template}')
    try:
        yield _database_url(name)
    finally:
        _drop(name)


class RunningClock:
    """A wall clock that reads ``start`` when made and runs on at the monotonic clock's pace.

    For a test whose parts (central, a kiosk, its readers) must agree on the time of day and see
    time pass while they work, whatever the machine's wall clock says: one instance is handed to
    each (``Kiosk(clock=…)``, ``SimulatedReader(clock=…)``, central's ``clock.utcnow``)."""

    def __init__(self, start: datetime) -> None:
        self.start, self._began = start, time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._began)


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    """Poll ``condition`` until it gives something true, and return that (a test may go on to check
    it); fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def pilot_until(pilot, condition, what: str, timeout: float = 20.0) -> None:
    """``wait_for`` inside a Textual pilot test: the app keeps running while we wait."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.02)


# --- the embedded broker as the tests run it: logins only, like every installation ---------------

CENTRAL_PASSWORD = "sgtest-central-password"
PROBE_PASSWORD = "sgtest-probe-password"


class Broker:
    """An embedded broker (not yet started) that takes central's login, a ``probe`` login for
    tests that publish raw payloads, and every kiosk registered in ``database_url``."""

    def __init__(self, database_url: str, port: int | None = None) -> None:
        from central.admin import broker_logins
        from central.core.config import Settings
        from gateway.broker import EmbeddedBroker
        from gateway.mqtt import free_port

        self.port = port or free_port()
        #: central's URL, with its login
        self.central_url = f"mqtt://central:{CENTRAL_PASSWORD}@127.0.0.1:{self.port}"
        #: a kiosk's URL: the kiosk adds the login derived from its secret
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.probe_url = f"mqtt://probe:{PROBE_PASSWORD}@127.0.0.1:{self.port}"
        logins = broker_logins(Settings(database_url=database_url, mqtt_url=self.central_url), probe=PROBE_PASSWORD)
        self.embedded = EmbeddedBroker("127.0.0.1", self.port, logins=logins)

    def start(self) -> Broker:
        self.embedded.start()
        return self

    def stop(self) -> None:
        self.embedded.stop()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
