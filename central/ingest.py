"""MQTT ingest: events from kiosks into the database, exactly once in effect.

Messages are queued by the MQTT thread and stored by one worker in batches (one transaction per
batch, SQLAlchemy Core, no ORM in the hot path). Each event is checked against protocol v1, its
kiosk's HMAC and its hash chain; it is stored once by (kiosk, seq); the kiosk is then acked up to
its highest contiguous seq, with ``resend_from`` when a seq went missing. Whatever is wrong with a
payload becomes a safety incident with the payload kept, never an exception that stops ingest.

Kiosk status messages feed the clock estimate: each boot's monotonic clock is mapped onto
central's, so an event recorded while the kiosk's wall clock was wrong still gets its true time,
and a wall clock off by more than the limit is reported as a ``clock_skew`` incident.

A ``pickup`` event noted ``code:<id>`` used that one-time code at the kiosk: once the batch is
stored the code is marked used and the school's roster, which carried it, is published again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from central import pickup, roster
from central.core.config import Settings
from central.models import Event, Kiosk, KioskClock, SafetyIncident, School
from gateway import protocol

log = logging.getLogger(__name__)

EVENT = Event.__table__
KIOSK = Kiosk.__table__
CLOCK = KioskClock.__table__
INCIDENT = SafetyIncident.__table__
PAYLOAD_KEPT = 4000  # characters of a bad payload kept with its incident
SEQLESS_QUIET = 600.0  # seconds an incident without a seq stays quiet after it was stored
MAX_AHEAD = 100_000  # a seq this far past the last stored one is not a gap but a fault
CODE_NOTE = "code:"  # a pickup event's note naming the one-time code used


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


@dataclass(frozen=True)
class Incident:
    kind: str
    detail: str
    topic: str = ""
    payload: str = ""
    school_id: int | None = None
    kiosk: str | None = None
    seq: int | None = None


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

    @property
    def received_ms(self) -> int:
        return int(self.received_at.timestamp() * 1000)


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
    ) -> None:
        self.engine = engine
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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stored = 0

    # --- running ---------------------------------------------------------------------------

    def submit(self, topic: str, payload: bytes, retained: bool = False) -> None:
        # Stamped on arrival: a message that waits in the queue behind a backlog must not look
        # younger than it is, or the kiosk clocks mapped from it come out late.
        self.queue.put((topic, payload, retained, time.time_ns() // 1_000_000))

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
        """Check, store and ack one batch of messages (topic, payload, retained[, arrival in ms])."""
        batch = _Batch(datetime.now(UTC))
        with self.engine.begin() as conn:
            if self.shared:
                self._lock_kiosks(conn, messages)
            for topic, payload, retained, *arrived in messages:
                batch.arrived_ms = arrived[0] if arrived else batch.received_ms
                self._one_message(conn, topic, payload, retained, batch)
            self._check_repeats(conn, batch)
            for start in range(0, len(batch.rows), self.batch):
                conn.execute(EVENT.insert(), batch.rows[start : start + self.batch])
            for state in batch.touched.values():
                self._write_kiosk(conn, state)
            fresh = self._fresh(batch.incidents)
            if fresh:
                conn.execute(INCIDENT.insert(), [_incident_row(i, batch.received_at) for i in fresh.values()])
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
        if self.on_stored and batch.rows:
            self.on_stored(batch.rows)
        for incident in batch.incidents:
            log.warning("safety incident %s on %s: %s", incident.kind, incident.topic, incident.detail)
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        for (school, kiosk), state in batch.touched.items():
            # school and kiosk bind the signed ack to its kiosk: one kiosk's ack replayed on another's
            # topic must not empty that one's outbox.
            ack: dict[str, Any] = {"v": 1, "school": school, "kiosk": kiosk, "upto": state.acked, "server_time": now}
            if state.gap:
                ack["resend_from"] = state.acked + 1
                state.gap = False
            self.publish(self.topics.ack(school, kiosk), protocol.canonical_json(ack))

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
        try:
            raws = protocol.split_events_payload(payload)
        except protocol.ProtocolError as exc:
            kind = "oversize_payload" if len(payload) > protocol.MAX_PAYLOAD else "malformed_payload"
            batch.incidents.append(Incident(kind, str(exc), topic, text, school_id, kiosk))
            return
        state = self._kiosk(conn, school, kiosk)
        if state is None:
            batch.incidents.append(
                Incident("unknown_kiosk", f"kiosk {kiosk!r} is not registered at school {school!r}", topic, text, school_id, kiosk)
            )
            return
        batch.touched[school, kiosk] = state
        valid = [e for e in (self._check(conn, topic, school, kiosk, state, raw, batch) for raw in raws) if e]
        # Sample the clocks of the whole message first: its newest event was sent just now, so it
        # gives the tightest estimate for the older ones recorded offline.
        for raw, event in valid:
            if event.boot is not None and event.mono is not None:
                self._sample(conn, state, event.boot, event.mono, batch.arrived_ms)
        for raw, event in valid:
            self._apply(topic, kiosk, state, raw, event, batch)

    def _check(self, conn, topic, school, kiosk, state, raw, batch) -> tuple[dict, protocol.Event] | None:
        """Validate and authenticate one raw event; None (and an incident) when it is bad."""

        def incident(kind: str, detail: str, seq: int | None = None) -> None:
            body = protocol.canonical_json(raw).decode() if _jsonable(raw) else repr(raw)
            batch.incidents.append(Incident(kind, detail, topic, body, state.school_id, kiosk, seq))

        try:
            event = protocol.parse_event(raw)
        except protocol.ProtocolError as exc:
            seq = raw.get("seq") if isinstance(raw, dict) else None
            incident("malformed_payload", str(exc), seq if type(seq) is int and 1 <= seq <= protocol.INT32 else None)
            return None
        if (event.school, event.kiosk) != (school, kiosk):
            incident("topic_mismatch", f"event of {event.school}/{event.kiosk} arrived on {topic}", event.seq)
            return None
        if not protocol.verify(raw, state.secret):
            # The kiosk may have been registered again with a new secret since we cached it.
            secret = bytes.fromhex(conn.execute(sa.select(KIOSK.c.secret).where(KIOSK.c.id == state.id)).scalar_one())
            if secret == state.secret or not protocol.verify(raw, secret):
                incident("bad_signature", f"seq {event.seq}: the HMAC does not match kiosk {kiosk}'s secret", event.seq)
                return None
            state.secret = secret
        if event.seq > state.acked + MAX_AHEAD:
            incident("seq_out_of_range", f"seq {event.seq} is over {MAX_AHEAD} past the last stored ({state.acked})", event.seq)
            return None
        return raw, event

    def _apply(self, topic, kiosk, state, raw, event: protocol.Event, batch: _Batch) -> None:
        digest = protocol.event_hash(raw)
        if event.seq <= state.acked:
            # Stored before: a resend or a duplicated delivery (the ack says so again), unless the
            # content differs, which is a conflict to look at.
            batch.repeats.append((state, kiosk, event.seq, digest, topic, protocol.canonical_json(raw).decode()))
            return
        if event.seq > state.acked + 1:
            state.gap = True  # an earlier seq went missing on the way: ask for it again
            return
        if event.prev != state.last_hash:
            batch.incidents.append(
                Incident(
                    "broken_chain",
                    f"seq {event.seq}: prev does not match the hash of seq {state.acked}",
                    topic,
                    protocol.canonical_json(raw).decode(),
                    state.school_id,
                    kiosk,
                    event.seq,
                )
            )
            return
        at = datetime.fromisoformat(event.at).astimezone(UTC)
        if event.boot is not None and event.mono is not None:
            self._check_skew(state, kiosk, event, at, topic, batch)
        batch.rows.append(event_row(event, digest, school_id=state.school_id, kiosk_id=state.id, at=at, received_at=batch.received_at))
        if event.kind == "pickup" and event.note and event.note.startswith(CODE_NOTE):
            # When it happened on central's clock where the kiosk's boot is known: a kiosk's wall
            # clock may be far off, and the order of two uses must be right.
            clock = state.clocks.get(event.boot) if event.boot is not None else None
            used = at if clock is None or event.mono is None else datetime.fromtimestamp((clock.base_ms + event.mono) / 1000, UTC)
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
                    code = session.get(pickup.PickupCode, code_id) if code_id is not None else None
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
                    conn.execute(INCIDENT.insert(), [_incident_row(i, datetime.now(UTC)) for i in found])
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
        since = datetime.now(UTC) - timedelta(days=days)
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
                    sa.select(pickup.PickupCode.id).where(
                        col(pickup.PickupCode.used_at).is_(None),
                        col(pickup.PickupCode.id).in_({_code_id(r.note[len(CODE_NOTE):]) for r in rows} - {None}),
                    )
                )
            } if rows else set()
        uses = [(r.school_id, r.code, r.note[len(CODE_NOTE):], r.at) for r in rows if _code_id(r.note[len(CODE_NOTE):]) in unused]
        if uses:
            self._use_codes(uses)
        return len(uses)

    # --- clocks ------------------------------------------------------------------------------------

    def _status(self, conn, school: str, kiosk: str, payload: bytes, retained: bool, batch: _Batch) -> None:
        if retained:
            return  # an old retained status says nothing about the clock now
        try:
            status = protocol.parse_message(protocol.Status, payload)
        except protocol.ProtocolError:
            return  # status is advisory and unsigned; a bad one is ignored, not an incident
        state = self._kiosk(conn, school, kiosk)
        if state is None or status.boot is None or status.mono is None:
            return
        self._sample(conn, state, status.boot, status.mono, batch.arrived_ms)
        batch.touched.setdefault((school, kiosk), state)

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
            clock.base_ms, clock.dirty = base, True

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

    def _write_kiosk(self, conn, state: KioskState) -> None:
        if state.dirty:
            conn.execute(
                KIOSK.update().where(KIOSK.c.id == state.id).values(acked_seq=state.acked, last_hash=state.last_hash)
            )
            state.dirty = False
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

    def _lock_kiosks(self, conn, messages: list[tuple[str, bytes, bool]]) -> None:
        """Lock the rows of the kiosks in this batch, in one order (no deadlock between workers),
        and read them afresh: another worker may have stored their events since."""
        self._kiosks.clear()
        keys = set()
        for topic, *_rest in messages:
            try:
                _kind, school, kiosk = self.topics.parse(topic)
            except protocol.ProtocolError:
                continue
            if kiosk is not None:
                keys.add((school, kiosk))
        for school, kiosk in sorted(keys):
            self._kiosk(conn, school, kiosk, lock=True)

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


def _incident_row(i: Incident, at: datetime) -> dict[str, Any]:
    return {
        "school_id": i.school_id,
        "kiosk": i.kiosk,
        "seq": i.seq,
        "kind": i.kind,
        "detail": i.detail,
        "topic": i.topic[:300],
        "payload": i.payload[:PAYLOAD_KEPT],
        "created_at": at,
    }


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
