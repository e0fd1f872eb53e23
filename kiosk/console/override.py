"""The guard admits a refused child anyway, with a typed reason."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from kiosk.display import Shown


class OverrideScreen(ModalScreen[str | None]):
    """The guard admits a refused child: the typed reason goes into the ``override`` event."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, refused: Shown) -> None:
        super().__init__()
        self.refused = refused

    def compose(self) -> ComposeResult:
        t = self.app.t  # type: ignore[attr-defined]
        with Vertical():
            yield Static(Text(f"{t('override_title')}: {self.refused.message}"))
            yield Static(t("override_prompt"))
            yield Input(id="reason")

    @on(Input.Submitted, "#reason")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())
        else:
            self.app.notify(self.app.t("override_reason_required"), severity="error")  # type: ignore[attr-defined]

    def action_cancel(self) -> None:
        self.dismiss(None)
