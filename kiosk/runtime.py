"""One kiosk at work: reader -> engine -> durable outbox -> output, with sync in the background."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from gateway import protocol
from gateway.client import SyncClient
from gateway.mqtt import BrokerAddress, kiosk_credentials
from hardware import CardTap, Reader, ReaderError
from kiosk import engine
from kiosk.config import KioskSettings
from kiosk.i18n import t
from kiosk.store import KioskStore

log = logging.getLogger(__name__)


class Kiosk:
    def __init__(self, settings: KioskSettings, *, sync: bool = True) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = KioskStore(settings.db_path, school=settings.school, kiosk=settings.kiosk, secret=settings.secret)
        self.tz = ZoneInfo(settings.timezone)
        self.state = self._fresh_state(datetime.now(UTC))
        self._lock = threading.Lock()
        self.sync: SyncClient | None = None
        self.reader: Reader | None = None
        if sync and settings.mqtt_url:
            broker = BrokerAddress.parse(settings.mqtt_url)
            if not broker.username:
                # A broker set up by `schoolgate gateway mosquitto-config` knows this login; an
                # anonymous one (the embedded broker) ignores it.
                user, password = kiosk_credentials(settings.school, settings.kiosk, self.store.secret_hex)
                broker = dataclasses.replace(broker, username=user, password=password)
            self.sync = SyncClient(
                self.store,
                school=settings.school,
                kiosk=settings.kiosk,
                broker=broker,
                topics=protocol.Topics(settings.topic_prefix),
                resend_after=settings.resend_after,
                reader_state=self._reader_state,
            )

    def _fresh_state(self, now: datetime) -> engine.GateState:
        day = now.astimezone(self.tz).date()
        return engine.GateState(day=day, checked_in=self.store.checked_in(day))

    def _reader_state(self) -> str | None:
        return self.reader.state if self.reader else None

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
        self.store.close()

    def handle(self, tap: CardTap) -> dict[str, Any]:
        """Decide one tap, commit its event, and return the decision as it is shown."""
        now = tap.read_at
        with self._lock:
            if now.astimezone(self.tz).date() != self.state.day:
                self.state = self._fresh_state(now)
            roster = self.store.roster
            decision = engine.decide(roster, self.state, tap.uid, now)
            event = None
            if decision.event:
                # Committed (synchronous=FULL) before the decision is shown or printed.
                event = self.store.record(decision.event, now, day=self.state.day, **decision.event_fields())
            if decision.tone != "ignored":
                engine.remember(self.state, decision, now)
        if event and self.sync:
            self.sync.notify()
        return self.describe(decision, roster, tap, event)

    def describe(self, decision: engine.Decision, roster, tap: CardTap, event: dict | None) -> dict[str, Any]:
        student = roster.students.get(decision.student) if decision.student else None
        guardian = roster.guardians.get(decision.guardian) if decision.guardian else None
        staff = roster.staff.get(decision.staff) if decision.staff else None
        person = student or guardian or staff
        name = person.name if person else None
        return {
            "at": tap.read_at.astimezone(self.tz).isoformat(timespec="milliseconds"),
            "reader": tap.reader,
            "card": decision.card,
            "outcome": decision.outcome,
            "tone": decision.tone,
            "student": decision.student,
            "guardian": decision.guardian,
            "staff": decision.staff,
            "name": name,
            "class": student.class_name if student else None,
            "event": decision.event,
            "seq": event["seq"] if event else None,
            "message": t(
                decision.outcome,
                self.settings.locale,
                name=name,
                class_name=student.class_name if student else None,
                card=decision.card,
            ),
        }

    def run(self, reader: Reader, out: TextIO, stop: threading.Event, on_decision: Callable | None = None) -> None:
        """Read taps until ``stop`` is set, printing one JSON line per decision."""
        self.reader = reader
        while not stop.is_set():
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
                shown = {
                    "at": tap.read_at.astimezone(self.tz).isoformat(timespec="milliseconds"),
                    "reader": tap.reader,
                    "card": tap.uid,
                    "outcome": "kiosk_error",
                    "tone": "refused",
                    "event": None,
                    "seq": None,
                    "message": t("kiosk_error", self.settings.locale, card=tap.uid),
                }
            # The person at the gate hears and sees the verdict on the reader itself (P9.4).
            reader.signal(shown["tone"])
            out.write(json.dumps(shown, ensure_ascii=False) + "\n")
            out.flush()
            if on_decision:
                on_decision(shown)
