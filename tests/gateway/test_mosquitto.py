"""The generated Mosquitto configuration, run by the Debian `mosquitto` binary on a free port."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gateway import mosquitto
from gateway.broker import wait_until_reachable
from gateway.mqtt import BrokerAddress, free_port, kiosk_credentials, make_client

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
SECRETS = {("s1", "k1"): "11" * 32, ("s1", "k2"): "22" * 32, ("s2", "k1"): "33" * 32}
CENTRAL_PASSWORD = "central-pw"


def require_mosquitto() -> None:
    if not os.path.exists(MOSQUITTO):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: the mosquitto binary is needed and missing")
        pytest.skip("needs the mosquitto binary (Debian package mosquitto)")


def start_mosquitto(folder: Path, port: int, prefix: str) -> subprocess.Popen:
    logins = [mosquitto.KioskLogin(s, k, secret) for (s, k), secret in SECRETS.items()]
    # pytest's folders are private to the user running the tests, so mosquitto stays that user.
    conf = mosquitto.write(
        folder, kiosks=logins, central_password=CENTRAL_PASSWORD, port=port, bind="127.0.0.1", prefix=prefix,
        user=getpass.getuser(),
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until_reachable("127.0.0.1", port, timeout=10)
    return proc


@pytest.fixture
def broker(tmp_path):
    require_mosquitto()
    port = free_port()
    prefix = f"sgtest-{uuid.uuid4().hex[:8]}/v1"
    proc = start_mosquitto(tmp_path / "mosquitto", port, prefix)
    try:
        yield port, prefix
    finally:
        proc.kill()
        proc.wait(10)


class Peer:
    """A connected paho client that records what it receives."""

    def __init__(self, port: int, username: str | None, password: str | None) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.result: mqtt.ReasonCode | None = None
        self.suback: list = []
        self.client = make_client(f"t-{uuid.uuid4().hex[:8]}", BrokerAddress("127.0.0.1", port, username, password))
        self.client.reconnect_delay_set(5, 5)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.suback.extend(codes)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.result = reason_code
        self.connected.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def kiosk_peer(port: int, school: str, kiosk: str) -> Peer:
    return Peer(port, *kiosk_credentials(school, kiosk, SECRETS[school, kiosk]))


def wait(condition, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_anonymous_and_wrong_passwords_are_refused(broker):
    port, _ = broker
    for username, password in ((None, None), ("k.s1.k1", "wrong"), ("central", "nope")):
        peer = Peer(port, username, password)
        try:
            assert peer.connected.wait(5)
            assert peer.result.is_failure, (username, peer.result)
        finally:
            peer.close()


def test_a_kiosk_writes_only_its_own_topics(broker):
    port, prefix = broker
    central = Peer(port, "central", CENTRAL_PASSWORD)
    try:
        assert central.connected.wait(5)
        central.client.subscribe(f"{prefix}/#", qos=1)
        assert wait(lambda: central.suback)
        # Mosquitto 2.0.11 answers a denied QoS 1 publish with a v5 reason code that a 3.1.1
        # client takes for a protocol error and disconnects: one connection per attempt.
        for topic in (f"{prefix}/s1/k2/events", f"{prefix}/s2/k1/events", f"{prefix}/s1/roster", f"{prefix}/s1/k2/status"):
            forger = kiosk_peer(port, "s1", "k1")
            assert forger.connected.wait(5) and not forger.result.is_failure
            forger.client.publish(topic, b"forged", qos=1)
            time.sleep(0.2)
            forger.close()
        own = kiosk_peer(port, "s1", "k1")
        assert own.connected.wait(5)
        own.client.publish(f"{prefix}/s1/k1/events", b"mine", qos=1).wait_for_publish(5)
        own.close()
        assert wait(lambda: (f"{prefix}/s1/k1/events", b"mine") in central.received)
        time.sleep(0.3)
        assert [t for t, _ in central.received] == [f"{prefix}/s1/k1/events"]
    finally:
        central.close()


def test_a_kiosk_reads_its_own_schools_roster_and_acks_only(broker):
    port, prefix = broker
    central = Peer(port, "central", CENTRAL_PASSWORD)
    assert central.connected.wait(5)
    for school in ("s1", "s2"):
        central.client.publish(f"{prefix}/{school}/roster", f"roster of {school}".encode(), qos=1, retain=True).wait_for_publish(5)
    k1 = kiosk_peer(port, "s1", "k1")
    try:
        assert k1.connected.wait(5)
        k1.client.subscribe(
            [(f"{prefix}/s1/roster", 1), (f"{prefix}/s2/roster", 1), (f"{prefix}/s1/k2/ack", 1), (f"{prefix}/s1/k1/ack", 1)]
        )
        assert wait(lambda: k1.received)
        central.client.publish(f"{prefix}/s1/k2/ack", b"not yours", qos=1).wait_for_publish(5)
        central.client.publish(f"{prefix}/s1/k1/ack", b"yours", qos=1).wait_for_publish(5)
        assert wait(lambda: (f"{prefix}/s1/k1/ack", b"yours") in k1.received)
        time.sleep(0.3)
        assert sorted(k1.received) == [(f"{prefix}/s1/k1/ack", b"yours"), (f"{prefix}/s1/roster", b"roster of s1")]
    finally:
        central.close()
        k1.close()


def test_the_config_keeps_state_and_never_drops_queued_messages(tmp_path):
    conf = mosquitto.config_text(tmp_path, port=1883, bind="127.0.0.1")
    for line in ("persistence true", "max_queued_messages 0", "allow_anonymous false", "autosave_interval 1"):
        assert line in conf.splitlines()
    bridged = mosquitto.config_text(tmp_path, port=1883, bind="127.0.0.1", bridge=mosquitto.Bridge("district:1883", schools=("s1",)))
    assert "topic sg/v1/s1/+/events out 1" in bridged and "topic sg/v1/s1/roster in 1" in bridged


def test_password_hash_matches_mosquitto_passwd(tmp_path):
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        require_mosquitto()
        pytest.skip("needs mosquitto_passwd")
    subprocess.run([tool, "-b", "-c", str(tmp_path / "pw"), "alice", "secret"], check=True)
    theirs = (tmp_path / "pw").read_text().strip().split(":", 1)[1]
    _, _, iterations, salt, _ = theirs.split("$")
    import base64

    ours = mosquitto.password_hash("secret", salt=base64.b64decode(salt))
    assert ours == theirs and iterations == "101"
