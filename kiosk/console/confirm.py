"""The pickup waiting for the guard's eyes: the child, the person taking them, Enter or Esc."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from kiosk.display import Shown


class ConfirmPickup(ModalScreen[bool]):
    """An allowed pickup waits here for the guard: Enter lets the child go, Esc refuses.

    The descriptions of its bindings are catalogue keys: the modal has no footer, the help screen
    shows them in the kiosk's language.
    """

    BINDINGS = [
        Binding("enter", "decide(True)", "key_confirm", priority=True, key_display="Enter"),
        Binding("escape", "decide(False)", "key_refuse", key_display="Esc"),
    ]

    def __init__(self, shown: Shown, *, arm_after: float = 0.8, monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.shown = shown
        # It may pop up while the guard types elsewhere: an Enter meant for that field must not let a child go.
        self.arm_after = arm_after
        self.monotonic = monotonic  # seconds, for the arming only (a test moves it by hand)
        self.shown_at = monotonic()

    def compose(self) -> ComposeResult:
        gate = self.app
        t = gate.t  # type: ignore[attr-defined]
        s = self.shown
        body = Text()
        body.append(f"{s.name or ''}  {s.class_name or ''}\n", style="bold")
        body.append(f"{s.guardian_name or ''}  {s.relation or ''}  {s.phone or ''}\n")
        body.append(s.message + "\n\n")
        body.append(t("confirm_keys"), style="bold")
        with Vertical():
            yield Static(t("confirm_title"), id="confirm-title")
            with Horizontal(id="confirm-photos"):
                yield Static(gate.photo("students", s.student, s.name), classes="photo")  # type: ignore[attr-defined]
                yield Static(gate.photo("guardians", s.guardian, s.guardian_name), classes="photo")  # type: ignore[attr-defined]
            yield Static(body, id="confirm-body")

    def action_decide(self, ok: bool) -> None:
        if ok and self.monotonic() - self.shown_at < self.arm_after:
            return
        if ok and not self.app.kiosk.may_confirm():  # type: ignore[attr-defined]
            # Nobody signed in: the pickup stays up, waiting for a guard's card and their Enter.
            self.app.notify(self.app.t("pickup_needs_guard"), severity="error")  # type: ignore[attr-defined]
            return
        self.dismiss(ok)
