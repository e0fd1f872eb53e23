"""The ingest's acks, feeds and rosters leave from a sender thread of the bus ("central-out"), while the
ingest stores its next batch (issue 17): in the order the ingest gave them, a failed publish holding up
none after it, and what was handed over before a stop published before the stop returns. The embedded
broker with SQLite: no server needed."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

from sgtest import Broker, wait_for

from central.admin import create_school, register_kiosk
from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.kiosks.bus import Bus
from gateway import protocol
from gateway.mqtt import BrokerAddress, make_client

SECRET = uuid.uuid4().hex * 2


def test_the_sender_publishes_in_order_past_a_failure_and_hands_everything_over_before_a_stop(tmp_path):
    url = f"sqlite:///{tmp_path / 'central.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    broker = Broker(url).start()
    settings = Settings(database_url=url, mqtt_url=broker.central_url, signing_key_file=tmp_path / "central.key")
    create_school(settings, code="s1", name="s1")
    register_kiosk(settings, school="s1", kiosk="k1", secret=SECRET)
    address = BrokerAddress.parse(broker.central_url)
    bus = Bus(engine, broker=address, topics=protocol.Topics(), settings=settings).start()
    sent: list[tuple[str, str]] = []
    publish = bus.publish

    def recorded(topic: str, payload: bytes, *, retain: bool = False) -> None:
        if "/later/" in topic:
            bus._refresh_stop.wait(10)  # held until the stop has begun: what it hands over is then all still queued
        sent.append((topic, threading.current_thread().name))
        if len(sent) == 1:
            raise OSError("the first publish fails")
        publish(topic, payload, retain=retain)

    bus.publish = recorded
    probe = make_client(f"probe-{uuid.uuid4().hex[:6]}", address)
    try:
        wait_for(lambda: bus.connection.subscribed.is_set(), what="the bus subscribed")
        probe.connect(address.host, address.port)
        probe.loop_start()
        prev = ""
        for seq in (1, 2):
            event = protocol.new_event(school="s1", kiosk="k1", seq=seq, prev=prev, at=datetime.now(UTC), kind="unknown_card",
                                       card="04A1B2C3", secret=bytes.fromhex(SECRET))
            prev = protocol.event_hash(event)
            probe.publish("sg/v1/s1/k1/events", protocol.canonical_json(event), qos=1).wait_for_publish(10)
            wait_for(lambda seq=seq: bus.ingest.stored == seq, what=f"event {seq} stored")
        # Each stored batch: its school's feed, then its ack, from the sender; the first feed failed, the rest went.
        wait_for(lambda: len(sent) == 4, what="two feeds and two acks handed to paho")
        assert sent == [("sg/v1/s1/feed", "central-out"), ("sg/v1/s1/k1/ack", "central-out")] * 2
        for n in range(1000):
            bus.publish_later(f"sg/v1/s1/later/{n}", b"{}")
        bus.stop()
        assert not bus._sender.is_alive()  # it ended, after the last message handed over
        assert [topic for topic, _ in sent[4:]] == [f"sg/v1/s1/later/{n}" for n in range(1000)]
    finally:
        probe.loop_stop()
        bus.stop()
        broker.stop()
