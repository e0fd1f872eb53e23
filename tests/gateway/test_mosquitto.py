"""The generated Mosquitto configuration, run by the Debian `mosquitto` binary on a free port."""

from __future__ import annotations

import getpass
import os
import shutil
import stat
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sgtest import wait_for

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


@dataclass(frozen=True)
class Ports:
    kiosks: int  # the kiosks' listener
    central: int  # central's own listener
    prefix: str


def start_mosquitto(folder: Path, ports: Ports) -> subprocess.Popen:
    logins = [mosquitto.KioskLogin(s, k, secret) for (s, k), secret in SECRETS.items()]
    # pytest's folders are private to the user running the tests, so mosquitto stays that user.
    conf = mosquitto.write(
        folder, kiosks=logins, central_password=CENTRAL_PASSWORD, port=ports.kiosks, bind="127.0.0.1",
        prefix=ports.prefix, user=getpass.getuser(), central_port=ports.central,
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until_reachable("127.0.0.1", ports.kiosks, timeout=10)
    wait_until_reachable("127.0.0.1", ports.central, timeout=10)
    return proc


@pytest.fixture
def broker(tmp_path):
    require_mosquitto()
    ports = Ports(free_port(), free_port(), f"sgtest-{uuid.uuid4().hex[:8]}/v1")
    proc = start_mosquitto(tmp_path / "mosquitto", ports)
    try:
        yield ports
    finally:
        proc.kill()
        proc.wait(10)


class Peer:
    """A connected paho client that records what it receives (and every time the broker drops it)."""

    def __init__(self, port: int, username: str | None, password: str | None, *, client_id: str | None = None,
                 mqtt5: bool = False) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.result: mqtt.ReasonCode | None = None
        self.suback: list = []
        self.dropped = 0
        self.closing = False
        self.client = make_client(client_id or f"t-{uuid.uuid4().hex[:8]}", BrokerAddress("127.0.0.1", port, username, password),
                                  mqtt5=mqtt5)
        self.client.reconnect_delay_set(5, 5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.suback.extend(codes)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.result = reason_code
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self.closing:
            self.dropped += 1

    def close(self) -> None:
        self.closing = True
        self.client.disconnect()
        try:
            self.client.loop_stop()
        except AttributeError:
            # paho 2.x: the network thread may end on the DISCONNECT and clear ``_thread`` between
            # loop_stop's check and its join(); the thread is gone either way. Seen under faketime.
            pass


def kiosk_peer(port: int, school: str, kiosk: str, **options) -> Peer:
    return Peer(port, *kiosk_credentials(school, kiosk, SECRETS[school, kiosk]), **options)


def test_anonymous_and_wrong_passwords_are_refused(broker):
    for port in (broker.kiosks, broker.central):
        for username, password in ((None, None), ("k.s1.k1", "wrong"), ("central", "nope")):
            peer = Peer(port, username, password)
            try:
                assert peer.connected.wait(5)
                assert peer.result.is_failure, (port, username, peer.result)
            finally:
                peer.close()


def test_each_login_has_its_own_listener(broker):
    """A kiosk cannot log in on central's listener (where it could pick any client id), nor
    central on the kiosks' (where every client id is the login)."""
    k1_password = kiosk_credentials("s1", "k1", SECRETS["s1", "k1"])[1]
    for port, username, password in ((broker.central, "k.s1.k1", k1_password), (broker.kiosks, "central", CENTRAL_PASSWORD)):
        peer = Peer(port, username, password)
        try:
            assert peer.connected.wait(5)
            assert peer.result.is_failure, (port, username, peer.result)
        finally:
            peer.close()


def test_a_kiosk_cannot_push_another_off_by_taking_its_client_id(broker):
    k1 = kiosk_peer(broker.kiosks, "s1", "k1", client_id="sg-kiosk-s1-k1")  # the id gateway/client.py uses
    try:
        assert k1.connected.wait(5) and not k1.result.is_failure
        # k2 connects with k1's chosen id, then with k1's login as an id: the broker makes both "k.s1.k2".
        for stolen in ("sg-kiosk-s1-k1", "k.s1.k1"):
            thief = kiosk_peer(broker.kiosks, "s1", "k2", client_id=stolen)
            assert thief.connected.wait(5) and not thief.result.is_failure
            thief.close()
        k1.client.subscribe(f"{broker.prefix}/s1/k1/ack", qos=1)
        wait_for(lambda: k1.suback, 5, "the SUBACK")
        central = Peer(broker.central, "central", CENTRAL_PASSWORD)
        assert central.connected.wait(5)
        central.client.publish(f"{broker.prefix}/s1/k1/ack", b"still here", qos=1).wait_for_publish(5)
        central.close()
        wait_for(lambda: (f"{broker.prefix}/s1/k1/ack", b"still here") in k1.received, 5, "the ack at k1")
        assert k1.dropped == 0 and k1.client.is_connected()
    finally:
        k1.close()


def test_central_workers_share_one_login_and_each_keeps_its_connection(broker):
    """Scale-out: ingest workers all log in as central (tests/integration/test_scale_out.py), with an
    MQTT 5 shared subscription; none pushes another off."""
    workers = [Peer(broker.central, "central", CENTRAL_PASSWORD, client_id=f"sg-central-{i}", mqtt5=True) for i in range(2)]
    try:
        for worker in workers:
            assert worker.connected.wait(5) and not worker.result.is_failure
            worker.client.subscribe(f"$share/central/{broker.prefix}/+/+/events", qos=1)
        wait_for(lambda: all(w.suback for w in workers), 5, "both SUBACKs")
        k1 = kiosk_peer(broker.kiosks, "s1", "k1")
        assert k1.connected.wait(5)
        for i in range(20):
            k1.client.publish(f"{broker.prefix}/s1/k1/events", str(i).encode(), qos=1).wait_for_publish(5)
        k1.close()
        wait_for(lambda: sum(len(w.received) for w in workers) == 20, 5, "the 20 events at the workers")
        assert all(w.received for w in workers), [len(w.received) for w in workers]
        assert all(w.dropped == 0 and w.client.is_connected() for w in workers)
    finally:
        for worker in workers:
            worker.close()


def test_a_kiosk_writes_only_its_own_topics(broker):
    port, prefix = broker.kiosks, broker.prefix
    central = Peer(broker.central, "central", CENTRAL_PASSWORD)
    try:
        assert central.connected.wait(5)
        central.client.subscribe(f"{prefix}/#", qos=1)
        wait_for(lambda: central.suback, 5, "the SUBACK")
        # Mosquitto 2.0.11 answers a denied QoS 1 publish with a v5 reason code that a 3.1.1
        # client takes for a protocol error and disconnects: one connection per attempt.
        for topic in (f"{prefix}/s1/k2/events", f"{prefix}/s2/k1/events", f"{prefix}/s1/roster", f"{prefix}/s1/k2/status",
                      f"{prefix}/s1/feed"):
            forger = kiosk_peer(port, "s1", "k1")
            assert forger.connected.wait(5) and not forger.result.is_failure
            sent = forger.client.publish(topic, b"forged", qos=1)
            # The broker has dealt with the publish once it answers it (a PUBACK) or drops the
            # connection for it (the denial above): either way it was refused or routed by then.
            wait_for(lambda: sent.is_published() or forger.dropped, 5, f"an answer to the forged publish on {topic}")
            forger.close()
        # The marker: published after every forged message was dealt with, and routed to central on
        # the same subscription, so a forged message let through would have reached central before it.
        own = kiosk_peer(port, "s1", "k1")
        assert own.connected.wait(5)
        own.client.publish(f"{prefix}/s1/k1/events", b"mine", qos=1).wait_for_publish(5)
        own.close()
        wait_for(lambda: (f"{prefix}/s1/k1/events", b"mine") in central.received, 5, "the marker at central")
        assert [t for t, _ in central.received] == [f"{prefix}/s1/k1/events"]
    finally:
        central.close()


def test_a_kiosk_reads_its_own_schools_roster_and_acks_only(broker):
    port, prefix = broker.kiosks, broker.prefix
    central = Peer(broker.central, "central", CENTRAL_PASSWORD)
    assert central.connected.wait(5)
    for school in ("s1", "s2"):
        central.client.publish(f"{prefix}/{school}/roster", f"roster of {school}".encode(), qos=1, retain=True).wait_for_publish(5)
    k1 = kiosk_peer(port, "s1", "k1")
    try:
        assert k1.connected.wait(5)
        k1.client.subscribe(
            [(f"{prefix}/s1/roster", 1), (f"{prefix}/s2/roster", 1), (f"{prefix}/s1/k2/ack", 1), (f"{prefix}/s1/k1/ack", 1)]
        )
        wait_for(lambda: len(k1.suback) == 4, 5, "the four SUBACK codes")
        wait_for(lambda: k1.received, 5, "the retained roster")  # it comes with the SUBACK
        # "yours" is the marker: published after "not yours" on the same connection, it reaches k1
        # after "not yours" would have, so once it is there nothing else is still on its way.
        central.client.publish(f"{prefix}/s1/k2/ack", b"not yours", qos=1).wait_for_publish(5)
        central.client.publish(f"{prefix}/s1/k1/ack", b"yours", qos=1).wait_for_publish(5)
        wait_for(lambda: (f"{prefix}/s1/k1/ack", b"yours") in k1.received, 5, "the marker at k1")
        assert sorted(k1.received) == [(f"{prefix}/s1/k1/ack", b"yours"), (f"{prefix}/s1/roster", b"roster of s1")]
    finally:
        central.close()
        k1.close()


def test_the_config_keeps_state_and_never_drops_queued_messages(tmp_path):
    conf = mosquitto.config_text(tmp_path, port=1883, bind="127.0.0.1")
    for line in ("persistence true", "max_queued_messages 0", "allow_anonymous false", "autosave_interval 1",
                 "per_listener_settings true", "listener 1884 127.0.0.1", "listener 1883 127.0.0.1",
                 "use_username_as_clientid true"):
        assert line in conf.splitlines()
    bridged = mosquitto.config_text(tmp_path, port=1883, bind="127.0.0.1", bridge=mosquitto.Bridge("district:1883", schools=("s1",)))
    assert "topic sg/v1/s1/+/events out 1" in bridged and "topic sg/v1/s1/roster in 1" in bridged
    assert "topic sg/v1/s1/feed in 1" in bridged  # the school's feed comes down to its gates


def test_password_hash_matches_mosquitto_passwd(tmp_path):
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        require_mosquitto()
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: mosquitto_passwd (Debian package mosquitto) is needed and missing")
        pytest.skip("needs mosquitto_passwd")
    subprocess.run([tool, "-b", "-c", str(tmp_path / "pw"), "alice", "secret"], check=True)
    theirs = (tmp_path / "pw").read_text().strip().split(":", 1)[1]
    _, _, iterations, salt, _ = theirs.split("$")
    import base64

    ours = mosquitto.password_hash("secret", salt=base64.b64decode(salt))
    assert ours == theirs and iterations == "101"


def test_every_file_is_private_from_its_first_byte_and_replaced_not_rewritten(tmp_path):
    """The config holds the bridge's remote_password, the others the logins: 0600 whatever the
    umask, and an old world-readable file someone still holds open never receives the secrets."""
    out = tmp_path / "mq"
    out.mkdir()
    names = ("mosquitto.conf", "passwd", "acl", "central-passwd", "central-acl")
    held = {}
    for name in names:
        (out / name).write_text("old\n")
        (out / name).chmod(0o644)
        held[name] = (out / name).open()
    bridge = mosquitto.Bridge("district.example:1883", username="school-1", password="bridge-secret-42")
    old_umask = os.umask(0)
    try:
        mosquitto.write(out, kiosks=[mosquitto.KioskLogin("s1", "k1", SECRETS["s1", "k1"])], central_password=CENTRAL_PASSWORD,
                        bridge=bridge, central_port=1884)
    finally:
        os.umask(old_umask)
    try:
        for name in names:
            assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
            assert held[name].read() == "old\n", name  # the old inode was left alone: a rename, not a rewrite
        assert "remote_password bridge-secret-42" in (out / "mosquitto.conf").read_text()
        assert "k.s1.k1:$7$101$" in (out / "passwd").read_text()
        assert (out / "central-passwd").read_text().startswith("central:$7$101$")
        assert sorted(p.name for p in out.iterdir()) == sorted([*names, "data"])  # no temporary file left
    finally:
        for file in held.values():
            file.close()


def test_every_gate_of_a_school_reads_its_feed_and_none_of_another_school(broker):
    port, prefix = broker.kiosks, broker.prefix
    central = Peer(broker.central, "central", CENTRAL_PASSWORD)
    assert central.connected.wait(5)
    k1, k2 = kiosk_peer(port, "s1", "k1"), kiosk_peer(port, "s1", "k2")
    try:
        for gate in (k1, k2):
            assert gate.connected.wait(5)
            gate.client.subscribe([(f"{prefix}/s2/feed", 1), (f"{prefix}/s1/feed", 1)])
            wait_for(lambda: len(gate.suback) == 2, 5, "both SUBACK codes")
        # "s1" is the marker: published after s2's feed on the same connection (see the roster test).
        central.client.publish(f"{prefix}/s2/feed", b"feed of s2", qos=1).wait_for_publish(5)
        central.client.publish(f"{prefix}/s1/feed", b"feed of s1", qos=1).wait_for_publish(5)
        for gate in (k1, k2):
            wait_for(lambda: gate.received, 5, "the feed at the gate")
            assert gate.received == [(f"{prefix}/s1/feed", b"feed of s1")]
    finally:
        central.close()
        k1.close()
        k2.close()



def _schoolgate(*args: str, db: str) -> subprocess.CompletedProcess:
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}
    env["SCHOOLGATE_DATABASE_URL"] = db
    result = subprocess.run([sys.executable, "-m", "schoolgate", *args], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return result


def test_a_kiosk_registered_after_mosquitto_started_logs_in_after_a_reload(tmp_path):
    """Run again, mosquitto-config keeps central's password; --reload sends the running Mosquitto
    SIGHUP (its pid_file) and a kiosk registered after it started logs in, without a restart."""
    import json

    require_mosquitto()
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    out = tmp_path / "mq"
    ports = [str(free_port()), str(free_port())]
    options = ("--out", str(out), "--port", ports[0], "--bind", "127.0.0.1", "--central-port", ports[1],
               "--user", getpass.getuser())
    _schoolgate("central", "create-school", "s1", "--name", "示范小学", db=db)
    gate1 = json.loads(_schoolgate("central", "register-kiosk", "--school", "s1", "--kiosk", "gate-1", db=db).stdout)
    first = json.loads(_schoolgate("gateway", "mosquitto-config", *options, db=db).stdout)
    assert stat.S_IMODE((out / "central-password").stat().st_mode) == 0o600
    proc = subprocess.Popen([MOSQUITTO, "-c", first["config"]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_reachable("127.0.0.1", int(ports[0]), timeout=10)
        wait_for(lambda: (out / mosquitto.PID_FILE).exists() and (out / mosquitto.PID_FILE).read_text().strip() == str(proc.pid),
                 5, "mosquitto's pid file")
        gate2 = json.loads(_schoolgate("central", "register-kiosk", "--school", "s1", "--kiosk", "gate-2", db=db).stdout)
        late = Peer(int(ports[0]), *kiosk_credentials("s1", "gate-2", gate2["secret"]))
        try:
            assert late.connected.wait(5) and late.result.is_failure  # not in the files mosquitto read at its start
        finally:
            late.close()
        again = json.loads(_schoolgate("gateway", "mosquitto-config", *options, "--reload", db=db).stdout)
        assert again["central_mqtt_url"] == first["central_mqtt_url"]  # central's login still holds
        assert again["kiosks"] == 2 and again["reloaded_pid"] == proc.pid
        password = first["central_mqtt_url"].split(":")[2].split("@")[0]
        peers = [Peer(int(ports[0]), *kiosk_credentials("s1", "gate-2", gate2["secret"])),
                 Peer(int(ports[0]), *kiosk_credentials("s1", "gate-1", gate1["secret"])),
                 Peer(int(ports[1]), "central", password)]
        try:
            # SIGHUP is handled between two turns of mosquitto's loop: a refusal before it is retried.
            wait_for(lambda: all(p.result is not None and not p.result.is_failure for p in peers), 10,
                     "every login accepted after the reload")
        finally:
            for peer in peers:
                peer.close()
        assert proc.poll() is None  # the same process: reloaded, not restarted
    finally:
        proc.kill()
        proc.wait(10)


def test_reload_without_a_running_mosquitto_says_so(tmp_path):
    import sys

    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}, "SCHOOLGATE_DATABASE_URL": db,
           "LANG": "en_US.UTF-8"}
    result = subprocess.run([sys.executable, "-m", "schoolgate", "gateway", "mosquitto-config", "--out", str(tmp_path / "mq"),
                             "--user", getpass.getuser(), "--reload"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and "No running mosquitto to reload" in result.stderr, result.stderr


def test_as_root_the_printed_run_command_starts_mosquitto_as_its_own_account(tmp_path_factory):
    """The default --user mosquitto: root gives it the files, mosquitto drops root for it and reads them."""
    import json
    import pwd
    import tempfile

    require_mosquitto()
    if os.geteuid() != 0:
        pytest.skip("needs root: the run command is the one an installer runs as root")
    try:
        account = pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.skip("needs the account mosquitto (Debian package mosquitto)")
    # A folder the account can reach (pytest's are private to root).
    top = Path(tempfile.mkdtemp(prefix="sg-mq-"))
    top.chmod(0o755)
    try:
        db = f"sqlite:///{top / 'c.sqlite3'}"
        port = free_port()
        _schoolgate("central", "create-school", "s1", "--name", "示范小学", db=db)
        gate = json.loads(_schoolgate("central", "register-kiosk", "--school", "s1", "--kiosk", "gate-1", db=db).stdout)
        printed = json.loads(_schoolgate("gateway", "mosquitto-config", "--out", str(top / "mq"), "--port", str(port),
                                         "--bind", "127.0.0.1", "--central-port", str(free_port()), db=db).stdout)
        assert (top / "mq" / "passwd").stat().st_uid == account.pw_uid
        proc = subprocess.Popen(printed["run"].split(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_reachable("127.0.0.1", port, timeout=10)
            peer = Peer(port, *kiosk_credentials("s1", "gate-1", gate["secret"]))
            try:
                assert peer.connected.wait(5) and not peer.result.is_failure, peer.result
            finally:
                peer.close()
            wait_for(lambda: Path(f"/proc/{proc.pid}/status").read_text().count(f"Uid:\t{account.pw_uid}") == 1, 5,
                     "mosquitto running as its own account")
        finally:
            proc.kill()
            proc.wait(10)
    finally:
        shutil.rmtree(top, ignore_errors=True)
