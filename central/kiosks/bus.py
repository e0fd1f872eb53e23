"""Central's MQTT connection: events in (to the ingest), acks and rosters out."""

from __future__ import annotations

import logging
import os
import queue
import threading
import uuid
import zlib

import orjson
import paho.mqtt.client as mqtt
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.core import keys
from central.core.config import Settings
from central.core.events import DomainEvents, FeedAdvanced, SchoolWatched
from central.core.metrics import Metrics
from central.kiosks import roster
from central.kiosks.ingest import Ingest
from gateway import protocol
from gateway.mqtt import BrokerAddress, Connection, Inbound, MqttError

log = logging.getLogger(__name__)

#: messages the ingest handed over and the sender has not signed and published yet; the ingest waits
#: while this many wait (a broker away does not hold them up: paho refuses them at once)
OUTGOING_KEPT = 10_000


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
        metrics: Metrics | None = None,
        follow_feeds: bool = False,
        ingest: bool = True,
        kiosk_refresh_s: float = 10.0,
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
        # kiosk has one writer and its events stay in order; it subscribes to those kiosks only (below).
        self.partition = partition
        # The ingest's acks, feeds and rosters are signed and handed to paho on a thread of their own
        # ("central-out"), in the order the ingest gave them, while the ingest stores its next batch:
        # that was half of the ingest thread's time, and signing does not hold the interpreter's lock.
        self._outgoing: queue.Queue[tuple[str, bytes, bool] | None] = queue.Queue(maxsize=OUTGOING_KEPT)
        self._sender: threading.Thread | None = None
        self.ingest = Ingest(
            engine, topics=topics, publish=self.publish_later, batch=batch, skew_limit_ms=skew_limit_ms, shared=bool(shared_group),
            settings=settings, events=events, metrics=metrics,
        )
        # A shared subscription is MQTT 5: Mosquitto or EMQX, not the embedded broker.
        self.connection = Connection(
            f"sg-central-{os.getpid()}-{uuid.uuid4().hex[:6]}", broker, mqtt5=bool(shared_group),
            on_message=self._on_message, on_connected=self._on_connect, name="central",
            inline=True,  # _on_message only queues for the ingest's own thread
            on_granted=self._granted,
        )
        # Without ``ingest`` (central serve beside ingest workers) nothing is subscribed for storing.
        self.ingesting = ingest
        # A partitioned worker subscribes to its own kiosks' topics, not to every kiosk's: each of N
        # workers receiving (and paho parsing) every message was N times the MQTT work for 1/N of the
        # storing. The kiosks are read from the database at start and every ``kiosk_refresh_s`` (a
        # kiosk registered meanwhile resends until its worker has subscribed and acks it).
        self.by_kiosk = bool(ingest and partition and not shared_group)
        self.kiosk_refresh_s = kiosk_refresh_s
        self._kiosk_topics: set[str] = set()
        self._refresh_stop = threading.Event()
        wanted = [topics.all_events(), topics.all_status()] if ingest and not self.by_kiosk else []
        if shared_group:
            wanted = [f"$share/{shared_group}/{topic}" for topic in wanted]
        # With other ingest processes (partitions, a shared subscription) this process's domain events
        # hear only what it stored itself: the schools' feeds say what the others stored, so the live
        # pages served here still move on every tap (FeedAdvanced), whichever worker stored it. Only the
        # feeds of the schools with a live page open here (SchoolWatched): a city's whole feed, parsed
        # for pages nobody has open, was a third of a core at half a city's speed.
        self.events = events
        self.follow_feeds = bool(follow_feeds and events is not None)
        self._heads: dict[int, int] = {}
        self._school_ids: dict[str, int | None] = {}
        self._school_codes: dict[int, str | None] = {}
        #: the schools whose feed this process follows now (granted by the broker)
        self.following: set[int] = set()
        self._watch_queue: queue.SimpleQueue[tuple[str, object] | None] = queue.SimpleQueue()
        if self.follow_feeds:
            events.subscribe(FeedAdvanced, self._heard)
            events.subscribe(SchoolWatched, lambda e: self._watch_queue.put(("watch", e)))
        self.connection.subscribe([(topic, 1) for topic in wanted])
        self.connected = self.connection.connected
        self.client = self.connection.client

    def _on_message(self, msg: Inbound) -> None:
        # paho's network thread (inline): the ingest queues it for its own writer thread; nothing slower here.
        if self.follow_feeds and msg.topic.endswith("/feed"):
            self._feed(msg)
            return
        if not self.ingesting or (self.partition and not self.mine(msg.topic)):
            return
        self.ingest.submit(msg.topic, msg.payload, msg.retain)

    def _heard(self, event: FeedAdvanced) -> None:
        # Heads only grow (each school's row lock orders them): the highest heard is what a page shows.
        if event.head > self._heads.get(event.school_id, -1):
            self._heads[event.school_id] = event.head

    def _feed(self, msg: Inbound) -> None:
        """A school's feed message (central's, from whichever process stored it): FeedAdvanced here
        when its head is past what this process heard. Nothing of it is shown: the pages read the
        database; only central's login may publish on a feed topic (the broker's ACL)."""
        try:
            _kind, school, _ = self.topics.parse(msg.topic)
            head = orjson.loads(msg.payload)["head"]
        except (protocol.ProtocolError, orjson.JSONDecodeError, KeyError, TypeError):
            return
        if not isinstance(head, int) or isinstance(head, bool):
            return
        school_id = self._id(school)
        if school_id is not None and head > self._heads.get(school_id, -1):
            self.events.publish(FeedAdvanced(school_id=school_id, head=head))  # _heard moves the head

    def _granted(self, topics: list[str]) -> None:
        # paho's thread: the catch-up reads the database, on the follower's thread
        if self.follow_feeds:
            for topic in topics:
                if topic.endswith("/feed"):
                    self._watch_queue.put(("granted", topic))

    def _follow(self) -> None:
        """The follower's thread: subscribes to a school's feed when its first page opens here, and
        unsubscribes when its last closes; once the broker granted a feed (again, after a reconnect),
        the head in the database is a FeedAdvanced if it is past what this process heard, so what was
        stored before the subscription (or while the broker was away) still wakes the pages."""
        while (item := self._watch_queue.get()) is not None:
            what, value = item
            try:
                if what == "watch":
                    code = self._code(value.school_id)
                    if code is None:
                        continue
                    if value.watching:
                        self.connection.subscribe([(self.topics.feed(code), 1)])
                    else:
                        self.following.discard(value.school_id)
                        self.connection.unsubscribe([self.topics.feed(code)])
                else:
                    _kind, school, _ = self.topics.parse(value)
                    school_id = self._id(school)
                    if school_id is None or self.topics.feed(school) not in self.connection.subscriptions():
                        continue
                    self.following.add(school_id)
                    with self.engine.connect() as conn:
                        head = conn.execute(sa.text("SELECT feed_head FROM school WHERE id = :i"), {"i": school_id}).scalar()
                    if head and head > self._heads.get(school_id, -1):  # 0: nothing stored yet
                        self.events.publish(FeedAdvanced(school_id=school_id, head=head))
            except Exception:  # noqa: BLE001 - the pages still move at their next round
                log.exception("following the feed (%s %s) failed", what, value)

    def _code(self, school_id: int) -> str | None:
        if school_id not in self._school_codes:
            with self.engine.connect() as conn:  # once a school: its code does not change
                self._school_codes[school_id] = conn.execute(sa.text("SELECT code FROM school WHERE id = :i"), {"i": school_id}).scalar()
        return self._school_codes[school_id]

    def _id(self, school: str) -> int | None:
        if school not in self._school_ids:
            with self.engine.connect() as conn:  # once a school: its id does not change
                self._school_ids[school] = conn.execute(sa.text("SELECT id FROM school WHERE code = :c"), {"c": school}).scalar()
        return self._school_ids[school]

    def mine(self, topic: str) -> bool:
        """Whether this worker's partition holds the kiosk of a topic (a bad topic: worker 0's)."""
        index, count = self.partition or (0, 1)
        try:
            _kind, school, kiosk = self.topics.parse(topic)
        except protocol.ProtocolError:
            return index == 0  # exactly one worker records the incident
        return zlib.crc32(f"{school}/{kiosk}".encode()) % count == index

    @classmethod
    def from_settings(
        cls, engine: sa.Engine, settings, *, events: DomainEvents | None = None, metrics: Metrics | None = None,
        follow_feeds: bool = False, ingest: bool = True,
    ) -> Bus:
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
            metrics=metrics,
            follow_feeds=follow_feeds,
            ingest=ingest,
        )

    def start(self, wait: float = 10.0, *, background: bool = False) -> Bus:
        """Connect, waiting up to ``wait`` seconds for the broker; with ``background`` return at once
        (central's HTTP must answer while the broker is away; /healthz says mqtt false meanwhile)
        and log from a thread of its own if the broker has not answered within ``wait``."""
        if self.ingesting:
            self._sender = threading.Thread(target=self._send, name="central-out", daemon=True)
            self._sender.start()
            self.ingest.start()
        if self.by_kiosk:
            try:
                self.subscribe_kiosks()
            except Exception:  # noqa: BLE001 - a database not up yet: the refresh below tries again
                log.exception("reading the kiosks to subscribe to failed; trying again in %s s", self.kiosk_refresh_s)
            threading.Thread(target=self._refresh_kiosks, name="kiosk-topics", daemon=True).start()
        if self.follow_feeds:
            threading.Thread(target=self._follow, name="feed-follow", daemon=True).start()
        self.connection.start()
        if background:
            if wait:
                threading.Thread(target=self._warn_unless_connected, args=(wait,), name="bus-connect", daemon=True).start()
        else:
            self._warn_unless_connected(wait)
        return self

    def _warn_unless_connected(self, wait: float) -> None:
        if wait and not self.connected.wait(wait):
            log.warning("central has no broker at %s yet (%s); it keeps trying", self.broker,
                        self.connection.problem_detail or "no answer")

    def stop(self) -> None:
        self._refresh_stop.set()
        self._watch_queue.put(None)
        self.connection.stop()
        self.ingest.stop()
        if self._sender is not None:
            self._outgoing.put(None)  # after what the ingest handed over
            self._sender.join(10)

    def subscribe_kiosks(self) -> set[str]:
        """Subscribe to the events and status of each registered kiosk of this worker's partition not
        subscribed yet; returns the topics added."""
        with self.engine.connect() as conn:
            kiosks = conn.execute(sa.text("SELECT s.code, k.code FROM kiosk k JOIN school s ON s.id = k.school_id")).all()
        added = set()
        for school, kiosk in kiosks:
            try:
                topic = self.topics.events(school, kiosk)
            except protocol.ProtocolError:
                continue  # a code no topic can carry: its kiosk cannot publish either
            if self.mine(topic):
                added |= {topic, self.topics.status(school, kiosk)} - self._kiosk_topics
        if added:
            self._kiosk_topics |= added
            self.connection.subscribe([(topic, 1) for topic in sorted(added)])
        return added

    def _refresh_kiosks(self) -> None:
        while not self._refresh_stop.wait(self.kiosk_refresh_s):
            try:
                self.subscribe_kiosks()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("reading the kiosks to subscribe to failed")

    def _on_connect(self) -> None:
        # A broker without persistence forgets retained rosters when it restarts: retain them again.
        threading.Thread(target=self._republish_until_done, name="roster-republish", daemon=True).start()

    def _republish_until_done(self) -> None:
        """republish_rosters, again every ``kiosk_refresh_s`` while the database cannot be read (a worker
        started before it), until done or the bus stops."""
        while True:
            try:
                self.republish_rosters()
                return
            except Exception as exc:  # noqa: BLE001 - the database may be on its way
                log.warning("republishing the retained rosters failed (%s: %.200s); trying again in %s s",
                            type(exc).__name__, exc, self.kiosk_refresh_s)
            if self._refresh_stop.wait(self.kiosk_refresh_s):
                return

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Sign and publish one message as central (the one way out of central onto the broker)."""
        info = self.connection.publish(topic, protocol.seal(payload, self.signing_key), qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise MqttError(f"publish to {topic}: {mqtt.error_string(info.rc)}")

    def publish_later(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """The ingest's way out: ``publish`` on the sender's thread, in the order given."""
        self._outgoing.put((topic, payload, retain))

    def _send(self) -> None:
        while (item := self._outgoing.get()) is not None:
            topic, payload, retain = item
            try:
                self.publish(topic, payload, retain=retain)
            except Exception:  # noqa: BLE001 - the next messages still go; a kiosk resends what was not acked
                log.exception("publishing on %s failed", topic)

    def republish_rosters(self) -> None:
        roster.republish_all(self.engine, publisher=self, topics=self.topics)


def publish_once(
    broker: BrokerAddress, messages: list[tuple[str, bytes, bool]], *, signing_key: Ed25519PrivateKey, timeout: float = 10.0
) -> None:
    """Publish a few messages as central, signed, from a short-lived connection (the command line's
    import, register); OSError or MqttError (a refused login named) when they cannot go out."""
    connection = Connection(f"sg-cli-{os.getpid()}", broker, name="central (command line)").open(timeout)
    try:
        for topic, payload, retain in messages:
            info = connection.publish(topic, protocol.seal(payload, signing_key), qos=1, retain=retain)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:  # the broker went away meanwhile
                raise MqttError(f"publish to {topic}: {exc}") from None
            if not info.is_published():
                raise MqttError(f"publish to {topic}: no PUBACK within {timeout} s")
    finally:
        connection.stop()
