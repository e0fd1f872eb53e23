"""Central's MQTT connection: events in (to the ingest), acks and rosters out."""

from __future__ import annotations

import logging
import os
import threading
import uuid
import zlib

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.core import keys
from central.core.config import Settings
from central.core.events import DomainEvents
from central.kiosks import roster
from central.kiosks.ingest import Ingest
from gateway import protocol
from gateway.mqtt import BrokerAddress, MqttError, make_client

log = logging.getLogger(__name__)


class Bus:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        broker: BrokerAddress,
        topics: protocol.Topics,
        batch: int = 500,
        skew_limit_ms: int = 5000,
        shared_group: str | None = None,
        partition: tuple[int, int] | None = None,
        settings: Settings | None = None,
        signing_key: Ed25519PrivateKey | None = None,
        events: DomainEvents | None = None,
    ) -> None:
        self.engine = engine
        # Everything central publishes is signed with its own key (acks, rosters, deltas): kiosks
        # refuse what does not verify, so the broker's ACL is not the only thing standing between
        # a local process and a roster that lifts a custody order.
        self.signing_key = signing_key or keys.load_or_create((settings or Settings.model_construct()).signing_key_file)
        self.broker = broker
        self.topics = topics
        self.shared_group = shared_group
        # (index, count): this worker stores only the kiosks whose key hashes to its index, so each
        # kiosk has one writer and its events stay in order; every worker still receives them all.
        self.partition = partition
        self.ingest = Ingest(
            engine, topics=topics, publish=self.publish, batch=batch, skew_limit_ms=skew_limit_ms, shared=bool(shared_group),
            settings=settings, events=events,
        )
        self.connected = threading.Event()
        # A shared subscription is MQTT 5: Mosquitto or EMQX, not the embedded broker.
        self.client = make_client(f"sg-central-{os.getpid()}-{uuid.uuid4().hex[:6]}", broker, mqtt5=bool(shared_group))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message

    def _on_message(self, _client, _userdata, msg: mqtt.MQTTMessage) -> None:
        if self.partition and not self.mine(msg.topic):
            return
        self.ingest.submit(msg.topic, msg.payload, bool(msg.retain))

    def mine(self, topic: str) -> bool:
        """Whether this worker's partition holds the kiosk of a topic (a bad topic: worker 0's)."""
        index, count = self.partition or (0, 1)
        try:
            _kind, school, kiosk = self.topics.parse(topic)
        except protocol.ProtocolError:
            return index == 0  # exactly one worker records the incident
        return zlib.crc32(f"{school}/{kiosk}".encode()) % count == index

    @classmethod
    def from_settings(cls, engine: sa.Engine, settings, *, events: DomainEvents | None = None) -> Bus:
        """The bus as central's settings describe it (``central.core.config.Settings``)."""
        return cls(
            engine,
            broker=BrokerAddress.parse(settings.mqtt_url),
            topics=protocol.Topics(settings.topic_prefix),
            batch=settings.ingest_batch,
            skew_limit_ms=int(settings.clock_skew_limit_s * 1000),
            shared_group=settings.ingest_shared_group,
            partition=settings.partition,
            settings=settings,
            events=events,
        )

    def start(self, wait: float = 10.0) -> Bus:
        self.ingest.start()
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        if wait and not self.connected.wait(wait):
            log.warning("central has no broker at %s yet; it keeps trying", self.broker)
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.ingest.stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker %s refused central: %s", self.broker, reason_code)
            return
        if self.shared_group:
            group = self.shared_group
            topics = [(f"$share/{group}/{self.topics.all_events()}", 1), (f"$share/{group}/{self.topics.all_status()}", 1)]
        else:
            topics = [(self.topics.all_events(), 1), (self.topics.all_status(), 1)]
        client.subscribe(topics)
        self.connected.set()
        # A broker without persistence forgets retained rosters when it restarts: retain them again.
        threading.Thread(target=self.republish_rosters, name="roster-republish", daemon=True).start()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Sign and publish one message as central (the one way out of central onto the broker)."""
        info = self.client.publish(topic, protocol.seal(payload, self.signing_key), qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise MqttError(f"publish to {topic}: {mqtt.error_string(info.rc)}")

    def republish_rosters(self) -> None:
        roster.republish_all(self.engine, publisher=self, topics=self.topics)


def publish_once(
    broker: BrokerAddress, messages: list[tuple[str, bytes, bool]], *, signing_key: Ed25519PrivateKey, timeout: float = 10.0
) -> None:
    """Publish a few messages as central, signed, from a short-lived client (the command line's import, register)."""
    client = make_client(f"sg-cli-{os.getpid()}", broker)
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    try:
        for topic, payload, retain in messages:
            info = client.publish(topic, protocol.seal(payload, signing_key), qos=1, retain=retain)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:  # the broker went away meanwhile
                raise MqttError(f"publish to {topic}: {exc}") from None
            if not info.is_published():
                raise MqttError(f"publish to {topic}: no PUBACK within {timeout} s")
    finally:
        client.disconnect()
        client.loop_stop()
