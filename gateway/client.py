"""The kiosk side of sync: drain the outbox to central in seq order, apply acks and rosters.

The outbox is handed in (gateway imports no kiosk code). Nothing here keeps an event: paho's
session lives in memory only and brokers drop queued messages past their limits, so every
unacknowledged event is read again from the outbox after a reconnect or when acks stall.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from collections.abc import Callable
from typing import Protocol

import paho.mqtt.client as mqtt

from gateway import protocol
from gateway.feed import FeedFollower
from gateway.mqtt import BrokerAddress, Connection, Inbound, Will

log = logging.getLogger(__name__)


class Outbox(Protocol):
    """What the sync client needs of the kiosk's store."""

    @property
    def acked(self) -> int: ...
    @property
    def last_seq(self) -> int: ...
    def pending(self, after: int, limit: int) -> list[tuple[int, str]]: ...
    def ack(self, upto: int) -> int: ...
    def queue_depth(self) -> int: ...
    def apply_snapshot(self, snapshot: protocol.RosterSnapshot) -> bool: ...
    def apply_delta(self, delta: protocol.RosterDelta) -> bool: ...
    @property
    def roster_version(self) -> int: ...
    @property
    def boot(self) -> int: ...
    def mono(self) -> int: ...
    @property
    def central_key(self) -> str | None: ...
    def record_fault(self, kind: str, detail: str, at: datetime) -> None: ...


#: the fault a kiosk records for a message on central's topics that central's key does not verify
UNVERIFIED = "unverified_from_central"
FAULT_EVERY = 1.0  # seconds: at most one fault row a second under a flood; the rest are counted
OFFSET_STEP_MS = 1000  # a clock offset that moved less than this since the last status is no change

