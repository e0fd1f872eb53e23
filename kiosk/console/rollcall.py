"""Every child on site now: one key in an emergency."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Footer, Static

from kiosk.console.base import GateScreen


class RollCallScreen(GateScreen):
    """Every child on site now, by session and place: one key in an emergency."""

    def compose(self) -> ComposeResult:
        kiosk = self.gate.kiosk
        groups = kiosk.roll_call()
        gates = kiosk.came_through()  # the school's view: children who came in at any gate
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
                gate = self.t("rollcall_gate", gate=gates[sid]) if gates.get(sid) else ""
                text.append(f"  {child.name if child else sid}  {child.class_name if child else ''}  {gate}\n")
        yield Static(text)
        yield Footer()
