"""MQTT ingest: events from kiosks into the database, exactly once in effect.

Messages are queued by the MQTT thread and stored by one worker in batches (one transaction per
batch, SQLAlchemy Core, no ORM in the hot path). Each event is checked against protocol v1, its
kiosk's HMAC and its hash chain; it is stored once by (kiosk, seq); the kiosk is then acked up to
its highest contiguous seq, with ``resend_from`` when a seq went missing. Whatever is wrong with a
payload becomes a safety incident with the payload kept, never an exception that stops ingest.

Each message is isolated: one that fails in any way (a database error included) is retried alone,
a batch message event by event, and what still fails becomes a bounded incident; the rest of its
batch is stored. A kiosk's own event that is signed and next in its chain but malformed is
*refused*: the chain moves past it, the ack names it in ``refused``, and its next events go in.
Incidents are bounded: past ``DETAILED`` of one kind, school and kiosk in a window they are counted
on one row, and unregistered kiosk names past ``UNKNOWN_NAMES`` a school share one name, ``*``.

Signed kiosk status messages and signed events feed the clock estimate: each boot's monotonic clock
is mapped onto central's, so an event recorded while the kiosk's wall clock was wrong still gets its
true time, and a wall clock off by more than the limit is reported as a ``clock_skew`` incident. An
event without a clock pair whose time is far from its arrival is a ``time_out_of_range`` incident.

A ``pickup`` event noted ``code:<id>`` used that one-time code at the kiosk: once the batch is
stored the code is marked used and the school's roster, which carried it, is published again.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from central.core import clock as central_clock  # not `clock`: that name is each boot's Clock here
from central.core.config import Settings
from central.core.events import ChildAlertRaised, ChildLeft, DomainEvents, FeedAdvanced, GateEventsStored, IncidentStored
from central.core.metrics import Metrics
from central.kiosks import alerts, feed, health, roster
from central.kiosks.models import Event, KioskClock, SafetyIncident
from central.kiosks.services import corrected_time
from central.pickup import codes as pickup
from central.pickup.models import PickupCode
from central.schools.models import Kiosk, School
from gateway import protocol

log = logging.getLogger(__name__)

EVENT = Event.__table__
KIOSK = Kiosk.__table__
CLOCK = KioskClock.__table__
INCIDENT = SafetyIncident.__table__
SCHOOL = School.__table__
# PostgreSQL: the batch's gates locked in id order, then moved on (compare-and-set on acked_seq) in one
# update from arrays; last_seen (``at``) only where ``seen`` says so.
LOCK_KIOSKS = sa.text("SELECT count(*) FROM (SELECT id FROM kiosk WHERE id = ANY(CAST(:ids AS integer[])) ORDER BY id FOR UPDATE) AS locked")
MOVE_KIOSKS = sa.text(
    "UPDATE kiosk SET acked_seq = v.acked, last_hash = v.hash, last_seen = CASE WHEN v.seen THEN CAST(:at AS timestamptz) "
    "ELSE kiosk.last_seen END FROM unnest(CAST(:ids AS integer[]), CAST(:reads AS integer[]), CAST(:acked AS integer[]), "
    "CAST(:hashes AS text[]), CAST(:seen AS boolean[])) AS v(id, read, acked, hash, seen) WHERE kiosk.id = v.id AND kiosk.acked_seq = v.read"
)
EVENT_COLUMNS = [column.name for column in EVENT.columns]
COPY_EVENTS = f"COPY event ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
PAYLOAD_KEPT = 4000  # characters of a bad payload kept with its incident
DETAIL_KEPT = 1000  # characters of an incident's detail (an exception's text can be anything)
WINDOW_S = 600.0  # seconds of one window of incident bookkeeping
DETAILED = 10  # incidents of one kind, school and kiosk stored one by one per window; the rest are counted
UNKNOWN_NAMES = 20  # distinct unregistered kiosk names of one school per window; the rest are filed as "*"
FAR_PAST = timedelta(days=30)  # an event without a clock pair older than this on arrival is an incident
# The database is unreachable or locked: no message is to blame, the whole batch is retried by resend.
DB_DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError, sa.exc.TimeoutError)
SEQLESS_QUIET = 600.0  # seconds an incident without a seq stays quiet after it was stored
MAX_AHEAD = 100_000  # a seq this far past the last stored one is not a gap but a fault
CODE_NOTE = "code:"  # a pickup event's note naming the one-time code used
# last_hash after central found it had lost a kiosk's events it once acknowledged (restored from an
# older backup): the kiosk's next event is taken with whatever prev it carries, its signature still
# checked, and the chain goes on from it. Never a hash (64 hex digits) nor "" (no event yet).
BRIDGE = "lost"


@dataclass
class Clock:
    base_ms: int
    skew_reported_ms: int | None = None
    known: bool = False  # a row exists in kiosk_clock
    dirty: bool = False


@dataclass
class KioskState:
    id: int
    school_id: int
    secret: bytes
    acked: int
    last_hash: str
    gap: bool = False
    dirty: bool = False
    clocks: dict[int, Clock] = field(default_factory=dict)
    # The kiosk showed it knows less than central holds (it resent a stored seq, or its status
    # said less was acked): its next ack names central's head, where a kiosk restored from an old
    # backup resumes (docs/wire-protocol.md, "A kiosk restored from a backup").
    behind: bool = False
    read: int = -1  # acked_seq as stored when read (or last written): what the compare-and-set expects

    def __post_init__(self) -> None:
        if self.read < 0:
            self.read = self.acked


class StaleKiosk(Exception):
    """A kiosk's acked_seq moved since this worker read it: its batch is rolled back and read again."""


@dataclass(frozen=True)
class Incident:
    kind: str
    detail: str
    topic: str = ""
    payload: str = ""
    school_id: int | None = None
    kiosk: str | None = None
    seq: int | None = None
    registered: bool = True  # False: the kiosk name came from a topic no registered kiosk owns


@dataclass
class _Checked:
    """One event of a message that passed the checks of who sent it: stored, or refused (``refused``
    says why) when it is the kiosk's own signed event but not a valid one."""

    raw: dict[str, Any]
    seq: int
    prev: str
    event: protocol.Event | None
    refused: str | None = None
    wire: bytes | None = None  # the event's canonical JSON, written once for the signature and the hash


@dataclass
class _IncidentPlan:
    """What a batch adds to the incident bookkeeping of the window; merged once committed."""

    counts: Counter = field(default_factory=Counter)
    summaries: dict[tuple, int] = field(default_factory=dict)
    names: dict[int | None, set[str]] = field(default_factory=dict)


