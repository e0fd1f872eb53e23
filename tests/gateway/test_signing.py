"""Central signs what it publishes; kiosks refuse what does not verify; the embedded broker takes no
anonymous clients (issue 11, "Signed from central too").

The kiosk side runs for real: a KioskStore behind the SyncClient on the embedded broker, with a
"central" that seals with its key and a forger that logs in but has no key (any local process with a
login, which is all the broker's ACL ever stood for).
"""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sgtest import wait_for

from gateway import protocol
from gateway.broker import EmbeddedBroker
from gateway.client import UNVERIFIED, SyncClient
from gateway.mqtt import BrokerAddress, Logins, free_port, kiosk_credentials, make_client
from gateway.protocol import ProtocolError
from kiosk.store import KioskStore

SCHOOL, KIOSK = "s1", "k1"
SECRET = "11" * 32
CENTRAL = Ed25519PrivateKey.from_private_bytes(bytes.fromhex("a5" * 32))
# The public half of the key above, computed once with the cryptography package's raw encoding
# and written here, not derived by the code under test.
CENTRAL_PUBLIC = "29e5833a915a6429a4e3a7948475c338ef436eb82be89c92f059704403db9d55"
TOPICS = protocol.Topics()

BARRED_ROSTER = {
    "v": 1,
    "school": SCHOOL,
    "version": 1,
    "generated_at": "2026-12-01T08:00:00+00:00",
    "students": [{"id": "S1", "name": "王小明", "class": "三年级1班", "cards": ["04A1B2C3"]}],
    "guardians": [
        {"id": "g7", "name": "李某", "cards": ["04D5E6F7"], "links": [{"student": "S1", "may_pick_up": False, "barred": True}]}
    ],
}


def test_the_hand_written_public_key_is_the_keys():
    assert protocol.public_key_hex(CENTRAL) == CENTRAL_PUBLIC


def test_a_sealed_message_verifies_and_keeps_every_field():
    sealed = protocol.seal(b'{"v":1,"upto":3,"server_time":"2026-12-01T08:00:00+00:00"}', CENTRAL)
    data = protocol.unseal(sealed, protocol.parse_public_key(CENTRAL_PUBLIC))
    assert {k: v for k, v in data.items() if k != "sig"} == {"v": 1, "upto": 3, "server_time": "2026-12-01T08:00:00+00:00"}
    assert len(data["sig"]) == 128


def test_a_field_added_later_is_covered_without_change():
    # e.g. the "refused" list acks gain: it is signed because every field but sig is.
    sealed = json.loads(protocol.seal(b'{"v":1,"upto":3,"server_time":"2026-12-01T08:00:00+00:00","refused":[4]}', CENTRAL))
    sealed["refused"] = []
    with pytest.raises(ProtocolError, match="does not verify"):
        protocol.unseal(protocol.canonical_json(sealed), protocol.parse_public_key(CENTRAL_PUBLIC))


@pytest.mark.parametrize(
    "payload, key, reason",
    [
        (b'{"v":1,"upto":3,"server_time":"2026-12-01T08:00:00+00:00"}', CENTRAL_PUBLIC, "no central signature"),
        (b'{"v":1,"upto":3,"sig":"00"}', CENTRAL_PUBLIC, "no central signature"),
        (b'{"v":1,"upto":3,"sig":"' + b"ab" * 64 + b'"}', CENTRAL_PUBLIC, "does not verify"),
        (b"[1]", CENTRAL_PUBLIC, "must be a JSON object"),
        (b'{"v":1,"upto":3,"sig":"' + b"ab" * 64 + b'"}', None, "no central key is configured"),
    ],
)
def test_what_does_not_verify_is_refused_with_its_reason(payload, key, reason):
    with pytest.raises(ProtocolError, match=reason):
        protocol.unseal(payload, protocol.parse_public_key(key) if key else None)


def test_a_message_signed_by_another_key_is_refused():
    other = Ed25519PrivateKey.from_private_bytes(bytes.fromhex("5a" * 32))
    with pytest.raises(ProtocolError, match="does not verify"):
        protocol.unseal(protocol.seal(b'{"v":1}', other), protocol.parse_public_key(CENTRAL_PUBLIC))


def test_a_bad_central_key_is_named():
    with pytest.raises(ProtocolError, match="not 64 hex digits"):
        protocol.parse_public_key("abc")


# --- the embedded broker --------------------------------------------------------------------------


@pytest.fixture
def broker():
    logins = Logins({"central": "central-pw", "intruder": "intruder-pw"}, lambda s, k: SECRET if (s, k) == (SCHOOL, KIOSK) else None)
    embedded = EmbeddedBroker("127.0.0.1", free_port(), logins=logins).start()
    try:
        yield embedded
    finally:
        embedded.stop()


def connack(broker: EmbeddedBroker, username: str | None, password: str | None) -> str:
    client = make_client(f"probe-{username}", BrokerAddress(broker.host, broker.port, username, password))
    codes: list[str] = []
    client.on_connect = lambda c, u, f, reason_code, p: codes.append(str(reason_code))
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        wait_for(lambda: codes, 10, "a CONNACK")
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


