"""The door guard's console (Textual): the last decision in one glance, and every gate task a key away.

The console decides nothing: taps (from the reader's thread or a keyboard-wedge burst) go to
``Kiosk``, which records and returns what is shown. Every string comes from the catalogue (``i18n``).

Names come from the roster and the guard's typing, so nothing shown is ever parsed as Textual
markup: a ``[/]`` in a name would crash the console, a ``[black on black]`` would hide a barred
guardian. Whatever holds a name or a typed value reaches a widget as a ``Text`` (see ``plain``), never
as a ``str``; only the catalogue's own fixed strings are left as they are.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from hardware import CardTap, Reader, ReaderError, cardnumber, connect
from hardware.keyboard import ALPHABETS, LENGTHS, BurstDetector
from i18n import has, t
from kiosk.runtime import Kiosk

log = logging.getLogger(__name__)
RECENT = 8
PHOTO_SIZE = (14, 5)  # cells inside the photo box; each cell is two pixels high


def plain(*parts: str) -> Text:
    """Strings shown exactly as they are: a ``str`` handed to a Textual widget is parsed as markup."""
    return Text("".join(parts))


def photo_text(path, size: tuple[int, int] = PHOTO_SIZE) -> Text:
    """A thumbnail in upper-half blocks: each cell shows two pixels (foreground on top, background below)."""
    from PIL import Image

    width, height = size
    with Image.open(path) as image:
        pixels = image.convert("RGB").resize((width, height * 2)).load()
    text = Text()
    for row in range(height):
        for col in range(width):
            top, bottom = pixels[col, row * 2], pixels[col, row * 2 + 1]
            text.append("▀", style=Style(color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom)))
        if row < height - 1:
            text.append("\n")
    return text


class DemoKeys:
    """Keys that tap demo cards on a simulated reader, so a new user can play an afternoon."""

    def __init__(self, reader, roster) -> None:
        self.reader = reader
        self.students = [s for s in sorted(roster.students.values(), key=lambda s: s.id) if s.cards and s.enrolled][:9]
        self.last_student: str | None = None
        self.roster = roster

    def student(self, n: int) -> None:
        if n < len(self.students):
            self.last_student = self.students[n].id
            self.reader.present(self.students[n].cards[0])

    def guardian(self) -> None:
        """A guardian allowed to take the last child tapped taps their card."""
        for guardian in sorted(self.roster.guardians.values(), key=lambda g: g.id):
            if guardian.cards and any(x.student == self.last_student and x.may_pick_up and not x.barred for x in guardian.links):
                self.reader.present(guardian.cards[0])
                return

    def barred(self) -> None:
        """The guardian under a custody order taps, then the child they may not take."""
        for guardian in sorted(self.roster.guardians.values(), key=lambda g: g.id):
            link = next((x for x in guardian.links if x.barred), None)
            child = self.roster.students.get(link.student) if link else None
            if guardian.cards and child and child.cards:
                self.reader.present(guardian.cards[0])
                self.reader.present(child.cards[0])
                return

    def staff(self) -> None:
        cards = [m.cards[0] for m in self.roster.staff.values() if m.cards]
        if cards:
            self.reader.present(cards[0])

    def unknown(self) -> None:
        self.reader.present("0BADCAFE")


class GateConsole(App):
    CSS = """
    Screen { layout: vertical; }
    #title { height: 1; background: $primary; color: $text; padding: 0 1; }
    #banner { height: 5; content-align: center middle; text-style: bold; border: heavy $panel; }
    #banner.allowed { background: darkgreen; color: white; }
    #banner.attention { background: darkgoldenrod; color: black; }
    #banner.refused { background: darkred; color: white; }
    #banner.ignored { background: $panel; }
    #banner.alarm { background: red; color: white; text-style: bold reverse; }
    #stale { height: auto; color: black; background: orange; padding: 0 1; display: none; }
    #stale.shown { display: block; }
    #who { height: 7; }
    #photo { width: 16; height: 7; border: round $panel; content-align: center middle; }
    #details { padding: 0 1; }
    #counters { height: 1; padding: 0 1; text-style: bold; }
    #recent { height: 1fr; border-top: solid $panel; padding: 0 1; }
    #sync { height: 1; padding: 0 1; background: $boost; }
    #sync.offline { background: darkred; color: white; }
    """

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
    ) -> None:
        super().__init__()
        self.confirm_arm = confirm_arm
        self.kiosk = kiosk
        self.locale = kiosk.settings.locale
        self.reader = reader
        self.demo = demo
        self.alert_every = alert_every
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.alerts: list[dict[str, Any]] = []
        self.last_refused: dict[str, Any] | None = None
        self.wedge_format = wedge_format
        low, high = LENGTHS[wedge_format]
        self.wedge = BurstDetector(max_gap=wedge_gap, min_length=low, max_length=high, alphabet=ALPHABETS[wedge_format])
        self.title = self.t("app_title", school=kiosk.settings.school, kiosk=kiosk.settings.kiosk)
        for key, action, label in (
            ("slash", "search", "key_search"), ("v", "visitors", "key_visitors"), ("a", "alerts", "key_alerts"),
            ("r", "rollcall", "key_rollcall"), ("o", "override", "key_override"), ("question_mark", "help", "key_help"),
            ("q", "quit", "key_quit"),
        ):
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
        # The main screen's widgets, held once: the timers and the reader's thread update them
        # whatever screen is on top (and while the app shuts down, when a query would find none).
        self.main = {name: self.query_one(f"#{name}", Static)
                     for name in ("banner", "details", "photo", "recent", "counters", "sync", "stale")}
        self.refresh_status()
        self.set_interval(1.0, self.refresh_status)
        self.set_interval(self.alert_every, self.check_alerts)
        if self.reader is not None:
            self.read_cards()
        if self.kiosk.photos is not None:
            self.sync_photos()
            self.set_interval(self.kiosk.settings.photo_sync_minutes * 60, self.sync_photos)

    # --- taps ----------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="reader")
    def read_cards(self) -> None:
        """The reader's own thread: each tap is decided and recorded here, then shown on the UI thread."""
        from textual.worker import get_current_worker

        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                tap = self.reader.read(timeout=0.3)
            except ReaderError as exc:
                log.error("reader %s failed: %s", self.reader.spec, exc)
                time.sleep(1.0)
                continue
            if tap is not None:
                shown = self.decide(tap)  # recorded before anything is shown
                try:
                    self.call_from_thread(self.show, shown)
                except RuntimeError:  # the console is closing: the tap is recorded, there is no screen
                    return

    def decide(self, tap: CardTap) -> dict[str, Any]:
        try:
            shown = self.kiosk.handle(tap)
        except Exception:  # noqa: BLE001 - one failed tap must not stop the gate
            log.exception("tap %s could not be decided and recorded", tap.uid)
            shown = self.kiosk.fault(tap)
        if self.reader is not None:
            self.reader.signal(shown["tone"])
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

    # --- showing decisions ---------------------------------------------------------------------------

    def show(self, shown: dict[str, Any]) -> None:
        """Put a decision on the main screen; ask the guard when it waits for confirmation."""
        if shown["tone"] == "ignored":
            return
        banner = self.main["banner"]
        banner.set_classes(("alarm" if shown.get("alarm") else shown["tone"]))
        banner.update(Text(shown["message"]))
        self.main["details"].update(self._details(shown))
        self.main["photo"].update(self._photo(shown))
        self.recent.appendleft(shown)
        self.main["recent"].update(self._recent())
        if shown.get("overridable"):
            self.last_refused = shown
        elif self.last_refused and shown.get("student") == self.last_refused.get("student"):
            self.last_refused = None  # a later decision about the same child: the refusal no longer stands
        if shown.get("event") == "alert" or shown["outcome"] == "unknown_card":
            self.alerts.insert(0, shown)
        if shown.get("alarm"):
            for _ in range(3):
                self.bell()
        if shown.get("confirm"):
            self.push_screen(ConfirmPickup(shown, arm_after=self.confirm_arm), lambda ok, shown=shown: self._confirmed(shown, ok))
        self.refresh_status()

    def act(self, action, *args: Any) -> bool:
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
            self.show({"at": self.kiosk.clock().astimezone(self.kiosk.tz).isoformat(), "tone": "refused",
                       "outcome": "kiosk_error", "message": self.t("action_error")})
            return False
        self.show(shown)
        return True

    def _confirmed(self, shown: dict[str, Any], ok: bool | None) -> None:
        self.act(self.kiosk.confirm if ok else self.kiosk.refuse, shown["confirm"])

    def _photo(self, shown: dict[str, Any]) -> Text:
        if shown.get("student"):
            return self.photo("students", shown["student"], shown.get("name"))
        return self.photo("guardians", shown.get("guardian"), shown.get("guardian_name"))

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

    @work(thread=True, exclusive=True, group="photos")
    def sync_photos(self) -> None:
        self.kiosk.sync_photos()

    def _details(self, shown: dict[str, Any]) -> Text:
        text = Text()
        if shown.get("name"):
            text.append(shown["name"], style="bold")
            if shown.get("class"):
                text.append(f"  {shown['class']}")
            text.append("\n")
        if shown.get("guardian_name"):
            text.append(shown["guardian_name"], style="bold")
            if shown.get("relation"):
                text.append(f"  {shown['relation']}")
            if shown.get("phone"):
                text.append(f"  {self.t('phone')} {shown['phone']}")
            text.append("\n")
        if shown.get("guardian") and not shown.get("student"):
            guardian = self.kiosk.roster.guardians.get(shown["guardian"])
            for link in guardian.links if guardian else []:
                child = self.kiosk.roster.students.get(link.student)
                if child:
                    style = "bold red" if link.barred or not link.may_pick_up else ""
                    text.append(f"· {child.name} {child.class_name}\n", style=style)
        return text

    def _recent(self) -> Text:
        text = Text()
        styles = {"allowed": "green", "attention": "yellow", "refused": "bold red"}
        for shown in self.recent:
            text.append(shown["at"][11:19] + "  ", style="dim")
            text.append(shown["message"] + "\n", style=styles.get(shown["tone"], ""))
        return text

    def refresh_status(self) -> None:
        counts = self.kiosk.counts()
        self.main["counters"].update(plain(
            f"{self.t('count_expected')} {counts.expected}   {self.t('count_on_site')} {counts.on_site}   "
            f"{self.t('count_gone')} {counts.gone}   {self.t('count_absent')} {counts.absent}"
        ))
        sync = self.kiosk.sync_state()
        if sync["roster_version"] == 0:
            age = self.t("roster_none")
        else:
            minutes = max(0, sync["roster_age_s"] or 0) // 60
            age = self.t("roster_age", minutes=minutes) if minutes < 120 else self.t("roster_age_h", hours=minutes // 60)
        footer = self.main["sync"]
        footer.update(plain(self.t("footer_sync", state=self.t("online" if sync["online"] else "offline"),
                                   queue=sync["queue"], version=sync["roster_version"], age=age)))
        footer.set_class(not sync["online"], "offline")
        stale = self.main["stale"]
        stale.update(plain(self.t("alert_roster_stale", roster_hours=int(self.kiosk.rules.roster_max_age.total_seconds() // 3600))))
        stale.set_class(sync["roster_stale"], "shown")

    def check_alerts(self) -> None:
        """Raise what is due; many at once (a whole group absent) make one banner, each is listed under ``a``."""
        raised = self.kiosk.check_alerts()
        if len(raised) == 1:
            self.show(raised[0])
        elif raised:
            for shown in raised:
                self.alerts.insert(0, shown)
            self.show({**raised[-1], "event": None, "student": None, "guardian": None, "name": None, "class": None,
                       "guardian_name": None, "message": self.t("alerts_new", count=len(raised))})

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

    def action_override(self) -> None:
        refused = self.last_refused
        if refused is None or len(self.screen_stack) > 1:  # from the main screen only, where the refusal shows
            return

        def admit(reason: str | None) -> None:
            if not reason:
                return
            self.last_refused = None
            if refused["outcome"] == "not_on_site":
                self.act(self.kiosk.override_pickup, refused, reason)
            else:
                self.act(self.kiosk.override, refused["student"], reason)

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
        elif event.key == "u":
            self.demo.unknown()


# --- screens -----------------------------------------------------------------------------------------


class _Screen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "back", show=False)]

    @property
    def gate(self) -> GateConsole:
        return self.app  # type: ignore[return-value]

    def t(self, key: str, **params: object) -> str:
        return self.gate.t(key, **params)


class ConfirmPickup(ModalScreen[bool]):
    """An allowed pickup waits here for the guard: Enter lets the child go, Esc refuses."""

    BINDINGS = [Binding("enter", "decide(True)", "confirm", priority=True), Binding("escape", "decide(False)", "refuse")]
    DEFAULT_CSS = """
    ConfirmPickup { align: center middle; }
    ConfirmPickup > Vertical { width: 70; height: auto; border: thick green; background: $surface; padding: 1 2; }
    ConfirmPickup #confirm-title { text-style: bold; }
    ConfirmPickup #confirm-photos { height: 7; }
    ConfirmPickup .photo { width: 16; height: 7; border: round $panel; content-align: center middle; margin-right: 2; }
    """

    def __init__(self, shown: dict[str, Any], *, arm_after: float = 0.8) -> None:
        super().__init__()
        self.shown = shown
        # It may pop up while the guard types elsewhere: an Enter meant for that field must not let a child go.
        self.arm_after = arm_after
        self.shown_at = time.monotonic()

    def compose(self) -> ComposeResult:
        t = self.app.t  # type: ignore[attr-defined]
        s = self.shown
        body = Text()
        body.append(f"{s.get('name') or ''}  {s.get('class') or ''}\n", style="bold")
        body.append(f"{s.get('guardian_name') or ''}  {s.get('relation') or ''}  {s.get('phone') or ''}\n")
        body.append(s["message"] + "\n\n")
        body.append(t("confirm_keys"), style="bold")
        gate: GateConsole = self.app  # type: ignore[assignment]
        with Vertical():
            yield Static(t("confirm_title"), id="confirm-title")
            with Horizontal(id="confirm-photos"):
                yield Static(gate.photo("students", s.get("student"), s.get("name")), classes="photo")
                yield Static(gate.photo("guardians", s.get("guardian"), s.get("guardian_name")), classes="photo")
            yield Static(body, id="confirm-body")

    def action_decide(self, ok: bool) -> None:
        if ok and time.monotonic() - self.shown_at < self.arm_after:
            return
        self.dismiss(ok)


class OverrideScreen(ModalScreen[str | None]):
    """The guard admits a refused child: the typed reason goes into the ``override`` event."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CSS = """
    OverrideScreen { align: center middle; }
    OverrideScreen > Vertical { width: 70; height: auto; border: thick orange; background: $surface; padding: 1 2; }
    """

    def __init__(self, refused: dict[str, Any]) -> None:
        super().__init__()
        self.refused = refused

    def compose(self) -> ComposeResult:
        t = self.app.t  # type: ignore[attr-defined]
        with Vertical():
            yield Static(Text(f"{t('override_title')}: {self.refused['message']}"))
            yield Static(t("override_prompt"))
            yield Input(id="reason")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())
        else:
            self.app.notify(self.app.t("override_reason_required"), severity="error")  # type: ignore[attr-defined]

    def action_cancel(self) -> None:
        self.dismiss(None)


class SearchScreen(_Screen):
    """Find a child (name, class, student number), then hand them to someone on their authorised list
    or check a one-time pickup code."""

    DEFAULT_CSS = """
    SearchScreen OptionList { height: 1fr; }
    SearchScreen #barred { color: red; text-style: bold; }
    SearchScreen #faces { width: 16; }
    SearchScreen .photo { width: 16; height: 7; border: round $panel; content-align: center middle; }
    SearchScreen #guardians { min-height: 4; }
    """

    def compose(self) -> ComposeResult:
        yield Static(self.t("search_title"))
        yield Input(id="query")
        yield Static(self.t("search_hint"))
        with Horizontal():
            yield OptionList(id="students")
            with Vertical():
                yield Static(id="child-name")
                yield OptionList(id="guardians")
                yield Static(id="barred")
                yield Static(self.t("code_prompt"))
                yield Input(id="code")
            with Vertical(id="faces"):  # the child and the highlighted guardian, one above the other
                yield Static(id="child-photo", classes="photo")
                yield Static(id="guardian-photo", classes="photo")
        yield Footer()

    def on_mount(self) -> None:
        self.student: str | None = None
        self._fill("")
        self.query_one("#query", Input).focus()

    def _fill(self, query: str) -> None:
        query = query.strip().lower()
        found = [
            s for s in sorted(self.gate.kiosk.roster.students.values(), key=lambda s: (s.class_name, s.id))
            if not query or query in s.name.lower() or query in s.class_name.lower() or query in s.id.lower()
        ][:200]
        options = self.query_one("#students", OptionList)
        options.clear_options()
        options.add_options([Option(plain(f"{s.name}  {s.class_name}  {s.id}"), id=s.id) for s in found])
        if found:
            options.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "query":
            self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "query":
            self.query_one("#students", OptionList).focus()
        elif event.input.id == "code" and self.student and event.value.strip():
            event.input.value = ""
            self.gate.act(self.gate.kiosk.pickup_code, self.student, event.value)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "students" and event.option.id:
            self._choose(event.option.id)
        elif event.option_list.id == "guardians" and event.option.id:
            guardian = self.gate.kiosk.roster.guardians.get(event.option.id)
            self.query_one("#guardian-photo", Static).update(
                self.gate.photo("guardians", event.option.id, guardian.name if guardian else None))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "students":
            self._choose(event.option.id)
            self.query_one("#guardians", OptionList).focus()
        elif event.option_list.id == "guardians" and self.student and event.option.id:
            self.gate.act(self.gate.kiosk.pickup, self.student, event.option.id)

    def _choose(self, student_id: str) -> None:
        kiosk = self.gate.kiosk
        student = kiosk.roster.students.get(student_id)
        if student is None:  # gone from the roster since the list was drawn
            return
        self.student = student_id
        self.query_one("#child-photo", Static).update(self.gate.photo("students", student_id, student.name))
        self.query_one("#guardian-photo", Static).update("")
        self.query_one("#child-name", Static).update(
            plain(self.t("authorised_title", name=student.name, class_name=student.class_name)))
        guardians = self.query_one("#guardians", OptionList)
        guardians.clear_options()
        authorised, barred = kiosk.who_may_take(student_id)
        guardians.add_options([Option(plain(f"{g.name}  {g.relation}  {g.phone_masked}"), id=g.id) for g in authorised])
        if authorised:
            guardians.highlighted = 0
        self.query_one("#barred", Static).update(
            plain(self.t("barred_list", names="、".join(g.name for g in barred)) if barred else "")
        )


FIELDS = ("visitor_name", "visitor_id4", "visitor_purpose", "visitor_visiting")


class VisitorsScreen(_Screen):
    """门卫登记: sign a visitor in (name, last 4 of the ID number, purpose, person visited) and out."""

    def compose(self) -> ComposeResult:
        yield Static(self.t("visitors_title"))
        with Horizontal(id="fields"):
            for key in FIELDS:
                yield Input(placeholder=self.t(key), id=key)
        yield Static(self.t("visitor_keys"))
        yield DataTable(id="on-site", cursor_type="row")
        yield Footer()

    DEFAULT_CSS = """
    VisitorsScreen #fields { height: 3; }
    VisitorsScreen #fields Input { width: 1fr; }
    """

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key in ("visitor_name", "visitor_id4", "visitor_purpose", "visitor_visiting", "visitor_since"):
            table.add_column(self.t(key), key=key)
        self._refill()
        self.query_one("#visitor_name", Input).focus()

    def _refill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for visit, v in self.gate.kiosk.visitors().items():
            since = self.gate.kiosk.local(v["at"]).strftime("%H:%M")
            table.add_row(*(plain(v.get(field) or "") for field in ("name", "id4", "purpose", "visiting")), plain(since), key=visit)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        values = [self.query_one(f"#{key}", Input).value for key in FIELDS]
        if not self.gate.act(self.gate.kiosk.visitor_in, *values):
            return
        for key in FIELDS:
            self.query_one(f"#{key}", Input).value = ""
        self._refill()
        self.query_one("#visitor_name", Input).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if self.gate.act(self.gate.kiosk.visitor_out, str(event.row_key.value)):
            self._refill()


class AlertsScreen(_Screen):
    def compose(self) -> ComposeResult:
        yield Static(self.t("alerts_title"))
        yield DataTable(id="alerts", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("", "")
        for shown in self.gate.alerts:
            table.add_row(plain(shown["at"][11:16]), plain(shown["message"]))
        if not self.gate.alerts:
            table.add_row("", plain(self.t("alerts_none")))


class RollCallScreen(_Screen):
    """Every child on site now, by session and place: one key in an emergency."""

    def compose(self) -> ComposeResult:
        kiosk = self.gate.kiosk
        groups = kiosk.roll_call()
        total = sum(len(children) for _s, children in groups)
        text = Text()
        text.append(self.t("rollcall_title", count=total) + "\n\n", style="bold")
        for session, children in groups:
            if session is None:
                text.append(self.t("rollcall_no_session"), style="bold")
            else:
                start, end = kiosk.local(session.start).strftime("%H:%M"), kiosk.local(session.end).strftime("%H:%M")
                text.append(f"{session.group_name} · {session.place} · {start}–{end}", style="bold")
            text.append(f"  ({len(children)})\n")
            for sid in children:
                child = kiosk.roster.students.get(sid)
                text.append(f"  {child.name if child else sid}  {child.class_name if child else ''}\n")
        yield Static(text)
        yield Footer()


class HelpScreen(_Screen):
    def compose(self) -> ComposeResult:
        rows = [
            ("/", "key_search"), ("v", "key_visitors"), ("a", "key_alerts"), ("r", "key_rollcall"),
            ("o", "key_override"), ("Enter", "key_confirm"), ("Esc", "key_refuse"), ("?", "key_help"), ("q", "key_quit"),
        ]
        text = Text()
        text.append(self.t("help_title") + "\n\n", style="bold")
        for key, label in rows:
            text.append(f"  {key:<6}", style="bold")
            text.append(self.t(label) + "\n")
        text.append("\n" + self.t("key_wedge") + "\n")
        if self.gate.demo is not None:
            text.append(self.t("key_demo") + "\n")
        yield Static(text)
        yield Footer()


def open_reader(spec: str) -> tuple[Reader | None, dict[str, Any]]:
    """The reader the console reads from, and its keyboard-wedge options.

    A wedge reader on the console's own keyboard (``keyboard`` without a TTY) is read from the
    console's key events, since the console owns the terminal; every other spec is opened as usual.
    """
    family, _, rest = spec.partition("?")
    if family == "keyboard":
        options = dict(pair.split("=", 1) for pair in rest.split("&") if "=" in pair)
        card_format = options.get("format", "decimal")
        if card_format not in LENGTHS:
            raise ReaderError("hardware.card_format", formats=", ".join(LENGTHS), given=card_format)
        try:
            gap = float(options.get("gap", 0.05))
        except ValueError:
            raise ReaderError("hardware.gap", given=options["gap"]) from None
        return None, {"wedge_format": card_format, "wedge_gap": gap}
    return connect(spec), {}


def run_console(kiosk: Kiosk, reader: Reader | None, *, demo: DemoKeys | None = None, **options: Any) -> None:
    GateConsole(kiosk, reader=reader, demo=demo, **options).run()
