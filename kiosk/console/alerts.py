"""Today's alerts, newest first."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Static

from kiosk.console.base import GateScreen
from kiosk.console.text import plain


class AlertsScreen(GateScreen):
    def compose(self) -> ComposeResult:
        yield Static(self.t("alerts_title"))
        yield DataTable(id="alerts", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("", "")
        for shown in self.gate.alerts:
            table.add_row(plain(shown.at[11:16]), plain(shown.message))
        if not self.gate.alerts:
            table.add_row("", plain(self.t("alerts_none")))
