"""The keys, read from the bindings themselves: a key added to the console shows up here by itself."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Footer, Static

from kiosk.console.base import GateScreen
from kiosk.console.confirm import ConfirmPickup


class HelpScreen(GateScreen):
    def keys(self) -> list[tuple[str, str]]:
        """(key as shown, what it does) for every binding the main screen shows in its footer, then the
        pickup confirmation's (whose descriptions are catalogue keys: that modal has no footer)."""
        app = self.gate
        main = app.screen_stack[0]
        rows = [(app.get_key_display(active.binding), active.binding.description)
                for active in main.active_bindings.values() if active.binding.show and active.binding.description]
        rows += [(binding.key_display or app.get_key_display(binding), self.t(binding.description))
                 for binding in ConfirmPickup.BINDINGS]
        return rows

    def compose(self) -> ComposeResult:
        text = Text()
        text.append(self.t("help_title") + "\n\n", style="bold")
        for key, label in self.keys():
            text.append(f"  {key:<6}", style="bold")
            text.append(label + "\n")
        text.append("\n" + self.t("key_wedge") + "\n")
        if self.gate.demo is not None:
            text.append(self.t("key_demo") + "\n")
        yield Static(text)
        yield Footer()
