"""The kiosk's sync client on the embedded broker: the status says what changed when it changed, the
will is small, a clean stop leaves the last values retained (issue 13, "Each gate's health")."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime

import pytest
from sgtest import wait_for

from gateway import protocol
from gateway.broker import EmbeddedBroker
from gateway.client import SyncClient
from gateway.mqtt import BrokerAddress, Connection, Logins, free_port
from kiosk.store import KioskStore

SECRET = "5e" * 32
AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class Probe:
    """A test's own subscriber to one kiosk's status topic, keeping every payload in order."""

    def __init__(self, port: int, topic: str) -> None:
        self.got: list[dict] = []
        self._lock = threading.Lock()
        self.connection = Connection(f"probe-{uuid.uuid4().hex[:6]}", BrokerAddress("127.0.0.1", port, "probe", "pw"),
                                     on_message=self._keep, name="probe")
        self.connection.subscribe([(topic, 1)])
        self.connection.start()
        self.connection.wait_subscribed(10)

    def _keep(self, message) -> None:
        with self._lock:
            self.got.append(json.loads(message.payload))

    def last(self) -> dict | None:
        with self._lock:
            return self.got[-1] if self.got else None

    def stop(self) -> None:
        self.connection.stop()


@pytest.fixture
def world(tmp_path):
    port = free_port()
    prefix = f"sgtest-{uuid.uuid4().hex[:8]}/v1"
    topics = protocol.Topics(prefix)
    with EmbeddedBroker("127.0.0.1", port, logins=Logins({"k1": "pw", "probe": "pw"})):
        store = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1", secret=SECRET)
        probe = Probe(port, topics.status("s1", "k1"))
        state = {"reader": "ok", "guard": None}
        client = SyncClient(
            store, school="s1", kiosk="k1", broker=BrokerAddress("127.0.0.1", port, "k1", "pw"), topics=topics,
            status_every=3600, status_gap=0, secret=bytes.fromhex(SECRET),
            reader_state=lambda: state["reader"], guard=lambda: state["guard"],
        )
        try:
            yield store, client, probe, state
        finally:
            probe.stop()
            store.close()


def test_the_status_goes_out_when_something_in_it_changes(world):
    store, client, probe, state = world
    client.start()
    try:
        wait_for(lambda: probe.last() and probe.last()["online"], 10, "the status of the connect")
        first = probe.last()
        assert (first["queue"], first["last_seq"], first["acked_seq"], first["reader"]) == (0, 0, 0, "ok")
        assert "guard" not in first  # nobody signed in: the field is left out
        assert protocol.verify(first, bytes.fromhex(SECRET))

        store.record("unknown_card", AT, card="04A1B2C3")
        client.notify()
        wait_for(lambda: probe.last()["last_seq"] == 1, 10, "a status after an event was written")
        assert (probe.last()["queue"], probe.last()["acked_seq"]) == (1, 0)

        state["reader"] = "lost"
        client.notify()
        wait_for(lambda: probe.last()["reader"] == "lost", 10, "a status after the reader failed")

        state["guard"] = "T01"
        client.notify()
        wait_for(lambda: probe.last().get("guard") == "T01", 10, "a status after a guard signed in")
    finally:
        client.stop()
    # A clean stop: the last values, offline, retained over the will.
    wait_for(lambda: not probe.last()["online"], 10, "the offline status of the stop")
    last = probe.last()
    assert (last["queue"], last["last_seq"], last["reader"], last["guard"]) == (1, 1, "lost", "T01")
    assert protocol.verify(last, bytes.fromhex(SECRET))


def test_the_will_is_small_and_signed(world):
    store, client, probe, _state = world
    client.start()
    wait_for(lambda: probe.last() and probe.last()["online"], 10, "the status of the connect")
    store.record("unknown_card", AT, card="04A1B2C3")
    client.notify()
    wait_for(lambda: probe.last()["last_seq"] == 1, 10, "a status after an event")
    client.drop()  # a power cut: the broker sends the will
    wait_for(lambda: not probe.last()["online"], 10, "the will")
    will = probe.last()
    assert {k: v for k, v in will.items() if k != "sig"} == {"v": 1, "online": False, "boot": store.boot}
    assert protocol.verify(will, bytes.fromhex(SECRET))
    assert protocol.parse_message(protocol.Status, json.dumps(will).encode()).is_will


class Sent:
    rc = 0


def test_changes_within_the_gap_wait_and_the_timer_sends_regardless(tmp_path, monkeypatch):
    store = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1")
    client = SyncClient(store, school="s1", kiosk="k1", broker=BrokerAddress("127.0.0.1", 1), status_every=30, status_gap=1)
    sent: list[bytes] = []
    monkeypatch.setattr(client.connection, "publish", lambda topic, payload, **kw: sent.append(payload) or Sent())
    assert client._maybe_publish_status(now=100.0)  # due: the connect's
    assert not client._maybe_publish_status(now=100.5)  # nothing changed
    store.record("unknown_card", AT, card="04A1B2C3")
    assert not client._maybe_publish_status(now=100.9)  # changed, but within the gap
    assert client._maybe_publish_status(now=101.0)  # the gap is over
    assert not client._maybe_publish_status(now=129.9)
    assert client._maybe_publish_status(now=131.0)  # status_every since the last
    client.clock_offset_ms = 400
    assert client._maybe_publish_status(now=132.0)  # an offset appeared
    client.clock_offset_ms = 900
    assert not client._maybe_publish_status(now=133.0)  # moved less than OFFSET_STEP_MS: the same
    client.clock_offset_ms = 1600
    assert client._maybe_publish_status(now=134.0)
    assert [json.loads(p)["last_seq"] for p in sent] == [0, 1, 1, 1, 1]
    store.close()


def test_a_status_online_without_its_values_is_refused_and_the_will_is_not():
    with pytest.raises(protocol.ProtocolError, match="an online status carries"):
        protocol.parse_message(protocol.Status, b'{"v":1,"online":true,"boot":3}')
    assert protocol.parse_message(protocol.Status, b'{"v":1,"online":false,"boot":3}').is_will
    full = b'{"v":1,"online":false,"queue":0,"last_seq":4,"roster_version":2,"at":"2026-12-01T08:00:00+00:00"}'
    assert not protocol.parse_message(protocol.Status, full).is_will


def test_acks_and_rosters_are_stored_off_pahos_network_thread(tmp_path, monkeypatch):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    central = Ed25519PrivateKey.from_private_bytes(bytes.fromhex("a5" * 32))
    port = free_port()
    topics = protocol.Topics(f"sgtest-{uuid.uuid4().hex[:8]}/v1")
    with EmbeddedBroker("127.0.0.1", port, logins=Logins({"k1": "pw", "central": "pw"})):
        store = KioskStore(tmp_path / "k.sqlite3", school="s1", kiosk="k1", central_key=protocol.public_key_hex(central))
        store.record("unknown_card", AT, card="04A1B2C3")
        writers: list[str] = []
        for name in ("ack", "apply_snapshot"):
            real = getattr(store, name)
            monkeypatch.setattr(store, name, lambda *a, _real=real, **k: writers.append(threading.current_thread().name) or _real(*a, **k))
        client = SyncClient(store, school="s1", kiosk="k1", broker=BrokerAddress("127.0.0.1", port, "k1", "pw"), topics=topics)
        client.start()
        sender = Connection("central", BrokerAddress("127.0.0.1", port, "central", "pw"), name="central").start()
        try:
            client.connection.wait_subscribed(10)
            wait_for(sender.connected.is_set, 10, "central connected")
            roster = {"v": 1, "school": "s1", "version": 2, "generated_at": "2026-12-01T08:00:00+00:00", "students": []}
            ack = {"v": 1, "school": "s1", "kiosk": "k1", "upto": 1, "server_time": "2026-12-01T08:00:01+00:00"}
            sender.publish(topics.roster("s1"), protocol.seal(protocol.canonical_json(roster), central), retain=True)
            sender.publish(topics.ack("s1", "k1"), protocol.seal(protocol.canonical_json(ack), central))
            wait_for(lambda: store.roster_version == 2 and store.acked == 1, 10, "the roster and the ack applied")
        finally:
            sender.stop()
            client.stop()
            store.close()
    assert set(writers) == {"kiosk s1/k1-in"}, writers  # Connection's worker, never paho's thread


def test_a_suback_handled_before_its_subscribe_returned_still_counts(monkeypatch):
    """Subscribing from a thread other than paho's, the broker's SUBACK can be handled on paho's thread
    before ``client.subscribe`` returns the mid it answers: the subscription is granted all the same
    (``subscribed``, ``on_granted``), not left pending for ever. Forced here: the subscribe returns only
    once paho's thread has handled its SUBACK."""
    port = free_port()
    granted: list[list[str]] = []
    with EmbeddedBroker("127.0.0.1", port, logins=Logins({"central": "pw"})):
        connection = Connection("central", BrokerAddress("127.0.0.1", port, "central", "pw"), name="central",
                                on_granted=granted.append).start()
        try:
            connection.wait_subscribed(10)  # no topics yet: set at once
            handled = threading.Event()
            real_suback = connection._on_subscribe
            connection.client.on_subscribe = lambda *a: (real_suback(*a), handled.set())
            real_subscribe = connection.client.subscribe

            def late_subscribe(topics):
                answer = real_subscribe(topics)
                assert handled.wait(10), "no SUBACK from the broker"
                return answer

            monkeypatch.setattr(connection.client, "subscribe", late_subscribe)
            connection.subscribed.clear()
            connection.subscribe([("s1/feed", 1)])
            assert connection.subscribed.wait(5)
            assert granted == [["s1/feed"]]
            assert connection.subscriptions() == {"s1/feed"}
            connection.unsubscribe(["s1/feed"])
            assert connection.subscriptions() == set()
        finally:
            connection.stop()