class SyncClient:
    """Publishes the outbox at QoS 1, keeps the roster copy current, and says how the kiosk is.

    ``batch`` events go in one message when more than one is pending; at most ``window`` events
    are in flight beyond the last ack; with no ack progress for ``resend_after`` seconds the
    unacknowledged events are sent again (central stores by (kiosk, seq), so repeats are harmless).

    The status (retained) goes out when something in it changes (queue, last seq written or acked,
    roster version, clock offset by OFFSET_STEP_MS or more, reader state, the guard signed in, the
    count of refused messages), at most once every ``status_gap`` seconds, and every
    ``status_every`` seconds regardless. The will is small: ``online: false`` and the boot, signed;
    the last values are those of the last status (docs/wire-protocol.md, "Status").
    """

    def __init__(
        self,
        outbox: Outbox,
        *,
        school: str,
        kiosk: str,
        broker: BrokerAddress,
        topics: protocol.Topics | None = None,
        batch: int = 100,
        window: int = 2000,
        resend_after: float = 5.0,
        status_every: float = 30.0,
        status_gap: float = 1.0,
        on_roster: Callable[[], None] | None = None,
        reader_state: Callable[[], str | None] | None = None,
        guard: Callable[[], str | None] | None = None,
        secret: bytes | None = None,
        refused_retry: tuple[int, int] = (30, 300),
        feed: FeedFollower | None = None,
    ) -> None:
        self.outbox = outbox
        #: the kiosk's secret: signs its status, whose clock pair central trusts only when signed
        self.secret = secret
        self.school, self.kiosk = school, kiosk
        self.topics = topics or protocol.Topics()
        self.broker = broker
        self.batch, self.window, self.resend_after = batch, window, resend_after
        self.status_every, self.status_gap = status_every, status_gap
        self.on_roster = on_roster
        self.reader_state = reader_state
        self.guard = guard
        #: the school's feed (other gates' events): its messages are queued to it, never applied here
        self.feed = feed
        #: the kiosk's wall clock minus central's, in ms, from the last ack (None until one came)
        self.clock_offset_ms: int | None = None
        # Acks and rosters are trusted only when central's own key verifies them: the broker's
        # ACL alone would let any local process lift a custody order or empty the outbox.
        self.central_key = protocol.parse_public_key(outbox.central_key) if outbox.central_key else None
        if self.central_key is None:
            log.error("kiosk %s/%s has no central key: every ack and roster will be refused", school, kiosk)
        #: messages on central's topics refused since start because they did not verify
        self.refused = 0
        self._last_fault = float("-inf")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sent_upto = 0
        self._rewound_at: int | None = None
        self._lost_told: int | None = None  # the resend_from of acked seqs last logged as lost at central
        self._last_progress = time.monotonic()
        self._last_status = float("-inf")
        self._status_due = True
        self._published: tuple | None = None
        self._published_offset: int | None = None
        self._heard_central = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.connection = Connection(
            f"sg-kiosk-{school}-{kiosk}",
            broker,
            on_message=self._on_message,
            on_connected=self._on_connect,
            on_disconnected=self._on_disconnect,
            will=Will(self.topics.status(school, kiosk), self._will_payload()),
            refused_retry=refused_retry,
            name=f"kiosk {school}/{kiosk}",
        )
        self.connection.subscribe(
            [
                (self.topics.ack(school, kiosk), 1),
                (self.topics.roster(school), 1),
                (self.topics.roster_delta(school), 1),
            ]
            + ([(self.topics.feed(school), 1)] if feed else [])
        )

    @property
    def client(self) -> mqtt.Client:
        return self.connection.client

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SyncClient:
        # The kiosk runs with no broker at all and connects when one appears (Connection.start).
        if self.feed:
            self.feed.start()
        self.connection.start()
        self._thread = threading.Thread(target=self._run, name=f"sync-{self.kiosk}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop cleanly: the sender ends, an offline status with the last values goes out (when
        connected), then DISCONNECT, so the broker does not send the will over it."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(5)
        if self.connection.connected.is_set():
            info = self.connection.publish(
                self.topics.status(self.school, self.kiosk), self._status_payload(online=False), qos=1, retain=True
            )
            # The broker may have gone a moment ago without paho noticing yet: then the will says
            # offline instead, and stopping must not fail.
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                try:
                    info.wait_for_publish(2)
                except (RuntimeError, ValueError) as exc:
                    log.info("offline status not sent: %s", exc)
        self.connection.stop()
        if self.feed:
            self.feed.stop()

    def drop(self) -> None:
        """Lose the connection as a power cut would: no DISCONNECT, so the broker sends the will."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(5)
        self.connection.drop()
        if self.feed:
            self.feed.disconnected()

    def notify(self) -> None:
        """A new event is in the outbox (or something the status shows changed)."""
        self._wake.set()

    @property
    def online(self) -> bool:
        return self.connection.connected.is_set()

    @property
    def refused_total(self) -> int:
        """Messages from central refused since start: acks and rosters here, the feed's in the follower."""
        return self.refused + (self.feed.refused if self.feed else 0)

    @property
    def problem(self) -> str | None:
        """Why the broker will not have this kiosk ("login_refused", "refused", "subscription_refused"),
        or None: offline without a problem is the network or the broker down."""
        return self.connection.problem

    # --- connection events (paho's network thread: flags only) ------------------------------------

    def _on_connect(self) -> None:
        with self._lock:
            # Whatever was in flight on the old connection may be lost: send it again.
            self._sent_upto = self.outbox.acked
            self._last_progress = time.monotonic()
        self._status_due = True
        self._heard_central = False
        self._wake.set()
        if self.feed:
            self.feed.connected()  # queued: it catches up from its last place before the counts are trusted again

    def _on_disconnect(self) -> None:
        if self.feed:
            self.feed.disconnected()  # queued: the other gates are unknown from now

    # --- messages from central (Connection's worker thread, never paho's) -------------------------

    def _on_message(self, message: Inbound) -> None:
        try:
            kind, school, _kiosk = self.topics.parse(message.topic)
            if kind == "feed":
                if self.feed:
                    self.feed.offer(message.payload)  # verified and applied on the feed's own thread
                return
            if kind == "roster" and not message.payload:
                return  # a cleared retained message: nothing is applied
            if kind in ("ack", "roster", "roster/delta") and not self._verified(message):
                return
            if kind == "ack":
                ack = protocol.parse_message(protocol.Ack, message.payload)
                if (ack.school, ack.kiosk) != (self.school, self.kiosk):
                    self._refuse(message, f"the ack is for {ack.school}/{ack.kiosk}, not this kiosk")
                    return
                self._apply_ack(ack)
            elif kind == "roster":
                snap = protocol.parse_snapshot(message.payload)
                if self.outbox.apply_snapshot(snap):
                    log.info("roster snapshot v%s applied", snap.version)
                    self._roster_changed()
            elif kind == "roster/delta":
                delta = protocol.parse_message(protocol.RosterDelta, message.payload)
                if self.outbox.apply_delta(delta):
                    log.info("roster delta v%s->v%s applied", delta.from_, delta.to)
                    self._roster_changed()
        except Exception as exc:  # noqa: BLE001 - a bad message never stops the kiosk
            log.warning("ignored a bad message on %s: %s", message.topic, exc)

    def _verified(self, message: Inbound) -> bool:
        """Whether central's key verifies the message; if not, a recorded fault (never an exception)."""
        try:
            protocol.unseal(message.payload, self.central_key)
            return True
        except protocol.ProtocolError as exc:
            self._refuse(message, str(exc))
            return False

    def _refuse(self, message: Inbound, reason: str) -> None:
        log.warning("refused a message on %s: %s", message.topic, reason)
        now = time.monotonic()
        if now - self._last_fault >= FAULT_EVERY:
            self._last_fault = now
            try:
                self.outbox.record_fault(UNVERIFIED, f"{message.topic}: {reason}", datetime.now(UTC))
            except Exception:  # noqa: BLE001 - a fault that cannot be stored is still refused and logged
                log.exception("the refused message on %s could not be recorded", message.topic)
        # Counted once its fault is stored: whoever sees the count (the console, a test) finds the fault.
        self.refused += 1
        # The count goes out with the next status, rate-limited by status_gap, not one per forgery.
        self._wake.set()

    def _apply_ack(self, ack: protocol.Ack) -> None:
        if not self._heard_central:
            # Central is listening now. The status sent on connecting may have reached the broker
            # before central subscribed, and central reads clocks only from live statuses: send one
            # now, or a kiosk draining a long offline backlog gives central no clock to correct it by.
            self._heard_central = True
            self._status_due = True
        server = datetime.fromisoformat(ack.server_time)
        self.clock_offset_ms = int((datetime.now(UTC) - server).total_seconds() * 1000)
        if ack.refused:
            # Central refused these of our own events as malformed; the ack covers them so the
            # chain goes on; central keeps them as refused_event incidents, the kiosk's log names them.
            log.error("central refused events %s of this kiosk as malformed (see its safety incidents)", ack.refused)
        resume = getattr(self.outbox, "resume", None)
        if resume is not None:
            # After a restore from a backup: central's head says where this kiosk goes on from.
            moved = resume(ack.head, ack.head_hash)
            if moved or ack.head is not None:
                log.info("central holds up to seq %s; %d event(s) recorded since the restore renumbered after it", ack.head, moved)
        dropped = 0
        if ack.upto > self.outbox.acked:
            try:
                dropped = self.outbox.ack(ack.upto)
            except Exception as exc:  # noqa: BLE001 - an ack past what we wrote deletes nothing
                log.error("refused an ack up to %d: %s", ack.upto, exc)
        if ack.resend_from is not None and ack.resend_from <= self.outbox.acked and not self._status_due:
            # Central asks again for events it acknowledged before: it lost them (restored from an
            # older backup), and they are gone from this outbox. The signed status names what it
            # acknowledged, and central goes on after it (docs/wire-protocol.md).
            if self._lost_told != ack.resend_from:
                log.error("central asks again for seqs from %d, which it acknowledged up to %d: it has lost them",
                          ack.resend_from, self.outbox.acked)
                self._lost_told = ack.resend_from
            self._status_due = True
        with self._lock:
            if dropped:
                self._last_progress = time.monotonic()
            # Central repeats resend_from on every ack while a gap is open: go back once per gap
            # (and again only after resend_after), or each ack would send the whole window again.
            if ack.resend_from is not None and (
                self._rewound_at != ack.resend_from or time.monotonic() - self._last_progress > self.resend_after
            ):
                self._sent_upto = min(self._sent_upto, ack.resend_from - 1)
                self._rewound_at = ack.resend_from
                self._last_progress = time.monotonic()
            self._sent_upto = max(self._sent_upto, self.outbox.acked)
        self._wake.set()

    def _roster_changed(self) -> None:
        self._wake.set()
        if self.on_roster:
            self.on_roster()

    # --- the sender thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if not self.online:
                continue
            try:
                # Status first: on a fresh connection it tells central how this boot's monotonic
                # clock maps onto central's before any offline events arrive.
                self._maybe_publish_status()
                self._send_some()
            except Exception:  # noqa: BLE001 - keep syncing; the outbox still has everything
                log.exception("sync step failed")

    def _send_some(self) -> None:
        with self._lock:
            acked = self.outbox.acked
            if self._sent_upto > acked and time.monotonic() - self._last_progress > self.resend_after:
                log.info("no ack for %.1fs: resending from seq %d", self.resend_after, acked + 1)
                self._sent_upto = acked
                self._last_progress = time.monotonic()
            room = acked + self.window - self._sent_upto
            if room <= 0:
                return
            rows = self.outbox.pending(self._sent_upto, min(self.batch, room))
            hold = getattr(self.outbox, "hold_after", None)
            if hold is not None:
                # Restored from a backup: what was recorded since waits for central's head (Outbox.resume).
                rows = [row for row in rows if row[0] <= hold]
            if not rows:
                return
            events = [protocol.decode(payload.encode()) for _, payload in rows]
            info = self.client.publish(
                self.topics.events(self.school, self.kiosk), protocol.batch_payload(events), qos=1
            )
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return  # not connected after all; on_connect resends
            if self._sent_upto == acked:
                self._last_progress = time.monotonic()
            self._sent_upto = rows[-1][0]
        if len(rows) == self.batch:
            self._wake.set()

    def _shown(self) -> tuple:
        """What a status shows that can change, cheap to read (no SQLite): a change sends a status.
        The queue is last_seq - acked (the outbox holds exactly the seqs between)."""
        offset, published = self.clock_offset_ms, self._published_offset
        if offset is not None and published is not None and abs(offset - published) < OFFSET_STEP_MS:
            offset = published  # the jitter of an ack's round trip is no change
        return (
            self.outbox.last_seq,
            self.outbox.acked,
            self.outbox.roster_version,
            offset,
            self.reader_state() if self.reader_state else None,
            self.guard() if self.guard else None,
            self.refused_total,
        )

    def _maybe_publish_status(self, now: float | None = None) -> bool:
        """Publish the status if it is due (a connect, central heard first), changed (at most once a
        ``status_gap``) or ``status_every`` old; whether it went out."""
        now = time.monotonic() if now is None else now
        shown = self._shown()
        since = now - self._last_status
        if not (self._status_due or since >= self.status_every or (shown != self._published and since >= self.status_gap)):
            return False
        info = self.connection.publish(
            self.topics.status(self.school, self.kiosk), self._status_payload(online=True), qos=1, retain=True
        )
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False  # not connected after all: the next connect sends one
        self._last_status, self._published, self._status_due = now, shown, False
        self._published_offset = shown[3]
        return True

    def _status(self, *, online: bool) -> protocol.Status:
        return protocol.Status(
            v=1,
            online=online,
            queue=self.outbox.queue_depth(),
            last_seq=self.outbox.last_seq,
            acked_seq=self.outbox.acked,
            roster_version=self.outbox.roster_version,
            at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            boot=self.outbox.boot,
            mono=self.outbox.mono(),
            clock_offset_ms=self.clock_offset_ms,
            reader=self.reader_state() if self.reader_state else None,
            guard=self.guard() if self.guard else None,
            refused=self.refused_total or None,
        )

    def _status_payload(self, *, online: bool) -> bytes:
        return protocol.status_payload(self._status(online=online), self.secret)

    def _will_payload(self) -> bytes:
        """The will: set once per connection, so it carries no value that changes; central and any
        other reader keep the last values of the last status (docs/wire-protocol.md)."""
        return protocol.status_payload(protocol.Status(v=1, online=False, boot=self.outbox.boot), self.secret)
