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
    assert (last["last_seq"], last["queue"], last["acked_seq"]) == (1, 1, 0), last
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


# --- a refused login, a refused subscription ------------------------------------------------------


def kiosk_settings(site: Site, tmp_path: Path, secret: str):
    from kiosk.config import KioskSettings

    return KioskSettings(school=SCHOOL, kiosk=KIOSK, data_dir=tmp_path / "kiosk", secret=secret, topic_prefix=site.prefix,
                         mqtt_url=f"mqtt://127.0.0.1:{site.kiosk_port}")


def test_a_refused_login_is_named_logged_and_retried_slowly(site, tmp_path, caplog):
    from kiosk.runtime import Kiosk

    gate = Kiosk(kiosk_settings(site, tmp_path, "33" * 32))  # a secret the broker does not know: a wrong password
    gate.start()
    try:
        wait_for(lambda: gate.sync_state().problem == "login_refused", 30, "the refused login named")
        assert gate.sync_state().online is False
        # paho waits this long before the next attempt, doubling up to 300 s (paho keeps it private)
        assert gate.sync.client._reconnect_min_delay == 30
    finally:
        gate.close()
    refusals = [r.getMessage() for r in caplog.records if r.levelname == "ERROR" and "refused the login" in r.getMessage()]
    assert refusals and f"as k.{SCHOOL}.{KIOSK}: Not authorized" in refusals[0], refusals


def test_the_right_login_after_a_refusal_clears_the_problem(tmp_path):
    """A kiosk registered while it was being refused gets in at its next attempt, and the problem
    goes (the first retry here is quick: refused_retry is the Connection's to choose)."""
    known: dict = {}
    port = free_port()
    with EmbeddedBroker("127.0.0.1", port, logins=Logins({}, kiosk_secret=lambda s, k: known.get((s, k)))):
        user, password = kiosk_credentials(SCHOOL, KIOSK, SECRET)
        connection = Connection("k1", BrokerAddress("127.0.0.1", port, user, password), retry=(2, 5),
                                refused_retry=(1, 1)).start()
        try:
            wait_for(lambda: connection.problem == "login_refused", 30, "the refusal")
            known[SCHOOL, KIOSK] = SECRET  # the admin registers the kiosk
            wait_for(connection.connected.is_set, 30, "the connection once registered")
            assert connection.problem is None
            assert connection.client._reconnect_min_delay == 2  # back to the retries of a lost network
        finally:
            connection.stop()


def acl_topics(prefix: str) -> list[str]:
    """What k1 may subscribe to in these tests: its acks and its school's snapshot, not the deltas."""
    return [f"{prefix}/{SCHOOL}/{KIOSK}/ack", f"{prefix}/{SCHOOL}/roster"]


@contextlib.contextmanager
def embedded_with_acl() -> Iterator[Site]:
    port = free_port()
    prefix = f"sgtest-{uuid.uuid4().hex[:8]}/v1"
    user, _ = kiosk_credentials(SCHOOL, KIOSK, SECRET)
    logins = Logins({"probe": PROBE_PASSWORD}, kiosk_secret=lambda s, k: SECRET if (s, k) == (SCHOOL, KIOSK) else None)
    with EmbeddedBroker("127.0.0.1", port, logins=logins, subscribe_acl={user: acl_topics(prefix), "probe": ["#"]}):
        yield Site("embedded", port, BrokerAddress("127.0.0.1", port, "probe", PROBE_PASSWORD), prefix)


