"""The main screen: the last decision in one glance, the counters, the sync, and every gate task a key away.

The console decides nothing: taps (from the reader's thread or a keyboard-wedge burst) go to
``Kiosk``, which records and returns what is shown (a ``Shown``). Workers off the UI thread post
messages (``messages.py``) and the app shows them in its handlers.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.widgets import Footer, Input, Static
from textual.worker import get_current_worker

from hardware import CardTap, Reader, ReaderError, cardnumber
from hardware.keyboard import ALPHABETS, LENGTHS, BurstDetector
from i18n import has, t
from kiosk.console import panels
from kiosk.console.alerts import AlertsScreen
from kiosk.console.confirm import ConfirmPickup
from kiosk.console.demo import DemoKeys
from kiosk.console.help import HelpScreen
from kiosk.console.messages import (
    AlertsRaised,
    CardDecided,
    CountsChanged,
    ReaderFailed,
    ReaderRestored,
    SyncStateChanged,
)
from kiosk.console.override import OverrideScreen
from kiosk.console.rollcall import RollCallScreen
from kiosk.console.search import SearchScreen
from kiosk.console.text import PHOTO_SIZE, photo_text, plain
from kiosk.console.visitors import VisitorsScreen
from kiosk.display import Shown, SyncState
from kiosk.engine import Counts
from kiosk.runtime import Kiosk

log = logging.getLogger(__name__)
RECENT = 8

# (key, action, catalogue key of its description), in the footer's order; the help screen reads the bindings.
KEYS = (
    ("slash", "search", "key_search"), ("v", "visitors", "key_visitors"), ("a", "alerts", "key_alerts"),
    ("r", "rollcall", "key_rollcall"), ("o", "override", "key_override"), ("s", "sign_out", "key_sign_out"),
    ("question_mark", "help", "key_help"), ("q", "quit", "key_quit"),
)


class GateConsole(App):
    CSS_PATH = "console.tcss"

    def __init__(
        self,
        kiosk: Kiosk,
        *,
        reader: Reader | None = None,
        demo: DemoKeys | None = None,
        wedge_format: str = "decimal",
        wedge_gap: float = 0.05,
        alert_every: float = 5.0,
        confirm_arm: float = 0.8,
        status_every: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.confirm_arm = confirm_arm
        self.monotonic = monotonic  # what arms a pickup's confirmation (confirm_arm seconds after it shows)
        self.kiosk = kiosk
        self.locale = kiosk.settings.locale
        self.reader = reader
        if reader is not None:
            kiosk.reader = reader  # the kiosk's status then reports the reader's state
        self.demo = demo
        self.alert_every = alert_every
        self.status_every = status_every
        self.recent: deque[Shown] = deque(maxlen=RECENT)
        self.alerts: list[Shown] = []
        self.last_refused: Shown | None = None
        self.reader_fault: str | None = None
        self.sync: SyncState | None = None  # as the footer last showed it
        self._stopping = threading.Event()
        self.wedge_format = wedge_format
        low, high = LENGTHS[wedge_format]
        self.wedge = BurstDetector(max_gap=wedge_gap, min_length=low, max_length=high, alphabet=ALPHABETS[wedge_format])
        self.title = self.t("app_title", school=kiosk.settings.school, kiosk=kiosk.settings.kiosk)
        for key, action, label in KEYS:
            self.bind(key, action, description=self.t(label))

    def t(self, key: str, **params: object) -> str:
        return t(key, self.locale, **params)

    # --- layout ------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(plain(self.title), id="title")
        yield Static(plain(self.t("banner_idle")), id="banner", classes="ignored")
        yield Static(id="stale")
        with Horizontal(id="who"):
            yield Static(self.t("photo_none"), id="photo")
            yield Static(id="details")
        yield Static(id="counters")
        yield Static(id="recent")
        yield Static(id="sync")
        yield Footer()

    def on_mount(self) -> None:
        # The main screen's widgets, held once: the handlers update them whatever screen is on top
        # (and while the app shuts down, when a query would find none).
        self.main = {name: self.query_one(f"#{name}", Static)
                     for name in ("banner", "details", "photo", "recent", "counters", "sync", "stale")}
        self.refresh_status()
        self.watch_status()
        self.set_interval(self.alert_every, self.raise_alerts)
        if self.reader is not None:
            self.read_cards()
        if self.kiosk.photos is not None:
            self.sync_photos()
            self.set_interval(self.kiosk.settings.photo_sync_minutes * 60, self.sync_photos)

    def on_unmount(self) -> None:
        self._stopping.set()

    # --- workers (off the UI thread: they post messages, never touch a widget) -----------------------

    @work(thread=True, exclusive=True, group="reader")
    def read_cards(self) -> None:
        """The reader's own thread: each tap is decided and recorded here, then posted to the app.
        A reader that fails or reconnects is posted too, once per change."""
        worker = get_current_worker()
        failed: str | None = None
        while not worker.is_cancelled and not self._stopping.is_set():
            try:
                tap = self.reader.read(timeout=0.3)
            except ReaderError as exc:
                log.error("reader %s failed: %s", self.reader.spec, exc)
                failed = self._reader_changed(failed, exc.text(self.locale))
                self._stopping.wait(1.0)
                continue
            state = self.reader.state
            failed = self._reader_changed(failed, state.partition(":")[2].strip() or state
                                          if state.startswith("reconnecting") else None)
            if tap is not None:
                self.post_message(CardDecided(self.decide(tap)))  # recorded before anything is shown

    def _reader_changed(self, was: str | None, now: str | None) -> str | None:
        if now != was:
            self.post_message(ReaderFailed(now) if now is not None else ReaderRestored())
        return now

    @work(thread=True, exclusive=True, group="status")
    def watch_status(self) -> None:
        """The sync's state and the counters, read off the UI thread; posted only when they change."""
        worker = get_current_worker()
        sync: SyncState | None = None
        counts: Counts | None = None
        while not worker.is_cancelled and not self._stopping.wait(self.status_every):
            try:
                now_sync, now_counts = self.kiosk.sync_state(), self.kiosk.counts()
            except Exception:  # noqa: BLE001 - a failed look at the store must not stop the watcher
                log.exception("the kiosk's state could not be read")
                continue
            if now_sync != sync:
                sync = now_sync
                self.post_message(SyncStateChanged(now_sync))
            if now_counts != counts:
                counts = now_counts
                self.post_message(CountsChanged(now_counts))

    @work(thread=True, exclusive=True, group="alerts")
    def raise_alerts(self) -> None:
        """The alerts timer's work: each alert due is recorded (SQLite) here, then posted to the app."""
        try:
            raised = self.kiosk.check_alerts()
        except Exception:  # noqa: BLE001 - an alert that cannot be recorded must not stop the console
            log.exception("alerts could not be checked")
            return
        if raised:
            self.post_message(AlertsRaised(tuple(raised)))

    @work(thread=True, exclusive=True, group="photos")
    def sync_photos(self) -> None:
        self.kiosk.sync_photos()

    # --- taps ----------------------------------------------------------------------------------------

    def decide(self, tap: CardTap) -> Shown:
        try:
            shown = self.kiosk.handle(tap)
        except Exception:  # noqa: BLE001 - one failed tap must not stop the gate
            log.exception("tap %s could not be decided and recorded", tap.uid)
            shown = self.kiosk.fault(tap)
        if self.reader is not None:
            self.reader.signal(shown.tone)
        return shown

    async def on_event(self, event: events.Event) -> None:
        # A keyboard-wedge reader types a card number and Enter within milliseconds, whatever
        # screen is up: that is a tap, not typing (BurstDetector tells the two apart).
        if isinstance(event, events.Key) and not event.is_forwarded:
            char = "\r" if event.key == "enter" else (event.character or "")
            if len(char) == 1:
                number = self.wedge.feed(char, event.time)
                if number is not None:
                    self._take_burst(number)
                    return
        await super().on_event(event)

    def _take_burst(self, number: str) -> None:
        focused = self.focused
        if isinstance(focused, Input):
            # The burst's digits went to the field too; its queue holds them still, so strip them after.
            def strip() -> None:
                if focused.value.endswith(number):
                    focused.value = focused.value[: -len(number)]

            focused.call_later(strip)
        try:
            uid = cardnumber.parse(number, self.wedge_format)
        except ValueError as exc:
            log.warning("keyboard burst %r is not a card number: %s", number, exc)
            return
        self.show(self.decide(CardTap(uid=uid, tech="keyboard", reader="keyboard", read_at=self.kiosk.clock())))

    # --- what the workers tell -----------------------------------------------------------------------

    @on(CardDecided)
    def _card_decided(self, message: CardDecided) -> None:
        self.show(message.shown)

    @on(ReaderFailed)
    def _reader_failed(self, message: ReaderFailed) -> None:
        self.reader_fault = message.reason
        banner = self.main["banner"]
        banner.set_classes("refused")
        banner.update(plain(self.t("reader_failed", reason=message.reason)))

    @on(ReaderRestored)
    def _reader_restored(self) -> None:
        self.reader_fault = None
        banner = self.main["banner"]
        banner.set_classes("ignored")
        banner.update(plain(self.t("reader_restored")))

    @on(SyncStateChanged)
    def _sync_changed(self, message: SyncStateChanged) -> None:
        self._show_sync(message.sync)

    @on(CountsChanged)
    def _counts_changed(self, message: CountsChanged) -> None:
        self._show_counts(message.counts)

    # --- showing decisions ---------------------------------------------------------------------------

    def show(self, shown: Shown) -> None:
        """Put a decision on the main screen; ask the guard when it waits for confirmation."""
        if shown.tone == "ignored":
            return
        banner = self.main["banner"]
        banner.set_classes(("alarm" if shown.alarm else shown.tone))
        banner.update(Text(shown.message))
        self.main["details"].update(panels.details(shown, self.kiosk.roster, self.t))
        self.main["photo"].update(self._photo(shown))
        self.recent.appendleft(shown)
        self.main["recent"].update(panels.recent(self.recent))
        if shown.overridable:
            self.last_refused = shown
        elif self.last_refused and shown.student == self.last_refused.student:
            self.last_refused = None  # a later decision about the same child: the refusal no longer stands
        if shown.event == "alert" or shown.outcome == "unknown_card":
            self.alerts.insert(0, shown)
        if shown.alarm:
            for _ in range(3):
                self.bell()
        if shown.confirm:
            self.push_screen(ConfirmPickup(shown, arm_after=self.confirm_arm, monotonic=self.monotonic), lambda ok, shown=shown: self._confirmed(shown, ok))
        self.refresh_status()

    def act(self, action: Callable[..., Shown], *args: Any) -> bool:
        """Run a guard's action on the kiosk and show it. A refused input is a notice naming what is
        wrong; a fault (the disk) is a red banner telling the guard to write it down. Never a crash."""
        try:
            shown = action(*args)
        except ValueError as exc:  # engine input errors carry their message key; others (protocol limits) do not
            log.warning("%s refused: %s", getattr(action, "__name__", action), exc)
            self.notify(self.t(str(exc) if has(str(exc)) else "action_invalid"), severity="error")
            return False
        except Exception:  # noqa: BLE001 - the console must stay up at the gate
            log.exception("%s failed", getattr(action, "__name__", action))
            self.show(Shown(at=self.kiosk.clock().astimezone(self.kiosk.tz).isoformat(), tone="refused",
                            outcome="kiosk_error", message=self.t("action_error")))
            return False
        self.show(shown)
        return True

    def _confirmed(self, shown: Shown, ok: bool | None) -> None:
        self.act(self.kiosk.confirm if ok else self.kiosk.refuse, shown.confirm)

    def _photo(self, shown: Shown) -> Text:
        if shown.student:
            return self.photo("students", shown.student, shown.name)
        return self.photo("guardians", shown.guardian, shown.guardian_name)

    def photo(self, kind: str, ref: str | None, name: str | None) -> Text:
        """The cached thumbnail drawn in half blocks, or the name's first character and "no photo"."""
        path = self.kiosk.photo_path(kind, ref)
        if path is not None:
            try:
                return photo_text(path, PHOTO_SIZE)
            except OSError as exc:  # a damaged file in the cache: the placeholder serves
                log.warning("photo %s unreadable: %s", path, exc)
        name = name or ""
        return Text(f"{name[:1]}\n{self.t('photo_none')}" if name else self.t("photo_none"), justify="center")

    def refresh_status(self) -> None:
        """The counters and the footer as they are now (after a decision, when they surely changed)."""
        self._show_counts(self.kiosk.counts())
        self._show_sync(self.kiosk.sync_state())

    def _show_counts(self, counts: Counts) -> None:
        self.main["counters"].update(panels.counters(counts, self.t))

    def _show_sync(self, sync: SyncState) -> None:
        """The footer: who is on duty at this gate, then the sync; the stale-roster strip."""
        self.sync = sync
        footer = self.main["sync"]
        footer.update(panels.footer(sync, self.kiosk.guard(), self.t))
        footer.set_class(not sync.online, "offline")
        stale = self.main["stale"]
        stale.update(plain(self.t("alert_roster_stale", roster_hours=int(self.kiosk.rules.roster_max_age.total_seconds() // 3600))))
        stale.set_class(sync.roster_stale, "shown")

    def check_alerts(self) -> None:
        """Raise what is due now, on this thread (the timer raises them in ``raise_alerts``, off it)."""
        self._show_alerts(self.kiosk.check_alerts())

    @on(AlertsRaised)
    def _alerts_raised(self, message: AlertsRaised) -> None:
        self._show_alerts(message.raised)

    def _show_alerts(self, raised: list[Shown] | tuple[Shown, ...]) -> None:
        """Many at once (a whole group absent) make one banner; each is listed under ``a``."""
        if len(raised) == 1:
            self.show(raised[0])
        elif raised:
            for shown in raised:
                self.alerts.insert(0, shown)
            self.show(dataclasses.replace(raised[-1], event=None, student=None, guardian=None, name=None, class_name=None,
                                          guardian_name=None, message=self.t("alerts_new", count=len(raised))))

    # --- actions ---------------------------------------------------------------------------------------

    def action_search(self) -> None:
        self.push_screen(SearchScreen())

    def action_visitors(self) -> None:
        self.push_screen(VisitorsScreen())

    def action_alerts(self) -> None:
        self.push_screen(AlertsScreen())

    def action_rollcall(self) -> None:
        self.push_screen(RollCallScreen())

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_sign_out(self) -> None:
        """The guard on duty here signs out (their card again does the same)."""
        self.act(self.kiosk.sign_out)

    def action_override(self) -> None:
        refused = self.last_refused
        if refused is None or len(self.screen_stack) > 1:  # from the main screen only, where the refusal shows
            return

        def admit(reason: str | None) -> None:
            if not reason:
                return
            self.last_refused = None
            if refused.outcome == "not_on_site":
                self.act(self.kiosk.override_pickup, refused, reason)
            else:
                self.act(self.kiosk.override, refused.student, reason)

        self.push_screen(OverrideScreen(refused), admit)

    def on_key(self, event: events.Key) -> None:
        """Demo keys: tap demo cards on the simulated reader (only in ``schoolgate demo``)."""
        if self.demo is None or len(self.screen_stack) > 1:
            return
        if event.character and event.character.isdigit() and event.character != "0":
            self.demo.student(int(event.character) - 1)
        elif event.key == "g":
            self.demo.guardian()
        elif event.key == "b":
            self.demo.barred()
        elif event.key == "t":
            self.demo.staff()
        elif event.key == "d":
            self.demo.guard()
        elif event.key == "u":
            self.demo.unknown()


def run_console(kiosk: Kiosk, reader: Reader | None, *, demo: DemoKeys | None = None, **options: Any) -> None:
    GateConsole(kiosk, reader=reader, demo=demo, **options).run()