@pytest.mark.parametrize(
    "username, password, answer",
    [
        (None, None, "Not authorized"),  # anonymous
        ("central", "wrong", "Not authorized"),
        ("k.s1.k1", "wrong", "Not authorized"),
        ("k.s1.k2", kiosk_credentials(SCHOOL, "k2", SECRET)[1], "Not authorized"),  # not registered
        ("central", "central-pw", "Success"),
        (*kiosk_credentials(SCHOOL, KIOSK, SECRET), "Success"),
    ],
)
def test_the_embedded_broker_takes_only_named_logins(broker, username, password, answer):
    assert connack(broker, username, password) == answer


# --- a kiosk's sync client against forged and genuine messages --------------------------------------


class Publisher:
    def __init__(self, broker: EmbeddedBroker, username: str, password: str) -> None:
        self.client = make_client(f"pub-{username}", BrokerAddress(broker.host, broker.port, username, password))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def gate(broker, tmp_path):
    store = KioskStore(tmp_path / "k.sqlite3", school=SCHOOL, kiosk=KIOSK, secret=SECRET, central_key=CENTRAL_PUBLIC)
    user, password = kiosk_credentials(SCHOOL, KIOSK, SECRET)
    sync = SyncClient(store, school=SCHOOL, kiosk=KIOSK, broker=BrokerAddress(broker.host, broker.port, user, password))
    sync.start()
    central = Publisher(broker, "central", "central-pw")
    intruder = Publisher(broker, "intruder", "intruder-pw")
    try:
        wait_for(lambda: sync.online, 10, "the kiosk to connect")
        yield store, sync, central, intruder
    finally:
        intruder.close()
        central.close()
        sync.stop()
        store.close()


def barred(store: KioskStore) -> bool:
    return store.roster.guardians["g7"].links[0].barred


def test_a_forged_roster_that_lifts_a_custody_order_is_refused_and_recorded(gate):
    store, sync, central, intruder = gate
    central.send(TOPICS.roster(SCHOOL), protocol.seal(protocol.canonical_json(BARRED_ROSTER), CENTRAL), retain=True)
    wait_for(lambda: store.roster.version == 1, 10, "central's roster")
    assert barred(store)
    lifted = {**BARRED_ROSTER, "version": 2, "guardians": [{**BARRED_ROSTER["guardians"][0], "links": [{"student": "S1"}]}]}
    # Unsigned, and signed by a key that is not central's: both refused.
    intruder.send(TOPICS.roster(SCHOOL), protocol.canonical_json(lifted), retain=True)
    intruder.send(TOPICS.roster(SCHOOL), protocol.seal(protocol.canonical_json(lifted), Ed25519PrivateKey.generate()))
    delta = {"v": 1, "school": SCHOOL, "from": 1, "to": 2, "guardians": lifted["guardians"]}
    intruder.send(TOPICS.roster_delta(SCHOOL), protocol.canonical_json(delta))
    wait_for(lambda: sync.refused == 3, 10, "three refused messages")
    assert store.roster.version == 1
    assert barred(store)
    faults = store.faults(UNVERIFIED)
    assert faults and faults[0]["detail"].startswith(f"sg/v1/{SCHOOL}/roster: ")
    assert sync.online  # a fault, not a crash


def test_a_forged_ack_does_not_empty_the_outbox(gate):
    store, sync, central, intruder = gate
    for _ in range(3):
        store.record("unknown_card", _at(), card="04A1B2C3")
    ack = {"v": 1, "school": SCHOOL, "kiosk": KIOSK, "upto": 3, "server_time": "2026-12-01T08:00:00+00:00"}
    intruder.send(TOPICS.ack(SCHOOL, KIOSK), protocol.canonical_json(ack))
    intruder.send(TOPICS.ack(SCHOOL, KIOSK), protocol.canonical_json({**ack, "sig": "ab" * 64}))
    # A genuine ack of another kiosk, replayed on this one's topic.
    central.send(TOPICS.ack(SCHOOL, KIOSK), protocol.seal(protocol.canonical_json({**ack, "kiosk": "k2"}), CENTRAL))
    wait_for(lambda: sync.refused == 3, 10, "three refused acks")
    assert store.queue_depth() == 3
    assert store.acked == 0
    kinds = [f["kind"] for f in store.faults()]
    assert kinds and set(kinds) == {UNVERIFIED}
    # The same ack signed by central does empty it: the path works, only forgeries are refused.
    central.send(TOPICS.ack(SCHOOL, KIOSK), protocol.seal(protocol.canonical_json(ack), CENTRAL))
    # acked moves once the outbox's rows are deleted and committed: wait for it, then both hold.
    wait_for(lambda: store.acked == 3, 10, "central's ack to empty the outbox")
    assert store.queue_depth() == 0


def _at():
    from datetime import UTC, datetime

    return datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