@dataclass
class _Batch:
    """What one batch of messages adds up to before it is written."""

    received_at: datetime
    arrived_ms: int = 0  # when the message being processed reached central (its clock samples use it)
    rows: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    touched: dict[tuple[str, str], KioskState] = field(default_factory=dict)
    # (kiosk id, seq) of events already stored, to compare with a resent one: (hash, topic, raw)
    repeats: list[tuple[KioskState, str, int, str, str, str]] = field(default_factory=list)
    # (school id, kiosk, code id as noted, time) of each one-time code used
    codes: list[tuple[int, str, str, datetime]] = field(default_factory=list)
    # (school, kiosk) -> seqs of the kiosk's own events refused (the ack names them)
    refused: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    # Set when this one-event message failed to store: its event is refused, with this reason.
    refuse_all: str | None = None
    plan: _IncidentPlan = field(default_factory=_IncidentPlan)
    # For the school feeds: each school's head once placed, and the codes of the rows' schools and kiosks
    heads: dict[int, int] = field(default_factory=dict)
    school_codes: dict[int, str] = field(default_factory=dict)
    kiosk_codes: dict[int, str] = field(default_factory=dict)
    # For each gate's health: kiosks heard from, and kiosk id -> (its status's fields, online, retained)
    seen: set[int] = field(default_factory=set)
    # Child alerts no gate of the school had raised before (published once committed)
    alerts: list[ChildAlertRaised] = field(default_factory=list)
    statuses: dict[int, tuple[dict[str, Any], bool, bool]] = field(default_factory=dict)

    @property
    def received_ms(self) -> int:
        return int(self.received_at.timestamp() * 1000)


#: the stored events a child's guardians may hear of (published, a batch at a time, as ``GateEventsStored``);
#: the same as central/notifications/outbox.py's TOLD, which recovers them after a crash
TOLD = ("pickup", "self_dismiss", "checkin", "pickup_denied")


