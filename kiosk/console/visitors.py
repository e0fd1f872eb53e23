"""门卫登记: visitors signed in and out at the gate (P9.3)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Input, Static

from kiosk.console.base import GateScreen
from kiosk.console.text import plain

FIELDS = ("visitor_name", "visitor_id4", "visitor_purpose", "visitor_visiting")


class VisitorsScreen(GateScreen):
    """门卫登记: sign a visitor in (name, last 4 of the ID number, purpose, person visited) and out."""

    def compose(self) -> ComposeResult:
        yield Static(self.t("visitors_title"))
        with Horizontal(id="fields"):
            for key in FIELDS:
                yield Input(placeholder=self.t(key), id=key)
        yield Static(self.t("visitor_keys"))
        yield DataTable(id="on-site", cursor_type="row")
        yield Footer()

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

    @on(Input.Submitted)
    def _sign_in(self) -> None:
        values = [self.query_one(f"#{key}", Input).value for key in FIELDS]
        if not self.gate.act(self.gate.kiosk.visitor_in, *values):
            return
        for key in FIELDS:
            self.query_one(f"#{key}", Input).value = ""
        self._refill()
        self.query_one("#visitor_name", Input).focus()

    @on(DataTable.RowSelected, "#on-site")
    def _sign_out(self, event: DataTable.RowSelected) -> None:
        if self.gate.act(self.gate.kiosk.visitor_out, str(event.row_key.value)):
            self._refill()
