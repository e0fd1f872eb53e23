"""What every full screen over the main one shares: Esc goes back, the catalogue in the kiosk's language."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.screen import Screen

if TYPE_CHECKING:
    from kiosk.console.app import GateConsole


class GateScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "back", show=False)]

    @property
    def gate(self) -> GateConsole:
        return self.app  # type: ignore[return-value]

    def t(self, key: str, **params: object) -> str:
        return self.gate.t(key, **params)
