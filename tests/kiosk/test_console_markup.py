"""Names from the roster (and what a guard types) are shown as text on every screen, never parsed as
Textual markup: ``王子涵[/]`` must not crash the console, ``[black on black]王某`` must not hide a barred
name (issue 11, item 12)."""

from __future__ import annotations

import pytest
from gateworld import CODE, KEY, Clock, local, sign_in, snapshot
from sgtest import pilot_until as until
from textual.widget import Widget

from gateway import protocol
from hardware import SimulatedReader
from kiosk.config import KioskSettings
from kiosk.console import AlertsScreen, ConfirmPickup, GateConsole, OverrideScreen, RollCallScreen, SearchScreen, VisitorsScreen
from kiosk.runtime import Kiosk

CHILD = "王子涵[/]"  # an unmatched closing tag: Textual's markup parser raises on it
CLASS = "[reverse]三年级1班"
FATHER = "王建国[/]"
RELATION = "[dim]父亲"
BARRED = "[black on black]王某"  # as markup it would paint the barred name invisible
NOT_ENROLLED = "张浩然[/b]"
CODE_PERSON = "[red]王舅舅[/]"
SIZE = (160, 40)


def marked_up_snapshot() -> dict:
    roster = snapshot()
    students = {s["id"]: s for s in roster["students"]}
    guardians = {g["id"]: g for g in roster["guardians"]}
    students["S1"].update(name=CHILD, **{"class": CLASS})
    students["S3"]["name"] = NOT_ENROLLED
    guardians["g1"].update(name=FATHER, relation=RELATION)
    guardians["g5"]["name"] = BARRED
    roster["codes"][0]["person"] = CODE_PERSON
    return roster


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def gate(tmp_path, clock):
    gate = Kiosk(
        KioskSettings(school="s1", kiosk="k1", data_dir=tmp_path, mqtt_url=None, secret=KEY.hex(), locale="zh_CN"),
        sync=False,
        clock=clock,
    )
    gate.store.apply_snapshot(protocol.RosterSnapshot.model_validate(marked_up_snapshot()))
    sign_in(gate)
    yield gate
    gate.close()


@pytest.fixture
def reader(clock):
    reader = SimulatedReader(clock=clock)
    yield reader
    reader.close()


def on_screen(widget: Widget) -> str:
    """What the widget paints, as plain text: the lines the compositor would put on the terminal."""
    return "\n".join(strip.text for strip in widget.render_lines(widget.size.region))


def styles_of(widget: Widget, needle: str) -> list:
    """The styles of every painted segment that holds ``needle``."""
    return [seg.style for strip in widget.render_lines(widget.size.region) for seg in strip if needle in seg.text]


def kinds(gate: Kiosk) -> list[str]:
    return [e["kind"] for e in gate.store.day_events(gate.state.day)]


async def test_main_screen_and_pickup_modal_show_names_as_typed(gate, reader, clock):
    app = GateConsole(gate, confirm_arm=0.0, reader=reader)
    async with app.run_test(size=SIZE) as pilot:
        reader.present("04A1B2C3")  # S1 checks in
        await until(pilot, lambda: "checkin" in kinds(gate), "the check-in")
        await pilot.pause()
        assert app.is_running
        assert "王子涵[/]（[reverse]三年级1班）已签到" in on_screen(app.main["banner"])
        assert "王子涵[/]  [reverse]三年级1班" in on_screen(app.main["details"])
        assert "王子涵[/]（[reverse]三年级1班）已签到" in on_screen(app.main["recent"])

        clock.advance(seconds=5)
        reader.present("99AABBCC")  # the barred guardian alone: their children listed in red
        await until(pilot, lambda: app.recent and app.recent[0].guardian == "g5", "the barred guardian's tap")
        await pilot.pause()
        assert "注意！[black on black]王某被禁止接送" in on_screen(app.main["banner"])
        assert "[black on black]王某" in on_screen(app.main["details"])

        clock.advance(seconds=40)
        reader.present("DEADBEEF")  # the father, then the child: the confirmation
        reader.present("04A1B2C3")
        await until(pilot, lambda: isinstance(app.screen, ConfirmPickup), "the confirmation")
        await pilot.pause()
        body = on_screen(app.screen.query_one("#confirm-body"))
        assert "王子涵[/]  [reverse]三年级1班" in body and "王建国[/]  [dim]父亲  138****1234" in body
        await pilot.press("enter")
        await until(pilot, lambda: "pickup" in kinds(gate), "the pickup")
        assert app.is_running


