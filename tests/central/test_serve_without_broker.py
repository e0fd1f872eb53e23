"""Central answers HTTP at once when the broker is down at its start; the bus connects in the
background and /healthz says mqtt false until it has (issue 18)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

import httpx
import pytest
from fastapi.testclient import TestClient
from sgtest import wait_for

from central.core.config import Settings
from central.main import create_app
from gateway.broker import wait_until_reachable
from gateway.mqtt import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def test_startup_does_not_wait_for_the_broker(tmp_path, migrated_db, caplog):
    """The bus used to wait up to 10 s for the broker inside the app's startup (then log that it
    has none): now startup is over, and /healthz answers, before any such wait could end."""
    shutil.copy(migrated_db, tmp_path / "central.sqlite3")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'central.sqlite3'}",
                        mqtt_url=f"mqtt://central:pw@127.0.0.1:{free_port()}", notify_check_seconds=3600)
    caplog.set_level(logging.WARNING, logger="central.kiosks.bus")
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").json() == {"ok": True, "mqtt": False}
        assert "has no broker" not in caplog.text  # startup did not sit out the bus's wait


def _healthz(url: str) -> dict | None:
    try:
        return httpx.get(url, timeout=2).json()
    except httpx.HTTPError:
        return None


def test_serve_answers_with_no_broker_and_connects_when_one_comes(tmp_path):
    if not os.path.exists(MOSQUITTO):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: the mosquitto binary is needed and missing")
        pytest.skip("needs the mosquitto binary (Debian package mosquitto)")
    mqtt_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}
    env.update(SCHOOLGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'c.sqlite3'}",
               SCHOOLGATE_MQTT_URL=f"mqtt://central:pw@127.0.0.1:{mqtt_port}",
               SCHOOLGATE_SIGNING_KEY_FILE=str(tmp_path / "signing.key"))
    serve = subprocess.Popen([sys.executable, "-m", "schoolgate", "central", "serve", "--port", str(http_port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    broker = None
    try:
        url = f"http://127.0.0.1:{http_port}/healthz"
        assert wait_for(lambda: _healthz(url), 30, "central to answer /healthz") == {"ok": True, "mqtt": False}
        (tmp_path / "m.conf").write_text(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\n")
        broker = subprocess.Popen([MOSQUITTO, "-c", str(tmp_path / "m.conf")], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        wait_until_reachable("127.0.0.1", mqtt_port, timeout=10)
        # paho retries every 1-5 s: the same process connects without a restart.
        assert wait_for(lambda: (_healthz(url) or {}).get("mqtt"), 30, "/healthz to say mqtt") is True
        assert serve.poll() is None
    finally:
        serve.terminate()
        serve.wait(15)
        if broker:
            broker.kill()
            broker.wait(10)
