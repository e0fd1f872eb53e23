"""MQTT ingest: events from kiosks into the database, exactly once in effect.

Messages are queued by the MQTT thread and stored by one worker in batches (one transaction per
batch, SQLAlchemy Core, no ORM in the hot path). Each event is checked against protocol v1, its
kiosk's HMAC and its hash chain; it is stored once by (kiosk, seq); the kiosk is then acked up to
its highest contiguous seq. Whatever is wrong with a payload becomes a safety incident, never an
exception that stops ingest.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from central.models import Event, Kiosk, SafetyIncident, School
from gateway import protocol

log = logging.getLogger(__name__)

EVENT = Event.__table__
KIOSK = Kiosk.__table__
INCIDENT = SafetyIncident.__table__
PAYLOAD_KEPT = 4000  # characters of a bad payload kept with its incident


@dataclass
class KioskState:
    id: int
    school_id: int
    secret: bytes
    acked: int
    last_hash: str
    gap: bool = False
    dirty: bool = False


@dataclass(frozen=True)
class Incident:
    kind: str
    detail: str
    topic: str = ""
    payload: str = ""
    school_id: int | None = None
    kiosk: str | None = None
    seq: int | None = None


class Ingest:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        topics: protocol.Topics,
        publish: Callable[[str, bytes], None],
        batch: int = 500,
    ) -> None:
        self.engine = engine
        self.topics = topics
        self.publish = publish
        self.batch = batch
        self.queue: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._kiosks: dict[tuple[str, str], KioskState] = {}
        self._schools: dict[str, int] = {}
        # Recently reported (kind, school, kiosk, seq): a resending kiosk does not flood the log.
        self._reported: OrderedDict[tuple, None] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stored = 0

    # --- running ---------------------------------------------------------------------------

    def submit(self, topic: str, payload: bytes) -> None:
        self.queue.put((topic, payload))

    def start(self) -> Ingest:
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

    def process(self, messages: list[tuple[str, bytes]]) -> None:
        """Check, store and ack one batch of messages (topic, payload)."""
        rows: list[dict[str, Any]] = []
        incidents: list[Incident] = []
        touched: dict[tuple[str, str], KioskState] = {}
        received_at = datetime.now(UTC)
        with self.engine.begin() as conn:
            for topic, payload in messages:
                self._one_message(conn, topic, payload, rows, incidents, touched, received_at)
            for start in range(0, len(rows), self.batch):
                conn.execute(EVENT.insert(), rows[start : start + self.batch])
            for state in touched.values():
                if state.dirty:
                    conn.execute(
                        KIOSK.update()
                        .where(KIOSK.c.id == state.id)
                        .values(acked_seq=state.acked, last_hash=state.last_hash)
                    )
                    state.dirty = False
            fresh = [i for i in incidents if self._first_report(i)]
            if fresh:
                conn.execute(
                    INCIDENT.insert(),
                    [
                        {
                            "school_id": i.school_id,
                            "kiosk": i.kiosk,
                            "seq": i.seq,
                            "kind": i.kind,
                            "detail": i.detail,
                            "topic": i.topic[:300],
                            "payload": i.payload[:PAYLOAD_KEPT],
                            "created_at": received_at,
                        }
                        for i in fresh
                    ],
                )
        self.stored += len(rows)
        for incident in incidents:
            log.warning("safety incident %s on %s: %s", incident.kind, incident.topic, incident.detail)
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        for (school, kiosk), state in touched.items():
            ack: dict[str, Any] = {"v": 1, "upto": state.acked, "server_time": now}
            if state.gap:
                ack["resend_from"] = state.acked + 1
                state.gap = False
            self.publish(self.topics.ack(school, kiosk), protocol.canonical_json(ack))

    def _one_message(self, conn, topic, payload, rows, incidents, touched, received_at) -> None:
        text = payload.decode("utf-8", "replace")
        try:
            kind, school, kiosk = self.topics.parse(topic)
            if kind != "events":
                raise protocol.ProtocolError(f"ingest takes events topics only, not {kind}")
        except protocol.ProtocolError as exc:
            incidents.append(Incident("malformed_payload", str(exc), topic, text))
            return
        school_id = self._school_id(conn, school)
        try:
            raws = protocol.split_events_payload(payload)
        except protocol.ProtocolError as exc:
            incidents.append(Incident("malformed_payload", str(exc), topic, text, school_id, kiosk))
            return
        state = self._kiosk(conn, school, kiosk)
        if state is None:
            incidents.append(
                Incident("unknown_kiosk", f"kiosk {kiosk!r} is not registered at school {school!r}", topic, text, school_id, kiosk)
            )
            return
        touched[school, kiosk] = state
        for raw in raws:
            self._one_event(conn, topic, school, kiosk, state, raw, rows, incidents, received_at)

    def _one_event(self, conn, topic, school, kiosk, state, raw, rows, incidents, received_at) -> None:
        def incident(kind: str, detail: str, seq: int | None = None) -> None:
            body = protocol.canonical_json(raw).decode() if _jsonable(raw) else repr(raw)
            incidents.append(Incident(kind, detail, topic, body, state.school_id, kiosk, seq))

        try:
            event = protocol.parse_event(raw)
        except protocol.ProtocolError as exc:
            incident("malformed_payload", str(exc), raw.get("seq") if isinstance(raw, dict) else None)
            return
        if (event.school, event.kiosk) != (school, kiosk):
            incident("topic_mismatch", f"event of {event.school}/{event.kiosk} arrived on {topic}", event.seq)
            return
        if not protocol.verify(raw, state.secret):
            # The kiosk may have been registered again with a new secret since we cached it.
            secret = bytes.fromhex(conn.execute(sa.select(KIOSK.c.secret).where(KIOSK.c.id == state.id)).scalar_one())
            if secret == state.secret or not protocol.verify(raw, secret):
                incident("bad_signature", f"seq {event.seq}: the HMAC does not match kiosk {kiosk}'s secret", event.seq)
                return
            state.secret = secret
        if event.seq <= state.acked:
            return  # stored before: a resend or a duplicated delivery; the ack below says so
        if event.seq > state.acked + 1:
            state.gap = True  # an earlier seq went missing on the way: ask for it again
            return
        if event.prev != state.last_hash:
            incident("broken_chain", f"seq {event.seq}: prev does not match the hash of seq {state.acked}", event.seq)
            return
        rows.append(
            {
                "id": event.id,
                "school_id": state.school_id,
                "kiosk_id": state.id,
                "seq": event.seq,
                "kind": event.kind,
                "at": datetime.fromisoformat(event.at).astimezone(UTC),
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
                "prev": event.prev,
                "hash": protocol.event_hash(raw),
                "sig": event.sig,
            }
        )
        state.acked = event.seq
        state.last_hash = rows[-1]["hash"]
        state.dirty = True

    # --- lookups ---------------------------------------------------------------------------------

    def _school_id(self, conn, code: str) -> int | None:
        if code not in self._schools:
            found = conn.execute(sa.select(School.__table__.c.id).where(School.__table__.c.code == code)).scalar()
            if found is None:
                return None
            self._schools[code] = found
        return self._schools[code]

    def _kiosk(self, conn, school: str, kiosk: str) -> KioskState | None:
        if (school, kiosk) in self._kiosks:
            return self._kiosks[school, kiosk]
        school_id = self._school_id(conn, school)
        if school_id is None:
            return None
        row = conn.execute(
            sa.select(KIOSK.c.id, KIOSK.c.secret, KIOSK.c.acked_seq, KIOSK.c.last_hash).where(
                KIOSK.c.school_id == school_id, KIOSK.c.code == kiosk
            )
        ).first()
        if row is None:
            return None
        state = KioskState(row.id, school_id, bytes.fromhex(row.secret), row.acked_seq, row.last_hash)
        self._kiosks[school, kiosk] = state
        return state

    def _first_report(self, incident: Incident) -> bool:
        if incident.seq is None:
            return True
        key = (incident.kind, incident.school_id, incident.kiosk, incident.seq)
        if key in self._reported:
            return False
        self._reported[key] = None
        if len(self._reported) > 10_000:
            self._reported.popitem(last=False)
        return True


def _jsonable(raw: Any) -> bool:
    try:
        protocol.canonical_json(raw)
    except (TypeError, ValueError):
        return False
    return True