async def test_search_screen_lists_and_bars_names_as_typed(gate, reader, clock):
    app = GateConsole(gate, confirm_arm=0.0, reader=reader)
    async with app.run_test(size=SIZE) as pilot:
        reader.present("04A1B2C3")
        await until(pilot, lambda: "checkin" in kinds(gate), "the check-in")
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen), "the search screen")
        screen = app.screen
        await pilot.pause()
        assert "王子涵[/]  [reverse]三年级1班  S1" in on_screen(screen.query_one("#students"))
        assert "张浩然[/b]" in on_screen(screen.query_one("#students"))
        await pilot.press(*"S1", "enter", "enter")
        await until(pilot, lambda: screen.student == "S1", "S1 chosen")
        await pilot.pause()
        assert app.is_running
        assert "王子涵[/]（[reverse]三年级1班）的授权接送人" in on_screen(screen.query_one("#child-name"))
        assert "王建国[/]  [dim]父亲  138****1234" in on_screen(screen.query_one("#guardians"))
        barred = screen.query_one("#barred")
        assert "禁止接送：[black on black]王某" in on_screen(barred)
        # and painted in the screen's red, not the roster's black on black
        assert all(style.color != style.bgcolor for style in styles_of(barred, "王某"))

        screen.query_one("#code").focus()
        await pilot.press(*CODE, "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmPickup), "the code's confirmation")
        await pilot.pause()
        assert "[red]王舅舅[/]" in on_screen(app.screen.query_one("#confirm-body"))
        await pilot.press("enter")
        await until(pilot, lambda: "pickup" in kinds(gate), "the pickup by code")
        assert "[red]王舅舅[/]" in on_screen(app.main["recent"])


async def test_visitors_alerts_roll_call_and_override_show_names_as_typed(gate, reader, clock):
    gate.visitor_in("刘[/]师傅", "123X", "[bold]送货", "总务处[/i]")
    app = GateConsole(gate, confirm_arm=0.0, reader=reader, alert_every=3600)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, VisitorsScreen), "the visitors screen")
        await pilot.pause()
        table = on_screen(app.screen.query_one("#on-site"))
        assert "刘[/]师傅" in table and "[bold]送货" in table and "总务处[/i]" in table
        await pilot.press("escape")

        reader.present("AABBCCDD")  # S3, not enrolled: refused, and the guard may admit them
        await until(pilot, lambda: app.last_refused is not None, "the refusal")
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, OverrideScreen), "the override screen")
        await pilot.pause()
        assert "张浩然[/b]未报名课后服务" in "\n".join(on_screen(w) for w in app.screen.query("Static"))
        await pilot.press(*"家长电话确认", "enter")
        await until(pilot, lambda: "override" in kinds(gate), "the override")

        reader.present("04A1B2C3")
        await until(pilot, lambda: "checkin" in kinds(gate), "S1's check-in")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RollCallScreen), "the roll-call")
        await pilot.pause()
        rollcall = on_screen(app.screen.query_one("Static"))
        assert "王子涵[/]  [reverse]三年级1班" in rollcall and "张浩然[/b]" in rollcall
        await pilot.press("escape")

        clock.now = local("16:45")  # S2 and S4 are absent now; S1 is on site
        clock.now = local("17:40")  # and S1 is overdue
        app.check_alerts()
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen), "the alerts screen")
        await pilot.pause()
        assert "超时未接：王子涵[/]（[reverse]三年级1班）仍在校" in on_screen(app.screen.query_one("#alerts"))
        assert app.is_running
