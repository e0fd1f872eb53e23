"""A kiosk's health seen from outside (issue 13): `schoolgate kiosk run --no-ui` as a process stopped by
SIGTERM, and its MQTT connection refused by a real broker (a wrong password, a topic the ACL refuses).

Brokers: the embedded one (amqtt) and a Mosquitto started here on free ports from the configuration
`gateway/mosquitto.py` writes (skipped without the binary, required under CI=true), each with a
fresh topic prefix so retained statuses of other tests are never seen.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sgtest import wait_for

from gateway import mosquitto, protocol
from gateway.broker import EmbeddedBroker, wait_until_reachable
from gateway.mqtt import BrokerAddress, Connection, Inbound, Logins, MqttError, free_port, kiosk_credentials

SCHOOL, KIOSK = "s1", "k1"
SECRET = "11" * 32
OTHER_SECRET = "22" * 32  # k2's: its ack topic is one k1 may not read on Mosquitto
PROBE_PASSWORD = "probe-pw"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@dataclass
class Site:
    """A broker for the test: where kiosks connect, and where a test's probe (central's login) does."""

    kind: str
    kiosk_port: int
    probe: BrokerAddress
    prefix: str

    @property
    def topics(self) -> protocol.Topics:
        return protocol.Topics(self.prefix)


@contextlib.contextmanager
def embedded() -> Iterator[Site]:
    port = free_port()
    secrets = {(SCHOOL, KIOSK): SECRET, (SCHOOL, "k2"): OTHER_SECRET}
    logins = Logins({"probe": PROBE_PASSWORD}, kiosk_secret=lambda s, k: secrets.get((s, k)))
    with EmbeddedBroker("127.0.0.1", port, logins=logins):
        yield Site("embedded", port, BrokerAddress("127.0.0.1", port, "probe", PROBE_PASSWORD),
                   f"sgtest-{uuid.uuid4().hex[:8]}/v1")


@contextlib.contextmanager
def real_mosquitto(folder: Path) -> Iterator[Site]:
    if not os.path.exists(MOSQUITTO):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: the mosquitto binary is needed and missing")
        pytest.skip("needs the mosquitto binary (Debian package mosquitto)")
    kiosks, central = free_port(), free_port()
    prefix = f"sgtest-{uuid.uuid4().hex[:8]}/v1"
    logins = [mosquitto.KioskLogin(SCHOOL, KIOSK, SECRET), mosquitto.KioskLogin(SCHOOL, "k2", OTHER_SECRET)]
    conf = mosquitto.write(folder, kiosks=logins, central_password=PROBE_PASSWORD, port=kiosks, bind="127.0.0.1",
                           prefix=prefix, user=getpass.getuser(), central_port=central)
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_reachable("127.0.0.1", kiosks, timeout=10)
        wait_until_reachable("127.0.0.1", central, timeout=10)
        yield Site("mosquitto", kiosks, BrokerAddress("127.0.0.1", central, "central", PROBE_PASSWORD), prefix)
    finally:
        proc.kill()
        proc.wait(10)


@pytest.fixture(params=["embedded", "mosquitto"])
def site(request, tmp_path):
    with (embedded() if request.param == "embedded" else real_mosquitto(tmp_path / "mosquitto")) as made:
        yield made


class Probe:
    """A test's own subscriber (central's login): every message on its topics, in order."""

    def __init__(self, site: Site, topic: str) -> None:
        self.got: list[dict] = []
        self._lock = threading.Lock()
        self.connection = Connection(f"probe-{uuid.uuid4().hex[:6]}", site.probe, on_message=self._keep, name="probe")
        self.connection.subscribe([(topic, 1)])
        self.connection.start()
        self.connection.wait_subscribed(10)

    def _keep(self, message: Inbound) -> None:
        with self._lock:
            self.got.append(json.loads(message.payload) if message.payload else {})

    def last(self) -> dict:
        with self._lock:
            return self.got[-1] if self.got else {}

    def stop(self) -> None:
        self.connection.stop()


class Lines:
    """A process's standard output, one line at a time, read by a thread (readline would block the test)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}


# --- SIGTERM --------------------------------------------------------------------------------------


def test_sigterm_stops_the_kiosk_as_cleanly_as_ctrl_c(site, tmp_path):
    probe = Probe(site, site.topics.status(SCHOOL, KIOSK))
    args = ["kiosk", "run", "--no-ui", "--school", SCHOOL, "--kiosk", KIOSK, "--reader", "sim", "--lang", "en",
            "--data-dir", str(tmp_path / "kiosk"), "--secret", SECRET, "--mqtt-url", f"mqtt://127.0.0.1:{site.kiosk_port}"]
    env = {**clean_env(), "SCHOOLGATE_KIOSK_TOPIC_PREFIX": site.prefix}
    proc = subprocess.Popen([sys.executable, "-m", "schoolgate", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        out = Lines(proc.stdout)
        wait_for(lambda: probe.last().get("online"), 30, "the kiosk's online status")
        proc.stdin.write("04A1B2C3\n")
        proc.stdin.flush()
        wait_for(lambda: out.lines, 30, "the decision line")
        wait_for(lambda: probe.last().get("last_seq") == 1, 30, "a status after the tap")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    assert "Traceback" not in err, err
    assert "Kiosk k1 stopped (school s1)" in err
    # The offline status of a clean stop (values, `at`), not the will (MQTT disconnected first).
    wait_for(lambda: probe.last().get("online") is False, 10, "the offline status")
    last = probe.last()
    assert (last["last_seq"], last["queue"], last["acked"]) == (1, 1, 0), last
    assert "at" in last
    probe.stop()
    # The store is closed: no write-ahead log left over, and the event is in the outbox.
    from kiosk.store import KioskStore

    data = tmp_path / "kiosk"
    assert not list(data.glob("*-wal")), list(data.iterdir())
    store = KioskStore(data / f"{SCHOOL}-{KIOSK}.sqlite3", school=SCHOOL, kiosk=KIOSK)
    assert (store.last_seq, store.queue_depth()) == (1, 1)
    assert json.loads(out.lines[0])["seq"] == 1
    store.close()