class Ingest:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        topics: protocol.Topics,
        publish: Callable[..., None],
        batch: int = 500,
        skew_limit_ms: int = 5000,
        on_stored: Callable[[list[dict[str, Any]]], None] | None = None,
        shared: bool = False,
        settings: Settings | None = None,
        clock: Callable[[], datetime] | None = None,
        events: DomainEvents | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        #: the app's counters (``/metrics``): events stored and their lag, counted after each commit
        self.metrics = metrics
        # "Now" for arrival times, skew and range checks, acks and incidents; a test pins it.
        self.clock = clock or (lambda: central_clock.utcnow())  # follows a patch of clock.utcnow
        #: the app's domain events: each stored safety incident is published as ``IncidentStored``
        self.events = events
        #: the roster's settings, for the roster a used code leaves
        self.settings = settings or Settings.model_construct()
        # Several ingest workers share the stream (MQTT 5 shared subscription): no worker may
        # trust what it remembers of a kiosk; each batch locks and reads the kiosk's row.
        self.shared = shared
        #: called after each commit with the rows it stored (live rosters, benchmarks)
        self.on_stored = on_stored
        self.topics = topics
        #: publish(topic, payload, *, retain=False): acks, and rosters once a code is used
        self.publish = publish
        self.batch = batch
        self.skew_limit_ms = skew_limit_ms
        self.queue: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self._kiosks: dict[tuple[str, str], KioskState] = {}
        self._schools: dict[str, int] = {}
        # Recently reported (kind, school, kiosk, seq): a resending kiosk does not flood the log.
        self._reported: OrderedDict[tuple, float] = OrderedDict()
        # This window's incident bookkeeping (DETAILED, UNKNOWN_NAMES): rows stored per (kind,
        # school, kiosk), the row counting the rest, and the unregistered names seen per school.
        self._window_start = time.monotonic()
        self._incident_counts: Counter = Counter()
        self._incident_summaries: dict[tuple, int] = {}
        self._unknown_names: dict[int | None, set[str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stored = 0

    # --- running ---------------------------------------------------------------------------

    def submit(self, topic: str, payload: bytes, retained: bool = False) -> None:
        # Stamped on arrival: a message that waits in the queue behind a backlog must not look
        # younger than it is, or the kiosk clocks mapped from it come out late.
        self.queue.put((topic, payload, retained, int(self.clock().timestamp() * 1000)))

    def start(self) -> Ingest:
        try:
            self.reconcile_codes()
        except Exception:  # noqa: BLE001 - a failed catch-up must not keep ingest from starting
            log.exception("reconciling pickup codes failed")
        self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            messages = [first]
            while len(messages) < self.batch:
                try:
                    messages.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self.process(messages)
            except Exception:  # noqa: BLE001 - the kiosks resend whatever was not acked
                log.exception("ingest of %d messages failed; they will be resent", len(messages))
                self._kiosks.clear()

    # --- one batch ---------------------------------------------------------------------------------

    def process(self, messages: list[tuple]) -> None:
        """Check, store and ack one batch of messages (topic, payload, retained[, arrival in ms]).

        A batch that fails for any reason but an unreachable database is taken apart: in halves down
        to each message alone, then each event of a message alone, then a lone event refused (an incident, and the
        kiosk told), so that one message never holds back the others or its kiosk's chain."""
        try:
            try:
                batch, fresh = self._store(messages)
            except StaleKiosk:
                # Another worker moved a kiosk on meanwhile: nothing was written; once more with
                # every kiosk read afresh (its events are repeats now, acked again).
                self._kiosks.clear()
                batch, fresh = self._store(messages)
        except DB_DOWN:
            self._kiosks.clear()
            raise
        except StaleKiosk:
            self._kiosks.clear()
            raise  # twice in a row: the kiosks resend, the next batch reads them afresh
        except Exception as exc:  # noqa: BLE001 - whatever it was, it is one message's fault
            self._kiosks.clear()
            if len(messages) > 1:
                # Halves, in order: a poison message among 500 costs about 2 x 9 transactions, not 500.
                log.warning("a batch of %d messages failed (%s: %.200s); storing it in halves", len(messages), type(exc).__name__, exc)
                middle = len(messages) // 2
                self.process(messages[:middle])
                self.process(messages[middle:])
                return
            found = self._isolate(messages[0], exc)
            if found is None:
                return
            batch, fresh = found
        self._finish(batch, fresh)

    def _isolate(self, message: tuple, exc: Exception) -> tuple[_Batch, dict] | None:
        """One message that failed to store: each of its events alone, or, for one event, that
        event refused. What fails even so is an ``ingest_error`` incident in a transaction of its own."""
        topic, payload, retained, *arrived = message
        try:
            raws = protocol.split_events_payload(payload) if self.topics.parse(topic)[0] == "events" else []
        except protocol.ProtocolError:
            raws = []
        if len(raws) > 1 and all(_jsonable(raw) for raw in raws):
            for raw in raws:
                self.process([(topic, protocol.canonical_json(raw), retained, *arrived)])
            return None
        reason = f"it could not be stored ({type(exc).__name__}: {str(exc)[:300]})"
        try:
            return self._store([message], refuse_all=reason)
        except DB_DOWN:
            self._kiosks.clear()
            raise
        except Exception as again:  # noqa: BLE001
            self._kiosks.clear()
            log.exception("a message on %s could not be stored nor refused", topic)
            try:
                _kind, school, kiosk = self.topics.parse(topic)
            except protocol.ProtocolError:
                school, kiosk = None, None
            incident = Incident(
                "ingest_error", f"the message could not be stored: {type(again).__name__}: {again}", topic,
                payload[: PAYLOAD_KEPT * 4].decode("utf-8", "replace"), self._schools.get(school), kiosk,
            )
            plan = _IncidentPlan()
            with self.engine.begin() as conn:
                self._write_incidents(conn, [incident], self.clock(), plan)
            self._merge_plan(plan)
            return None

    def _store(self, messages: list[tuple], *, refuse_all: str | None = None) -> tuple[_Batch, dict]:
        """One transaction: check every message, write what is good and the incidents."""
        batch = _Batch(self.clock(), refuse_all=refuse_all)
        self._roll_window()
        with self.engine.begin() as conn:
            # The batch's kiosks read in one query (locked when workers share the stream), not one
            # round trip each: in a city every message of a batch may be a different gate.
            self._load_kiosks(conn, messages, lock=self.shared)
            for topic, payload, retained, *arrived in messages:
                batch.arrived_ms = arrived[0] if arrived else batch.received_ms
                self._one_message(conn, topic, payload, retained, batch)
            self._check_repeats(conn, batch)
            batch.heads = feed.place(conn, batch.rows)  # takes each school's row lock until the commit
            _insert_events(conn, batch.rows, self.batch)
            batch.alerts = alerts.record(conn, batch.rows, batch.kiosk_codes)
            written = self._write_kiosks(conn, list(batch.touched.values()), seen=batch.seen, at=batch.received_at)
            health.note(conn, seen=batch.seen - written, statuses=batch.statuses, at=batch.received_at)
            fresh = self._fresh(batch.incidents)
            if fresh:
                self._write_incidents(conn, list(fresh.values()), batch.received_at, batch.plan)
        return batch, fresh

    def _finish(self, batch: _Batch, fresh: dict) -> None:
        self._merge_plan(batch.plan)
        try:
            self._after_commit(batch, fresh)
        finally:
            # The codes' events are stored: mark them even when an ack or a callback failed (a
            # resend is a repeat and would never bring them back).
            if batch.codes:
                self._use_codes(batch.codes)

    def _after_commit(self, batch: _Batch, fresh: dict) -> None:
        # Remembered only once stored: a batch that failed reports its incidents again on the resend.
        self._reported.update({key: time.monotonic() for key in fresh})
        while len(self._reported) > 10_000:
            self._reported.popitem(last=False)
        self.stored += len(batch.rows)
        if self.metrics is not None and batch.rows:
            self.metrics.observe_stored(batch.rows, self.clock())
        if self.events is not None:
            # The ingest writes through a connection, not a Session: it publishes after its own commit.
            for incident in fresh.values():
                self.events.publish(IncidentStored(incident.kind, incident.detail, incident.school_id, incident.kiosk, incident.seq))
            for alert in batch.alerts:
                self.events.publish(alert)
            told = tuple(
                ChildLeft(school_id=row["school_id"], event_id=row["id"], kind=row["kind"], student=row["student"],
                          guardian=row.get("guardian"), kiosk=batch.kiosk_codes[row["kiosk_id"]], at=row["at"],
                          note=row.get("note"), reason=row.get("reason"))
                for row in batch.rows if row["kind"] in TOLD and row.get("student")
            )
            if told:
                self.events.publish(GateEventsStored(told))
            # The school's feed moved on: the live pages (central/web) show what the gates saw.
            for school_id, head in batch.heads.items():
                self.events.publish(FeedAdvanced(school_id=school_id, head=head))
        if batch.rows:
            _log_stored(batch)
        if self.on_stored and batch.rows:
            self.on_stored(batch.rows)
        for incident in batch.incidents:
            log.warning("safety incident %s on %.300s: %.500s", incident.kind, incident.topic, incident.detail)
        self._publish_feeds(batch)
        now = self.clock()
        for (school, kiosk), state in batch.touched.items():
            # school and kiosk bind the signed ack to its kiosk: one kiosk's ack replayed on another's
            # topic must not empty that one's outbox.
            ack = ack_message(
                school=school, kiosk=kiosk, upto=state.acked, server_time=now,
                resend_from=state.acked + 1 if state.gap else None, refused=batch.refused.get((school, kiosk), ()),
                head=(state.acked, state.last_hash) if state.behind and state.last_hash != BRIDGE else None,
            )
            state.gap = state.behind = False
            self.publish(self.topics.ack(school, kiosk), protocol.canonical_json(ack))

    def _publish_feeds(self, batch: _Batch) -> None:
        """Each school's stored events on its feed. The events are stored: a feed that cannot be sent
        now is logged, and the school's gates fetch what they missed (they see a gap in the places)."""
        by_school: dict[int, list[dict[str, Any]]] = {}
        for row in batch.rows:  # once over the rows, not once per school (a city's batch: 400 schools)
            by_school.setdefault(row["school_id"], []).append(feed.entry(row, batch.kiosk_codes[row["kiosk_id"]]))
        for school_id, head in batch.heads.items():
            code = batch.school_codes[school_id]
            entries = by_school.get(school_id, [])
            try:
                for message in feed.messages(code, entries, head):
                    self.publish(self.topics.feed(code), protocol.canonical_json(message))
            except Exception:  # noqa: BLE001 - the acks must still go out
                log.exception("the feed of school %s could not be published up to %d", code, head)

    def _one_message(self, conn, topic: str, payload: bytes, retained: bool, batch: _Batch) -> None:
        text = payload[: PAYLOAD_KEPT * 4].decode("utf-8", "replace")
        try:
            kind, school, kiosk = self.topics.parse(topic)
            if kind not in ("events", "status"):
                raise protocol.ProtocolError(f"ingest takes events and status topics, not {kind}")
        except protocol.ProtocolError as exc:
            batch.incidents.append(Incident("malformed_payload", str(exc), topic, text))
            return
        school_id = self._school_id(conn, school)
        if kind == "status":
            self._status(conn, school, kiosk, payload, retained, batch)
            return
        state = self._kiosk(conn, school, kiosk)
        try:
            raws = protocol.split_events_payload(payload)
        except protocol.ProtocolError as exc:
            kind = "oversize_payload" if len(payload) > protocol.MAX_PAYLOAD else "malformed_payload"
            batch.incidents.append(Incident(kind, str(exc), topic, text, school_id, kiosk, registered=state is not None))
            return
        if state is None:
            batch.incidents.append(
                Incident("unknown_kiosk", f"kiosk {kiosk!r} is not registered at school {school!r}", topic, text, school_id, kiosk,
                         registered=False)
            )
            return
        batch.touched[school, kiosk] = state
        valid = [e for e in (self._check(conn, topic, school, kiosk, state, raw, batch) for raw in raws) if e]
        if valid:
            batch.seen.add(state.id)  # heard from: its own signed events (a forger's do not count)
        # Sample the clocks of the whole message first: its newest event was sent just now, so it
        # gives the tightest estimate for the older ones recorded offline. Only signed, valid events.
        for item in valid:
            event = item.event
            if event is not None and item.refused is None and event.boot is not None and event.mono is not None:
                self._sample(conn, state, event.boot, event.mono, batch.arrived_ms)
        for item in valid:
            self._apply(topic, school, kiosk, state, item, batch)

    def _check(self, conn, topic, school, kiosk, state, raw, batch) -> _Checked | None:
        """Validate and authenticate one raw event; None (and an incident) when it is bad. A
        malformed event that carries the kiosk's valid signature comes back to be refused."""

        def incident(kind: str, detail: str, seq: int | None = None) -> None:
            body = protocol.canonical_json(raw).decode() if _jsonable(raw) else repr(raw)[:PAYLOAD_KEPT]
            batch.incidents.append(Incident(kind, detail, topic, body, state.school_id, kiosk, seq))

        try:
            event = protocol.parse_event(raw)
        except protocol.ProtocolError as exc:
            seq = raw.get("seq") if isinstance(raw, dict) else None
            seq = seq if type(seq) is int and 1 <= seq <= protocol.INT32 else None
            if seq is not None and seq <= state.acked + MAX_AHEAD and self._own(conn, school, kiosk, state, raw):
                return _Checked(raw, seq, raw["prev"], None, refused=str(exc))
            incident("malformed_payload", str(exc), seq)
            return None
        if (event.school, event.kiosk) != (school, kiosk):
            incident("topic_mismatch", f"event of {event.school}/{event.kiosk} arrived on {topic}", event.seq)
            return None
        wire = protocol.canonical_json(raw)
        if not protocol.verify_wire(wire, event.sig, state.secret) and not self._verify(conn, state, raw):
            incident("bad_signature", f"seq {event.seq}: the HMAC does not match kiosk {kiosk}'s secret", event.seq)
            return None
        if event.seq > state.acked + MAX_AHEAD:
            incident("seq_out_of_range", f"seq {event.seq} is over {MAX_AHEAD} past the last stored ({state.acked})", event.seq)
            return None
        return _Checked(raw, event.seq, event.prev, event, wire=wire)

    def _verify(self, conn, state: KioskState, fields: dict[str, Any]) -> bool:
        """Whether the kiosk's secret signed these fields (``sig``)."""
        if protocol.verify(fields, state.secret):
            return True
        # The kiosk may have been registered again with a new secret since we cached it.
        secret = bytes.fromhex(conn.execute(sa.select(KIOSK.c.secret).where(KIOSK.c.id == state.id)).scalar_one())
        if secret == state.secret or not protocol.verify(fields, secret):
            return False
        state.secret = secret
        return True

    def _own(self, conn, school: str, kiosk: str, state: KioskState, raw: dict[str, Any]) -> bool:
        """Whether a malformed event is still this kiosk's own, signed, with the shape of a chain
        link: then only the kiosk can have sent it, and refusing it may move its chain on."""
        return (
            raw.get("school") == school
            and raw.get("kiosk") == kiosk
            and isinstance(raw.get("prev"), str)
            and isinstance(raw.get("sig"), str)
            and _jsonable(raw)
            and self._verify(conn, state, raw)
        )

    def _apply(self, topic, school, kiosk, state, item: _Checked, batch: _Batch) -> None:
        raw, seq, event = item.raw, item.seq, item.event
        wire = item.wire if item.wire is not None else protocol.canonical_json(raw)
        digest = hashlib.sha256(wire).hexdigest()  # protocol.event_hash(raw), from the bytes written once
        if seq <= state.acked:
            # Stored (or refused) before: a resend or a duplicated delivery (the ack says so
            # again), unless the content differs, which is a conflict to look at.
            batch.repeats.append((state, kiosk, seq, digest, topic, wire.decode()))
            state.behind = True
            return
        if seq > state.acked + 1:
            state.gap = True  # an earlier seq went missing on the way: ask for it again
            return
        if item.prev != state.last_hash and state.last_hash != BRIDGE:
            batch.incidents.append(
                Incident(
                    "broken_chain",
                    f"seq {seq}: prev does not match the hash of seq {state.acked}",
                    topic,
                    wire.decode(),
                    state.school_id,
                    kiosk,
                    seq,
                )
            )
            return
        refused = item.refused or batch.refuse_all
        if event is None or refused is not None:
            # The kiosk's own event, in its place in the chain, but not one central can store: it is
            # refused for good and the chain moves past it, or the kiosk would resend it forever.
            batch.incidents.append(
                Incident(
                    "refused_event", f"seq {seq} refused, kiosk told in its ack: {refused}", topic,
                    wire.decode(), state.school_id, kiosk, seq,
                )
            )
            batch.refused.setdefault((school, kiosk), []).append(seq)
            state.acked, state.last_hash, state.dirty = seq, digest, True
            return
        at = datetime.fromisoformat(event.at).astimezone(UTC)
        if event.boot is not None and event.mono is not None:
            self._check_skew(state, kiosk, event, at, topic, batch)
        else:
            self._check_far(state, kiosk, event, at, topic, batch)
        batch.rows.append(event_row(event, digest, school_id=state.school_id, kiosk_id=state.id, at=at, received_at=batch.received_at))
        batch.school_codes[state.school_id], batch.kiosk_codes[state.id] = school, kiosk
        if event.kind == "pickup" and event.note and event.note.startswith(CODE_NOTE):
            # When it happened on central's clock where the kiosk's boot is known: a kiosk's wall
            # clock may be far off, and the order of two uses must be right.
            clock = state.clocks.get(event.boot) if event.boot is not None else None
            used = at if clock is None or event.mono is None else corrected_time(clock.base_ms, event.mono, at)
            batch.codes.append((state.school_id, kiosk, event.note[len(CODE_NOTE) :], used))
        state.acked = event.seq
        state.last_hash = digest
        state.dirty = True

    def _check_repeats(self, conn, batch: _Batch) -> None:
        if not batch.repeats:
            return
        pending = {(r["kiosk_id"], r["seq"]): r["hash"] for r in batch.rows}
        wanted: dict[int, set[int]] = {}
        for state, _kiosk, seq, _digest, _topic, _raw in batch.repeats:
            if (state.id, seq) not in pending:
                wanted.setdefault(state.id, set()).add(seq)
        stored = dict(pending)
        for kiosk_id, seqs in wanted.items():
            found = conn.execute(
                sa.select(EVENT.c.seq, EVENT.c.hash).where(EVENT.c.kiosk_id == kiosk_id, EVENT.c.seq.in_(sorted(seqs)))
            )
            stored.update({(kiosk_id, row.seq): row.hash for row in found})
        for state, kiosk, seq, digest, topic, raw in batch.repeats:
            known = stored.get((state.id, seq))
            if known is not None and known != digest:
                batch.incidents.append(
                    Incident(
                        "conflicting_event",
                        f"seq {seq} arrived again with other content than the event stored",
                        topic,
                        raw,
                        state.school_id,
                        kiosk,
                        seq,
                    )
                )

    def _use_codes(self, uses: list[tuple[int, str, str, datetime]]) -> None:
        """Mark codes used at kiosks and publish the rosters they leave. The events are stored and
        acked already: a bad code id is only logged, and nothing here may fail the batch. A code
        used at a second kiosk (two gates offline, one code), or one revoked or voided before its
        use reached central, is a safety incident."""
        found: list[Incident] = []
        changed: dict[int, School] = {}
        try:
            with Session(self.engine) as session:
                for school_id, kiosk, ref, at in uses:
                    code_id, where = _code_id(ref), f"kiosk:{kiosk}"
                    code = session.get(PickupCode, code_id) if code_id is not None else None
                    if code is None or code.school_id != school_id or code.used_by == where:
                        log.warning("kiosk %s used pickup code %r: unknown, another school's, or used there before", kiosk, ref)
                        continue
                    if code.used_at is not None:
                        found.append(Incident(
                            "pickup_code_reused",
                            f"one-time pickup code {code_id} was used at {where} at {at.isoformat()}, and before that at "
                            f"{code.used_by} at {code.used_at.isoformat()}", school_id=school_id, kiosk=kiosk,
                        ))
                        continue
                    if code.revoked_at is not None or code.wrong_tries >= pickup.MAX_WRONG_CODES:
                        found.append(Incident(
                            "pickup_code_revoked",
                            f"one-time pickup code {code_id} was used at {where} at {at.isoformat()} after it was "
                            f"{'revoked' if code.revoked_at else 'voided by wrong tries'} (the kiosk had not heard yet)",
                            school_id=school_id, kiosk=kiosk,
                        ))
                    if pickup.mark_used(session, school=session.get(School, school_id), code_id=code_id, at=at, where=where):
                        changed[school_id] = session.get(School, school_id)
        except Exception:  # noqa: BLE001 - the events are stored: reconcile_codes() catches up at the next start
            log.exception("marking %d pickup codes used failed", len(uses))
        if found:
            try:
                with self.engine.begin() as conn:
                    conn.execute(INCIDENT.insert(), [_incident_row(i, self.clock()) for i in found])
            except Exception:  # noqa: BLE001
                log.exception("storing %d pickup-code incidents failed", len(found))
            for incident in found:
                log.warning("safety incident %s: %s", incident.kind, incident.detail)
        for school_id in changed:
            try:
                with Session(self.engine) as session:
                    school = session.get(School, school_id)
                    # self.publish is the bus's, which retains: self stands in as the roster's publisher.
                    roster.refresh_and_publish(session, school, settings=self.settings, publisher=self, topics=self.topics)
            except Exception:  # noqa: BLE001 - the bus republishes every roster when it reconnects
                log.exception("publishing school %s's roster after a code was used failed", school_id)

    def reconcile_codes(self, days: int = 2) -> int:
        """Mark the codes whose ``pickup`` events are stored but which are not marked used: central
        stopped between storing a batch and marking its codes. Run at start; returns how many were
        looked at (codes are good for one day, so a few days back is enough)."""
        since = self.clock() - timedelta(days=days)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(EVENT.c.school_id, KIOSK.c.code, EVENT.c.note, EVENT.c.at)
                .join(KIOSK, KIOSK.c.id == EVENT.c.kiosk_id)
                .where(EVENT.c.kind == "pickup", EVENT.c.note.like(f"{CODE_NOTE}%"), EVENT.c.received_at >= since)
                .order_by(EVENT.c.received_at)
            ).all()
            rows = [r for r in rows if r.note.startswith(CODE_NOTE)]  # SQLite's LIKE ignores case
            unused = {
                code_id for (code_id,) in conn.execute(
                    sa.select(PickupCode.id).where(
                        col(PickupCode.used_at).is_(None),
                        col(PickupCode.id).in_({_code_id(r.note[len(CODE_NOTE):]) for r in rows} - {None}),
                    )
                )
            } if rows else set()
        uses = [(r.school_id, r.code, r.note[len(CODE_NOTE):], r.at) for r in rows if _code_id(r.note[len(CODE_NOTE):]) in unused]
        if uses:
            self._use_codes(uses)
        return len(uses)

    # --- clocks ------------------------------------------------------------------------------------

    def _status(self, conn, school: str, kiosk: str, payload: bytes, retained: bool, batch: _Batch) -> None:
        try:
            status = protocol.parse_message(protocol.Status, payload)
        except protocol.ProtocolError:
            return  # status is advisory; a bad one is ignored, not an incident
        state = self._kiosk(conn, school, kiosk)
        if state is None:
            return
        # The gate's health, as it says (only the kiosk and central may publish on its status topic).
        batch.statuses[state.id] = (protocol.decode(payload), status.online, retained)
        if retained:
            return  # an old retained status says nothing about the clock now
        if status.boot is None or status.mono is None or status.sig is None:
            return
        # Anyone who may publish on the topic could move the clock map (a 5-hour mono shifts every
        # corrected time by 5 hours): only the kiosk's own signature makes the pair a sample.
        if not self._verify(conn, state, protocol.decode(payload)):
            log.warning("ignored a status of kiosk %s/%s whose signature does not verify", school, kiosk)
            return
        self._sample(conn, state, status.boot, status.mono, batch.arrived_ms)
        said = status.acked_seq if status.acked_seq is not None else status.last_seq
        if said is not None and said < state.acked:
            state.behind = True
        if status.acked_seq is not None and status.acked_seq > state.acked:
            self._lost_at_central(state, kiosk, status.acked_seq, batch)
        batch.touched.setdefault((school, kiosk), state)

    def _lost_at_central(self, state: KioskState, kiosk: str, acked: int, batch: _Batch) -> None:
        """The kiosk, in a status signed with its secret, says central acknowledged its events up to
        ``acked``, past what central holds: central lost them (its database was restored from an
        older backup) and the kiosk, told they were stored, deleted them. Nobody can send them again;
        waiting for them would hold back every event the gate records from now on. So the loss is a
        safety incident naming the seqs, and the chain goes on after ``acked`` (``BRIDGE``).

        A worker whose view of the kiosk is stale (another stored those seqs meanwhile) gets here
        too; its compare-and-set at the commit fails, and the batch is read again with the kiosk's
        row as it is (``StaleKiosk``), where nothing is missing any more."""
        first = state.acked + 1
        batch.incidents.append(
            Incident(
                "events_lost",
                f"central holds kiosk {kiosk}'s events up to seq {state.acked} but acknowledged them up to "
                f"seq {acked} (the kiosk's signed status says so): seqs {first}-{acked} were lost at central "
                f"(restored from an older backup?) and the kiosk no longer has them; its events go on from "
                f"seq {acked + 1}",
                "", "", state.school_id, kiosk, acked,
            )
        )
        # gap: the ack names resend_from = acked + 1, so a kiosk already past it sends its next
        # events again at once instead of after its resend timeout.
        state.acked, state.last_hash, state.dirty, state.gap = acked, BRIDGE, True, True

    def _clock(self, conn, state: KioskState, boot: int) -> Clock | None:
        clock = state.clocks.get(boot)
        if clock is None:
            row = conn.execute(
                sa.select(CLOCK.c.base_ms, CLOCK.c.skew_reported_ms).where(
                    CLOCK.c.kiosk_id == state.id, CLOCK.c.boot == boot
                )
            ).first()
            if row is not None:
                clock = state.clocks[boot] = Clock(row.base_ms, row.skew_reported_ms, known=True)
        return clock

    def _sample(self, conn, state: KioskState, boot: int, mono: int, received_ms: int) -> None:
        base = received_ms - mono
        clock = self._clock(conn, state, boot)
        if clock is None:
            state.clocks[boot] = Clock(base, dirty=True)
        elif base < clock.base_ms:
            if clock.skew_reported_ms is not None:
                # The reported skew on the better estimate: the kiosk's clock did not move, only what
                # central knows of its boot did, so this alone must not report the skew again.
                clock.skew_reported_ms += clock.base_ms - base
            clock.base_ms, clock.dirty = base, True

    def _check_far(self, state: KioskState, kiosk: str, event: protocol.Event, at: datetime, topic, batch) -> None:
        """An event without a clock pair cannot be corrected: a time after its arrival (beyond the
        skew limit) or more than FAR_PAST before it is reported, once per kiosk and quiet window."""
        arrived = datetime.fromtimestamp(batch.arrived_ms / 1000, UTC)
        ahead = at - arrived
        if ahead > timedelta(milliseconds=self.skew_limit_ms):
            where = f"{ahead.total_seconds():.0f} s after it reached central"
        elif -ahead > FAR_PAST:
            where = f"{-ahead.days} days before it reached central"
        else:
            return
        batch.incidents.append(
            Incident(
                "time_out_of_range",
                f"seq {event.seq}: kiosk {kiosk}'s event is dated {event.at}, {where}, and carries no boot/mono "
                "to correct it by; stored with the kiosk's time",
                topic, "", state.school_id, kiosk,
            )
        )

    def _check_skew(self, state: KioskState, kiosk: str, event: protocol.Event, at: datetime, topic, batch) -> None:
        clock = state.clocks.get(event.boot)
        if clock is None:
            return
        skew = int(at.timestamp() * 1000) - (clock.base_ms + event.mono)
        if abs(skew) <= self.skew_limit_ms:
            return
        if clock.skew_reported_ms is not None and abs(skew - clock.skew_reported_ms) <= self.skew_limit_ms:
            return
        clock.skew_reported_ms, clock.dirty = skew, True
        direction = "ahead of" if skew > 0 else "behind"
        batch.incidents.append(
            Incident(
                "clock_skew",
                f"seq {event.seq}: kiosk {kiosk}'s clock is {abs(skew) / 1000:.1f} s {direction} central's "
                f"(limit {self.skew_limit_ms / 1000:.0f} s); its times are corrected",
                topic,
                "",
                state.school_id,
                kiosk,
                event.seq,
            )
        )

    # --- writes and lookups ------------------------------------------------------------------------

    def _write_kiosks(self, conn, states: list[KioskState], *, seen: set[int] = frozenset(), at: datetime | None = None) -> set[int]:
        """Move the kiosks' ``acked_seq`` and ``last_hash`` on, all in one statement executed for many
        (psycopg pipelines it: one round trip, not one per gate), in id order (two workers never wait
        on each other in a circle), and their clocks. The same update notes ``last_seen`` (``at``) of
        those heard from (``seen``), which health.note then leaves: in a city nearly every gate of a
        batch is both, and one update of its row is half the database's work of two. Returns the ids
        whose ``last_seen`` it wrote."""
        dirty = sorted((state for state in states if state.dirty), key=lambda state: state.id)
        written = {state.id for state in dirty if state.id in seen} if at is not None else set()
        if dirty:
            # Compare-and-set: each row moves only forward from what this worker read. A worker whose
            # view is stale (another stored the kiosk's events since) matches no row, and its whole
            # transaction is rolled back, so two workers never move acked_seq backwards nor store
            # one seq twice (the event table's partitions cannot hold a unique (kiosk, seq) alone).
            if conn.dialect.name == "postgresql":
                # One update from arrays, whatever the number of gates (an executemany of a city batch's
                # hundred gates was psycopg's Python work for each row); the rows locked in id order first
                # (already so when workers share the stream: _load_kiosks locked them).
                ids = [s.id for s in dirty]
                if not self.shared:
                    conn.execute(LOCK_KIOSKS, {"ids": ids})
                moved = conn.execute(MOVE_KIOSKS, {
                    "ids": ids, "reads": [s.read for s in dirty], "acked": [s.acked for s in dirty],
                    "hashes": [s.last_hash for s in dirty], "seen": [s.id in written for s in dirty], "at": at,
                }).rowcount
            else:
                moved = conn.execute(
                    KIOSK.update()
                    .where(KIOSK.c.id == sa.bindparam("k_id"), KIOSK.c.acked_seq == sa.bindparam("k_read"))
                    .values(acked_seq=sa.bindparam("k_acked"), last_hash=sa.bindparam("k_hash"),
                            last_seen=sa.func.coalesce(sa.bindparam("k_seen", type_=KIOSK.c.last_seen.type), KIOSK.c.last_seen)),
                    [{"k_id": s.id, "k_read": s.read, "k_acked": s.acked, "k_hash": s.last_hash, "k_seen": at if s.id in written else None}
                     for s in dirty],
                ).rowcount
            if moved != len(dirty):
                raise StaleKiosk(f"{len(dirty) - moved} of kiosks {[s.id for s in dirty]} moved on since they were read")
            for state in dirty:
                state.read = state.acked
                state.dirty = False
        for state in states:
            self._write_clocks(conn, state)
        return written

    def _write_clocks(self, conn, state: KioskState) -> None:
        for boot, clock in state.clocks.items():
            if not clock.dirty:
                continue
            values = {"base_ms": clock.base_ms, "skew_reported_ms": clock.skew_reported_ms}
            if clock.known:
                conn.execute(CLOCK.update().where(CLOCK.c.kiosk_id == state.id, CLOCK.c.boot == boot).values(**values))
            else:
                conn.execute(CLOCK.insert().values(kiosk_id=state.id, boot=boot, **values))
                clock.known = True
            clock.dirty = False

    def _load_kiosks(self, conn, messages: list[tuple], *, lock: bool) -> None:
        """Read the batch's kiosks not known yet in one query. With ``lock`` (workers share the
        stream) every kiosk of the batch is read afresh and its row locked, in id order (no deadlock
        between workers): another worker may have stored its events since."""
        if lock:
            self._kiosks.clear()
        keys = set()
        for topic, *_rest in messages:
            try:
                _kind, school, kiosk = self.topics.parse(topic)
            except protocol.ProtocolError:
                continue
            if kiosk is not None and (school, kiosk) not in self._kiosks:
                keys.add((school, kiosk))
        if not keys:
            return
        stmt = (
            sa.select(SCHOOL.c.code.label("school"), SCHOOL.c.id.label("school_id"), KIOSK.c.code.label("kiosk"), KIOSK.c.id,
                      KIOSK.c.secret, KIOSK.c.acked_seq, KIOSK.c.last_hash)
            .join(SCHOOL, SCHOOL.c.id == KIOSK.c.school_id)
            .where(sa.tuple_(SCHOOL.c.code, KIOSK.c.code).in_(sorted(keys)))
            .order_by(KIOSK.c.id)
        )
        for row in conn.execute(stmt.with_for_update(of=KIOSK) if lock else stmt):
            self._schools[row.school] = row.school_id
            self._kiosks[row.school, row.kiosk] = KioskState(
                row.id, row.school_id, bytes.fromhex(row.secret), row.acked_seq, row.last_hash)

    def _school_id(self, conn, code: str) -> int | None:
        if code not in self._schools:
            found = conn.execute(sa.select(School.__table__.c.id).where(School.__table__.c.code == code)).scalar()
            if found is None:
                return None
            self._schools[code] = found
        return self._schools[code]

    def _kiosk(self, conn, school: str, kiosk: str, *, lock: bool = False) -> KioskState | None:
        if (school, kiosk) in self._kiosks:
            return self._kiosks[school, kiosk]
        school_id = self._school_id(conn, school)
        if school_id is None:
            return None
        stmt = sa.select(KIOSK.c.id, KIOSK.c.secret, KIOSK.c.acked_seq, KIOSK.c.last_hash).where(
            KIOSK.c.school_id == school_id, KIOSK.c.code == kiosk
        )
        row = conn.execute(stmt.with_for_update() if lock else stmt).first()
        if row is None:
            return None
        state = KioskState(row.id, school_id, bytes.fromhex(row.secret), row.acked_seq, row.last_hash)
        self._kiosks[school, kiosk] = state
        return state

    def _roll_window(self) -> None:
        if time.monotonic() - self._window_start >= WINDOW_S:
            self._window_start = time.monotonic()
            self._incident_counts.clear()
            self._incident_summaries.clear()
            self._unknown_names.clear()

    def _write_incidents(self, conn, incidents: list[Incident], at: datetime, plan: _IncidentPlan) -> None:
        """Store incidents, bounded: names of unregistered kiosks past UNKNOWN_NAMES a school are
        filed as ``*``, and past DETAILED of one (kind, school, kiosk) a window the rest are counted on
        one summary row, so that invented kiosk names and forged seqs cannot grow the table."""
        rows: list[dict[str, Any]] = []
        bumps: Counter = Counter()
        for incident in incidents:
            if not incident.registered and incident.kiosk is not None:
                seen = self._unknown_names.get(incident.school_id, set())
                added = plan.names.setdefault(incident.school_id, set())
                if incident.kiosk not in seen and incident.kiosk not in added:
                    if len(seen) + len(added) >= UNKNOWN_NAMES:
                        incident = replace(
                            incident, kiosk="*", seq=None,
                            detail=f"(one of more than {UNKNOWN_NAMES} unregistered kiosk names in {WINDOW_S / 60:.0f} min) "
                            + incident.detail,
                        )
                    else:
                        added.add(incident.kiosk)
            key = (incident.kind, incident.school_id, incident.kiosk)
            stored = self._incident_counts[key] + plan.counts[key]
            plan.counts[key] += 1
            if stored < DETAILED:
                rows.append(_incident_row(incident, at))
                continue
            summary = self._incident_summaries.get(key) or plan.summaries.get(key)
            if summary is not None:
                bumps[summary] += 1
                continue
            first = replace(
                incident, seq=None,
                detail=f"more than {DETAILED} {incident.kind} incidents in {WINDOW_S / 60:.0f} min: the rest are counted "
                f"on this row; the first of them: {incident.detail}",
            )
            if rows:  # in the order they came
                conn.execute(INCIDENT.insert(), rows)
                rows = []
            plan.summaries[key] = conn.execute(INCIDENT.insert().values(**_incident_row(first, at))).inserted_primary_key[0]
        if rows:
            conn.execute(INCIDENT.insert(), rows)
        for row_id, more in bumps.items():
            conn.execute(INCIDENT.update().where(INCIDENT.c.id == row_id).values(count=INCIDENT.c.count + more))

    def _merge_plan(self, plan: _IncidentPlan) -> None:
        """Once committed, a batch's incident bookkeeping counts for the window."""
        self._incident_counts.update(plan.counts)
        self._incident_summaries.update(plan.summaries)
        for school_id, names in plan.names.items():
            self._unknown_names.setdefault(school_id, set()).update(names)

    def _fresh(self, incidents: list[Incident]) -> dict[tuple, Incident]:
        """The incidents not reported lately, by key: a kiosk that resends the same bad event, or an
        unregistered kiosk resending its window every few seconds, is one incident, not thousands.
        An incident with a seq is reported once; one without, once per kind, kiosk and 10 minutes."""
        now = time.monotonic()
        fresh: dict[tuple, Incident] = {}
        for incident in incidents:
            key = (incident.kind, incident.school_id, incident.kiosk, incident.seq)
            seen = self._reported.get(key)
            if key in fresh or (seen is not None and (incident.seq is not None or now - seen < SEQLESS_QUIET)):
                continue
            fresh[key] = incident
        return fresh


def _log_stored(batch: _Batch) -> None:
    """One line a batch naming each gate's seqs stored (a city's 2,200 events a second as lines of their
    own would be most of the ingest's time, and over journald's default rate limit); each event on a
    line of its own at DEBUG (cards masked by the command line's log setup, schoolgate/logs.py)."""
    seqs: dict[str, list[int]] = {}
    for row in batch.rows:
        seqs.setdefault(batch.kiosk_codes[row["kiosk_id"]], []).append(row["seq"])
    ranges = {kiosk: _ranges(sorted(found)) for kiosk, found in seqs.items()}
    log.info("stored %d events: %s", len(batch.rows), ", ".join(f"{kiosk} seq {r}" for kiosk, r in ranges.items()),
             extra={"events": len(batch.rows), "stored": ranges})
    if log.isEnabledFor(logging.DEBUG):
        for row in batch.rows:
            kiosk = batch.kiosk_codes[row["kiosk_id"]]
            log.debug("stored event %s seq %d %s card %s student %s", kiosk, row["seq"], row["kind"], row.get("card"),
                      row.get("student"), extra={"kiosk": kiosk, "seq": row["seq"], "kind": row["kind"], "event_id": row["id"]})


def _ranges(seqs: list[int]) -> str:
    """Sorted seqs as runs: [3, 4, 5, 9] → "3-5 9"."""
    runs: list[list[int]] = []
    for seq in seqs:
        if runs and seq == runs[-1][1] + 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return " ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def ack_message(
    *, school: str, kiosk: str, upto: int, server_time: datetime, resend_from: int | None = None,
    refused: list[int] | tuple = (), head: tuple[int, str] | None = None,
) -> dict[str, Any]:
    """The one place an ack is built: a plain dict of every field, so that a signature over all of
    them can be added to it. ``refused`` lists the kiosk's own events refused as malformed; ``head``
    is the highest seq central holds for the kiosk and its hash, for a kiosk that knows less."""
    ack: dict[str, Any] = {"v": 1, "school": school, "kiosk": kiosk, "upto": upto, "server_time": server_time.isoformat(timespec="milliseconds")}
    if resend_from is not None:
        ack["resend_from"] = resend_from
    if refused:
        ack["refused"] = sorted(refused)
    if head is not None:
        ack["head"], ack["head_hash"] = head
    return ack