@contextlib.contextmanager
def mosquitto_with_acl(folder: Path) -> Iterator[Site]:
    """Mosquitto with its dynamic security plugin: unlike the acl_file of the generated configuration,
    which Mosquitto 2.0 applies to delivery and never to a SUBSCRIBE (the SUBACK grants every filter),
    dynsec's subscribe ACLs refuse the subscription itself (0x80; 0x87 in MQTT 5)."""
    import base64
    import hashlib

    plugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
    if not (os.path.exists(MOSQUITTO) and os.path.exists(plugin)):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: mosquitto and its dynamic security plugin are needed and missing")
        pytest.skip("needs mosquitto and mosquitto_dynamic_security.so (Debian package mosquitto)")
    folder.mkdir(parents=True)
    port = free_port()
    prefix = f"sgtest-{uuid.uuid4().hex[:8]}/v1"

    def client(user: str, password: str, role: str) -> dict:
        salt = os.urandom(12)
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
        return {"username": user, "password": base64.b64encode(digest).decode(), "salt": base64.b64encode(salt).decode(),
                "iterations": 101, "roles": [{"rolename": role}]}

    def role(name: str, topics: list[str]) -> dict:
        return {"rolename": name, "acls": [{"acltype": kind, "topic": topic, "priority": 0, "allow": True}
                                           for topic in topics for kind in ("subscribePattern", "publishClientSend")]}

    user, password = kiosk_credentials(SCHOOL, KIOSK, SECRET)
    config = {
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": True, "subscribe": False, "unsubscribe": True},
        "clients": [client(user, password, "kiosk"), client("central", PROBE_PASSWORD, "central")],
        "groups": [],
        "roles": [role("kiosk", [*acl_topics(prefix), f"{prefix}/{SCHOOL}/{KIOSK}/status"]), role("central", ["#"])],
    }
    (folder / "dynsec.json").write_text(json.dumps(config))
    os.chmod(folder / "dynsec.json", 0o600)
    (folder / "mosquitto.conf").write_text(
        f"user {getpass.getuser()}\nper_listener_settings false\nallow_anonymous false\nlistener {port} 127.0.0.1\n"
        f"plugin {plugin}\nplugin_opt_config_file {folder / 'dynsec.json'}\n"
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(folder / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until_reachable("127.0.0.1", port, timeout=10)
        yield Site("mosquitto", port, BrokerAddress("127.0.0.1", port, "central", PROBE_PASSWORD), prefix)
    finally:
        proc.kill()
        proc.wait(10)


@pytest.fixture(params=["embedded", "mosquitto"])
def acl_site(request, tmp_path):
    with (embedded_with_acl() if request.param == "embedded" else mosquitto_with_acl(tmp_path / "dynsec")) as made:
        yield made


def test_a_subscription_the_broker_refuses_is_an_error_not_silence(acl_site, tmp_path, caplog):
    from kiosk.runtime import Kiosk

    gate = Kiosk(kiosk_settings(acl_site, tmp_path, SECRET))
    gate.start()
    try:
        wait_for(lambda: gate.sync_state().problem == "subscription_refused", 30, "the refused subscription named")
        delta = acl_site.topics.roster_delta(SCHOOL)
        assert delta in gate.sync.connection.problem_detail
        assert acl_site.topics.ack(SCHOOL, KIOSK) not in gate.sync.connection.problem_detail  # granted: not named
        with pytest.raises(MqttError, match="subscription refused"):
            gate.sync.connection.wait_subscribed(0.1)
    finally:
        gate.close()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR" and "refused the subscription" in r.getMessage()]
    assert errors and delta in errors[0], errors


def test_every_subscription_granted_is_no_problem(acl_site):
    user, password = kiosk_credentials(SCHOOL, KIOSK, SECRET)
    connection = Connection("k1", BrokerAddress("127.0.0.1", acl_site.kiosk_port, user, password))
    connection.subscribe([(topic, 1) for topic in acl_topics(acl_site.prefix)])
    connection.start()
    try:
        connection.wait_subscribed(10)
        assert connection.problem is None
    finally:
        connection.stop()


# --- central's short-lived connection (the command line's roster publication) --------------------


def test_centrals_one_shot_publication_names_a_refused_login_and_delivers_otherwise(site):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from central.kiosks.bus import publish_once

    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex("a5" * 32))
    topic = site.topics.roster(SCHOOL)
    wrong = BrokerAddress(site.probe.host, site.probe.port, site.probe.username, "wrong")
    with pytest.raises(MqttError, match="refused central \\(command line\\)"):
        publish_once(wrong, [(topic, b'{"v":1}', True)], signing_key=key)
    with pytest.raises(OSError):
        publish_once(BrokerAddress("127.0.0.1", free_port(), "central", "x"), [(topic, b'{"v":1}', True)], signing_key=key)
    publish_once(site.probe, [(topic, b'{"v":1}', True)], signing_key=key)
    probe = Probe(site, topic)  # the retained message is there for a subscriber that comes later
    try:
        wait_for(lambda: probe.last().get("v") == 1, 10, "the retained message")
        assert protocol.unseal(protocol.canonical_json(probe.last()), key.public_key())["v"] == 1
    finally:
        probe.stop()


def test_sigterm_stops_the_console_as_ctrl_c_does(tmp_path):
    """The console on a pseudo-terminal: SIGTERM quits it as its quit key does, exit code 0, the store closed."""
    import pty
    import select
    import time

    data = tmp_path / "kiosk"
    args = ["kiosk", "run", "--school", SCHOOL, "--kiosk", KIOSK, "--reader", "keyboard", "--lang", "en",
            "--data-dir", str(data), "--mqtt-url", f"mqtt://127.0.0.1:{free_port()}"]
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    env = {**clean_env(), "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    proc = subprocess.Popen([sys.executable, "-m", "schoolgate", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    seen = b""

    def read_until(done, timeout: float) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout  # a bound, not a pause
        while not done() and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    return

    try:
        read_until(lambda: b"After-school gate" in seen or proc.poll() is not None, 60)
        assert b"After-school gate" in seen, seen[-2000:]
        proc.send_signal(signal.SIGTERM)
        read_until(lambda: proc.poll() is not None, 60)  # keep reading: a full terminal would block its last writes
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert code == 0, seen[-2000:]
    assert b"Traceback" not in seen, seen[-2000:]
    assert not list(data.glob("*-wal")), list(data.iterdir())
