"""One kiosk at work: reader -> engine -> durable outbox -> output, with sync in the background."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import httpx

from gateway import protocol
from gateway.client import UNVERIFIED, SyncClient
from gateway.feed import FeedFetcher, FeedFollower
from gateway.mqtt import BrokerAddress, kiosk_credentials
from gateway.photos import PhotoCache
from hardware import CardTap, Reader, ReaderError
from i18n import t
from kiosk import engine
from kiosk.config import KioskSettings
from kiosk.display import Shown, SyncState
from kiosk.store import KioskStore

log = logging.getLogger(__name__)


class Kiosk:
    """The gate's one stateful object: the console and the ``--no-ui`` loop both drive it.

    Every method that changes something records its event durably first, then folds it into
    today's state, then returns what is shown (a ``Shown``; ``--no-ui`` prints its ``as_json()``).
    """

    def __init__(
        self, settings: KioskSettings, *, sync: bool = True, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = KioskStore(
            settings.db_path, school=settings.school, kiosk=settings.kiosk, secret=settings.secret,
            central_key=settings.central_key,
        )
        self.tz = ZoneInfo(settings.timezone)
        self.rules = settings.rules()
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self.state = self._fresh_state(self.clock())
        # decisions waiting for the guard's Enter (allowed pickups), by token
        self.awaiting: dict[str, engine.Decision] = {}
        self._tokens = itertools.count(1)
        self._offline_since: datetime | None = None
        self.sync: SyncClient | None = None
        #: the school's feed: what the other gates saw (None when the kiosk runs without sync)
        self.feed: FeedFollower | None = None
        self.reader: Reader | None = None
        self.photos: PhotoCache | None = None
        if settings.central_url:
            self.photos = PhotoCache(settings.central_url, school=settings.school, kiosk=settings.kiosk,
                                     secret=self.store.secret_hex, folder=settings.data_dir / "photos")
        if sync and settings.mqtt_url:
            broker = BrokerAddress.parse(settings.mqtt_url)
            if not broker.username:
                # A broker set up by `schoolgate gateway mosquitto-config` knows this login; an
                # anonymous one (the embedded broker) ignores it.
                user, password = kiosk_credentials(settings.school, settings.kiosk, self.store.secret_hex)
                broker = dataclasses.replace(broker, username=user, password=password)
            central_key = protocol.parse_public_key(self.store.central_key) if self.store.central_key else None
            fetcher = None
            if settings.central_url:
                fetcher = FeedFetcher(settings.central_url, school=settings.school, kiosk=settings.kiosk,
                                      secret=self.store.secret_hex, central_key=central_key)
            self.feed = FeedFollower(self, school=settings.school, central_key=central_key, fetcher=fetcher,
                                     clock=self.clock, on_refused=self._feed_refused)
            # Until it is current again, the other gates are unknown since the feed last brought anything
            # (before this start, if it did), not merely since this start.
            self.feed.unknown_since = self.store.feed_heard_at or self.feed.unknown_since
            self.sync = SyncClient(
                self.store,
                school=settings.school,
                kiosk=settings.kiosk,
                broker=broker,
                topics=protocol.Topics(settings.topic_prefix),
                resend_after=settings.resend_after,
                reader_state=self._reader_state,
                guard=self._on_duty,
                secret=bytes.fromhex(self.store.secret_hex),
                feed=self.feed,
            )

    def _fresh_state(self, now: datetime) -> engine.GateState:
        day = now.astimezone(self.tz).date()
        state = engine.GateState(day=day, kiosk=self.settings.kiosk)
        # The gate's own events and the other gates' (the school's feed), in the order they happened:
        # a restart rebuilds the same school's day the gate had before it.
        own = [(self._instant(e["at"]), 0, e) for e in self.store.day_events(day)]
        others = [(self._instant(e["at"]), 1, e) for e in self.store.feed_events(day)]
        for _at, _source, event in sorted(own + others, key=lambda x: (x[0], x[1])):
            engine.fold(state, event)
        return state

    @staticmethod
    def _instant(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    # --- the school's feed (the feed's own thread calls these) ------------------------------------

    @property
    def feed_pos(self) -> int:
        return self.store.feed_pos

    def apply_feed(self, events: list[protocol.FeedEvent], *, over_gaps: bool = False) -> None:
        """The other gates' events: kept in the store (once by id) and folded into today, like our own."""
        with self._lock:
            state = self._today(self.clock())
            entries = []
            for item in events:
                event = item.model_dump(exclude_none=True)
                entries.append((event, self.local(event["at"]).date()))
            days = {event["id"]: day for event, day in entries}
            for event in self.store.add_feed(entries, since=state.day, over_gaps=over_gaps, heard_at=self.clock()):
                if days[event["id"]] == state.day:
                    engine.fold(state, event)

    def _feed_refused(self, reason: str) -> None:
        """A feed message central's key did not verify: kept as a fault, like a refused ack or roster."""
        topic = self.sync.topics.feed(self.settings.school) if self.sync else "feed"
        self.store.record_fault(UNVERIFIED, f"{topic}: {reason}", datetime.now(UTC))

    def feed_unknown_since(self) -> datetime | None:
        """When the other gates were last known, or None while the feed is current (or there is none)."""
        return self.feed.unknown_since if self.feed and not self.feed.current else None

    def _today(self, now: datetime) -> engine.GateState:
        """Today's state; a new day starts afresh (and only forward: a tap stamped before midnight and
        handled after it stays on the new day)."""
        if now.astimezone(self.tz).date() > self.state.day:
            self.state = self._fresh_state(now)
            self.awaiting.clear()  # yesterday's pickups waiting for Enter are not today's
            self.store.prune_days(self.state.day)
        return self.state

    def _reader_state(self) -> str | None:
        return self.reader.state if self.reader else None

    def attach_reader(self, reader: Reader | None) -> None:
        """The reader this gate reads from (the console's or the ``--no-ui`` loop's): its state goes
        into the status; the sync client looks at it on every wake, so a change is published."""
        self.reader = reader
        self._changed()

    def _on_duty(self) -> str | None:
        """Who the status names as the guard: the one signed in, else the configured operator (as
        each event's ``operator``). Read by the sync thread without the lock: one attribute read."""
        return self.state.guard or self.settings.operator

    def _changed(self) -> None:
        if self.sync:
            self.sync.notify()

    def register_command(self) -> str:
        s = self.settings
        return f"schoolgate central register-kiosk --school {s.school} --kiosk {s.kiosk} --secret {self.store.secret_hex}"

    def start(self) -> Kiosk:
        if self.sync:
            self.sync.start()
        return self

    def close(self) -> None:
        if self.sync:
            self.sync.stop()
        if self.photos:
            self.photos.close()
        self.store.close()

    def sync_photos(self) -> dict[str, int] | None:
        """Bring the photo cache up to date; central out of reach is logged, and the cache serves as it is."""
        if self.photos is None:
            return None
        try:
            return self.photos.sync()
        except (httpx.HTTPError, OSError) as exc:
            log.warning("photos not synced from %s: %s", self.settings.central_url, exc)
            return None

    def photo_path(self, kind: str, ref: str | None) -> Path | None:
        """A cached thumbnail (``kind`` students or guardians), or None: the console shows a placeholder."""
        return self.photos.path(kind, ref) if self.photos and ref else None

    @property
    def roster(self):
        return self.store.roster

    # --- decisions ----------------------------------------------------------------------------------

    def _apply(self, decision: engine.Decision, now: datetime) -> dict | None:
        """Record a decision's event (committed, synchronous=FULL) and fold it into today's state."""
        if not decision.event:
            return None
        # Every event names who was at the console: the guard signed in (the one signing in, on their
        # own sign-in), else the kiosk's configured operator, if any.
        signing_in = decision.event == "staff_on" and decision.note == engine.GUARD_NOTE
        operator = decision.staff if signing_in else (self.state.guard or self.settings.operator)
        event = self.store.record(decision.event, now, day=self.state.day, operator=operator,
                                  **decision.event_fields())
        engine.fold(self.state, event)
        # One line per event recorded (the card masked by the command line's log setup).
        log.info(
            "event seq %d %s card %s student %s", event["seq"], event["kind"], event.get("card"), event.get("student"),
            extra={"seq": event["seq"], "kind": event["kind"], "event_id": event["id"]},
        )
        if self.sync:
            self.sync.notify()
        return event

    def _settle(self, decision: engine.Decision, now: datetime, *, card_tap: CardTap | None = None) -> Shown:
        """Record what needs no confirmation; park what does; return what is shown."""
        token = None
        event = None
        if decision.confirm:
            token = str(next(self._tokens))
            self.awaiting[token] = decision
        else:
            event = self._apply(decision, now)
        return self.describe(decision, now, event=event, token=token, reader=card_tap.reader if card_tap else None)

    def handle(self, tap: CardTap) -> Shown:
        """Decide one tap, commit its event, and return the decision as it is shown."""
        now = tap.read_at
        with self._lock:
            state = self._today(now)
            decision = engine.decide(self.roster, state, tap.uid, now, self.rules)
            shown = self._settle(decision, now, card_tap=tap)
            if decision.tone != "ignored":
                engine.remember(state, decision, now)
        return shown

    def confirm(self, token: str) -> Shown:
        """The guard pressed Enter: the pickup, decided again as things are now, happens and is recorded.
        Nobody signed in at this console: refused (``pickup_needs_guard``), and the pickup still waits."""
        with self._lock:
            now = self.clock()
            state = self._today(now)
            if not engine.may_confirm(state):
                raise ValueError("pickup_needs_guard")
            asked = self._asked(token)
            decision = engine.recheck(self.roster, state, asked, now)
            if decision.outcome != "pickup_allowed":
                return self._settle(decision, now)  # a custody order since, the child gone, the code used
            return self.describe(decision, now, event=self._apply(decision, now), outcome="pickup_done")

    def refuse(self, token: str) -> Shown:
        """The guard pressed Esc: the pickup is refused and that is recorded."""
        with self._lock:
            now = self.clock()
            self._today(now)
            decision = engine.guard_refused(self._asked(token))
            return self.describe(decision, now, event=self._apply(decision, now))

    def sign_out(self) -> Shown:
        """The guard signed in at this console signs out (their key; their card does it in ``handle``)."""
        with self._lock:
            now = self.clock()
            return self._settle(engine.sign_out(self._today(now)), now)

    def guard(self):
        """The guard signed in at this console (a roster staff entry), or None."""
        with self._lock:
            staff = self._today(self.clock()).guard
            return self.roster.staff.get(staff) if staff else None

    def may_confirm(self) -> bool:
        with self._lock:
            return engine.may_confirm(self._today(self.clock()))

    def _asked(self, token: str) -> engine.Decision:
        try:
            return self.awaiting.pop(token)
        except KeyError:
            raise ValueError("pickup_expired") from None  # decided already, or a day has passed

    def pickup(self, student: str, guardian: str) -> Shown:
        """No card: the guard picked the guardian from the child's authorised list."""
        with self._lock:
            now = self.clock()
            decision = engine.pickup(self.roster, self._today(now), student, guardian, now)
            return self._settle(decision, now)

    def pickup_code(self, student: str, code: str) -> Shown:
        with self._lock:
            now = self.clock()
            decision = engine.pickup_by_code(self.roster, self._today(now), student, code, now,
                                             key=bytes.fromhex(self.store.secret_hex), kiosk=self.settings.kiosk)
            return self._settle(decision, now)

    def override(self, student: str, reason: str) -> Shown:
        """Admit a refused child with the guard's typed reason."""
        with self._lock:
            now = self.clock()
            decision = engine.override(self.roster, self._today(now), student, reason, now, self.rules)
            return self._settle(decision, now)

    def override_pickup(self, shown: Shown, reason: str) -> Shown:
        """A child not seen on site goes with an authorised guardian (or a code's person): the override
        is recorded (the child is in the guard's care), then the pickup is decided again and waits for
        confirmation like any other."""
        with self._lock:
            now = self.clock()
            state = self._today(now)
            refused = engine.Decision(shown.outcome, "refused", shown.card, student=shown.student,
                                      guardian=shown.guardian, note=shown.note, person=shown.person)
            self._apply(engine.override_pickup(state, refused, reason), now)
            return self._settle(engine.recheck(self.roster, state, refused, now), now)

    def visitor_in(self, name: str, id4: str, purpose: str, visiting: str) -> Shown:
        with self._lock:
            now = self.clock()
            self._today(now)
            decision = engine.visitor_in(name, id4, purpose, visiting, visit=protocol.uuid7())
            return self._settle(decision, now)

    def visitor_out(self, visit: str) -> Shown:
        with self._lock:
            now = self.clock()
            decision = engine.visitor_out(self._today(now), visit)
            return self._settle(decision, now)

    def check_alerts(self) -> list[Shown]:
        """Raise the alerts whose time has come: each is recorded once as an ``alert`` event."""
        with self._lock:
            now = self.clock()
            state = self._today(now)
            online = self.sync.online if self.sync else False
            if online or not self.sync:
                self._offline_since = None
            elif self._offline_since is None:
                self._offline_since = now
            oldest = self.store.oldest_pending_at()
            alerts = engine.due_alerts(
                self.roster, state, now, offline_since=self._offline_since,
                oldest_unacked=datetime.fromisoformat(oldest) if oldest and self.sync else None, rules=self.rules,
            )
            return [self._settle(alert.decision(), now) for alert in alerts]

    # --- what the console shows ---------------------------------------------------------------------

    def sync_state(self) -> Shown:
        now = self.clock()
        roster = self.roster
        age = None
        if roster.version:
            age = int((now - datetime.fromisoformat(roster.generated_at.replace("Z", "+00:00"))).total_seconds())
        return SyncState(
            feed=self.feed.state if self.feed else None,
            online=bool(self.sync and self.sync.online),
            queue=self.store.queue_depth(),
            roster_version=roster.version,
            roster_age_s=age,
            roster_stale=engine.roster_stale(roster, now, self.rules),
            problem=self.sync.problem if self.sync else None,
        )

    def roll_call(self):
        """Every child on site now, by session (a copy: the reader's thread keeps changing the state)."""
        with self._lock:
            return engine.roll_call(self.roster, self._today(self.clock()))

    def came_through(self) -> dict[str, str]:
        """Each child checked in today -> the gate (kiosk id) they came in through, any gate of the school."""
        with self._lock:
            return dict(self._today(self.clock()).gates)

    def visitors(self) -> dict[str, dict[str, str]]:
        with self._lock:
            return dict(self._today(self.clock()).visitors)

    def who_may_take(self, student: str):
        """(guardians the guard may hand the child to today, guardians barred from the child)."""
        with self._lock:
            roster, day = self.roster, self._today(self.clock()).day
            return [g for g, _link in engine.authorised(roster, student, day)], engine.barred(roster, student)

    def counts(self) -> engine.Counts:
        with self._lock:
            now = self.clock()
            return engine.counts(self.roster, self._today(now), now, self.rules)

    def local(self, value: datetime | str) -> datetime:
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value.astimezone(self.tz)

    def describe(
        self,
        decision: engine.Decision,
        now: datetime,
        *,
        event: dict | None = None,
        token: str | None = None,
        reader: str | None = None,
        outcome: str | None = None,
    ) -> Shown:
        roster = self.roster
        student = roster.students.get(decision.student) if decision.student else None
        guardian = roster.guardians.get(decision.guardian) if decision.guardian else None
        staff = roster.staff.get(decision.staff) if decision.staff else None
        session = roster.sessions.get(decision.session) if decision.session else None
        person = student or guardian or staff
        outcome = outcome or decision.outcome
        key = outcome
        unknown = self.feed_unknown_since()
        if outcome == "not_on_site" and unknown is not None:
            # Offline (or still catching up): the child may have come in at another gate since then.
            key = "not_on_site_gates_unknown"
        params = {
            "name": person.name if person else None,
            "class_name": student.class_name if student else None,
            "guardian": guardian.name if guardian else decision.person,
            "relation": guardian.relation if guardian else None,
            "staff": staff.name if staff else None,
            "card": decision.card,
            "reason": decision.reason,
            "group": session.group_name if session else None,
            "start": self.local(session.start).strftime("%H:%M") if session else None,
            "end": self.local(session.end).strftime("%H:%M") if session else None,
            "offline_minutes": int(self.rules.offline_after.total_seconds() // 60),
            "unacked_minutes": int(self.rules.unacked_after.total_seconds() // 60),
            "roster_hours": int(self.rules.roster_max_age.total_seconds() // 3600),
        }
        if key == "not_on_site_gates_unknown":
            params["since"] = self.local(unknown).strftime("%H:%M")
        return Shown(
            at=now.astimezone(self.tz).isoformat(timespec="milliseconds"),
            reader=reader,
            card=decision.card,
            outcome=outcome,
            tone=decision.tone,
            student=decision.student,
            guardian=decision.guardian,
            staff=decision.staff,
            session=decision.session,
            name=params["name"],
            class_name=params["class_name"],
            guardian_name=params["guardian"],
            relation=params["relation"],
            phone=guardian.phone_masked if guardian else None,
            person=decision.person,
            reason=decision.reason,
            note=decision.note,
            event=event["kind"] if event else None,
            seq=event["seq"] if event else None,
            event_id=event["id"] if event else None,
            confirm=token,
            alarm=decision.alarm,
            overridable=decision.overridable,
            message=t(key, self.settings.locale, **params),
        )

    def fault(self, tap: CardTap) -> Shown:
        """What is shown when a tap could not be decided and recorded: the guard writes it down."""
        return self.describe(engine.Decision("kiosk_error", "refused", tap.uid), tap.read_at, reader=tap.reader)

    def run(
        self, reader: Reader, out: TextIO, stop: threading.Event, on_decision: Callable | None = None,
        *, alerts_every: float | None = None,
    ) -> None:
        """Read taps until ``stop`` is set, printing one JSON line per decision (and, every
        ``alerts_every`` seconds, one per alert raised)."""
        self.attach_reader(reader)
        next_alerts = time.monotonic()
        while not stop.is_set():
            if alerts_every and time.monotonic() >= next_alerts:
                next_alerts = time.monotonic() + alerts_every
                try:
                    raised = self.check_alerts()
                except Exception:  # noqa: BLE001 - an alert that cannot be recorded must not stop the gate
                    log.exception("alerts could not be checked")
                    raised = []
                for shown in raised:
                    out.write(json.dumps(shown.as_json(), ensure_ascii=False) + "\n")
                out.flush()
            try:
                tap = reader.read(timeout=0.5)
            except ReaderError as exc:
                log.error("reader %s failed: %s", reader.spec, exc)
                stop.wait(1.0)
                continue
            if tap is None:
                continue
            try:
                shown = self.handle(tap)
            except Exception:  # noqa: BLE001 - one failed tap must not stop the gate
                log.exception("tap %s could not be decided and recorded", tap.uid)
                shown = self.fault(tap)
            # The person at the gate hears and sees the verdict on the reader itself (P9.4).
            reader.signal(shown.tone)
            out.write(json.dumps(shown.as_json(), ensure_ascii=False) + "\n")
            out.flush()
            if on_decision:
                on_decision(shown)