def event_row(event: protocol.Event, digest: str, *, school_id: int, kiosk_id: int, at: datetime, received_at: datetime) -> dict[str, Any]:
    """The event table's row for one checked event."""
    return {
        "id": event.id,
        "school_id": school_id,
        "kiosk_id": kiosk_id,
        "seq": event.seq,
        "kind": event.kind,
        "at": at,
        "received_at": received_at,
        "card": event.card,
        "student": event.student,
        "guardian": event.guardian,
        "staff": event.staff,
        "session": event.session,
        "reason": event.reason,
        "operator": event.operator,
        "note": event.note,
        "roster_version": event.roster_version,
        "boot": event.boot,
        "mono": event.mono,
        "prev": event.prev,
        "hash": digest,
        "sig": event.sig,
    }


def _insert_events(conn, rows: list[dict[str, Any]], chunk: int) -> None:
    """Write the batch's event rows. On PostgreSQL with COPY, in the batch's transaction: an executemany
    spent psycopg's Python on each row, several times COPY's. Its errors are SQLAlchemy's, as an insert's
    would be (an unreachable database is DB_DOWN, not a message's fault)."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        for start in range(0, len(rows), chunk):
            conn.execute(EVENT.insert(), rows[start : start + chunk])
        return
    for row in rows:  # what UTCDateTime checks on an insert: COPY writes the values as they are
        if row["at"].tzinfo is None or row["received_at"].tzinfo is None:
            raise ValueError(f"event {row['id']}: a stored time needs a zone")
    dbapi = conn.connection.dbapi_connection
    try:
        with dbapi.cursor() as cursor, cursor.copy(COPY_EVENTS) as copy:
            for row in rows:
                copy.write_row([row.get(name) for name in EVENT_COLUMNS])
    except dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(COPY_EVENTS, None, exc, dbapi.Error) from exc


def _incident_row(i: Incident, at: datetime) -> dict[str, Any]:
    # Bounded, and without NUL, which PostgreSQL refuses in text: the incident row of a poison
    # message must never be what fails its batch.
    return {
        "school_id": i.school_id,
        "kiosk": _text(i.kiosk, 64) if i.kiosk is not None else None,
        "seq": i.seq if i.seq is None or 0 <= i.seq <= protocol.INT32 else None,
        "kind": i.kind[:32],
        "detail": _text(i.detail, DETAIL_KEPT),
        "topic": _text(i.topic, 300),
        "payload": _text(i.payload, PAYLOAD_KEPT),
        "created_at": at,
    }


def _text(value: str, limit: int) -> str:
    return value.replace("\x00", "\\u0000")[:limit]


def _code_id(ref: str) -> int | None:
    """The code's database id from a note's ``code:<id>``; None if it cannot be one."""
    if not (ref.isascii() and ref.isdigit()):
        return None
    value = int(ref)
    return value if 1 <= value <= protocol.INT32 else None


def _jsonable(raw: Any) -> bool:
    try:
        protocol.canonical_json(raw)
    except (TypeError, ValueError):
        return False
    return True
