"""Find a child, then hand them to someone on their authorised list or check a one-time code."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from kiosk.console.base import GateScreen
from kiosk.console.text import plain


class SearchScreen(GateScreen):
    """Find a child (name, class, student number), then hand them to someone on their authorised list
    or check a one-time pickup code."""

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

    @on(Input.Changed, "#query")
    def _query_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted, "#query")
    def _query_submitted(self) -> None:
        self.query_one("#students", OptionList).focus()

    @on(Input.Submitted, "#code")
    def _code_submitted(self, event: Input.Submitted) -> None:
        if self.student and event.value.strip():
            event.input.value = ""
            self.gate.act(self.gate.kiosk.pickup_code, self.student, event.value)

    @on(OptionList.OptionHighlighted, "#students")
    def _student_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self._choose(event.option.id)

    @on(OptionList.OptionHighlighted, "#guardians")
    def _guardian_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            guardian = self.gate.kiosk.roster.guardians.get(event.option.id)
            self.query_one("#guardian-photo", Static).update(
                self.gate.photo("guardians", event.option.id, guardian.name if guardian else None))

    @on(OptionList.OptionSelected, "#students")
    def _student_selected(self, event: OptionList.OptionSelected) -> None:
        self._choose(event.option.id)
        self.query_one("#guardians", OptionList).focus()

    @on(OptionList.OptionSelected, "#guardians")
    def _guardian_selected(self, event: OptionList.OptionSelected) -> None:
        if self.student and event.option.id:
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
