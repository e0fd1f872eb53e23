"""The guard's console driven by Textual's own pilot (``App.run_test``), with a hand-moved clock."""

from __future__ import annotations

import pytest
from gateworld import CODE, GUARD_CARD, KEY, Clock, local, sign_in, snapshot
from sgtest import pilot_until as until
from textual import events
from textual.widgets import Static

from gateway import protocol
from hardware import SimulatedReader, cardnumber
from kiosk.config import KioskSettings
from kiosk.console import AlertsScreen, ConfirmPickup, GateConsole, HelpScreen, SearchScreen, VisitorsScreen, open_reader
from kiosk.runtime import Kiosk


def make_gate(tmp_path, clock: Clock, locale: str = "zh_CN") -> Kiosk:
    gate = Kiosk(
        KioskSettings(school="s1", kiosk="k1", data_dir=tmp_path, mqtt_url=None, secret=KEY.hex(), locale=locale),
        sync=False,
        clock=clock,
    )
    gate.store.apply_snapshot(protocol.RosterSnapshot.model_validate(snapshot()))
    return gate


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def gate(tmp_path, clock):
    gate = make_gate(tmp_path, clock)
    yield gate
    gate.close()


@pytest.fixture
def reader(clock):
    reader = SimulatedReader(clock=clock)
    yield reader
    reader.close()


def wedge(app: GateConsole, number: str) -> None:
    """A keyboard-wedge reader: the number and Enter arrive within milliseconds (pilot.press takes ~40 ms a key)."""
    keys = [events.Key(char, char) for char in number] + [events.Key("enter", "\r")]
    for i, key in enumerate(keys):
        # A millisecond apart, as the reader types them, however long this test process was kept off
        # the CPU between two of them (a loaded machine once spread a burst past the 50 ms gap).
        key.time = keys[0].time + i / 1000
        app.post_message(key)


def kinds(gate: Kiosk) -> list[str]:
    return [e["kind"] for e in gate.store.day_events(gate.state.day)]


def banner(app: GateConsole):
    widget = app.main["banner"]
    return set(widget.classes), str(widget.render())


async def test_checkin_shows_green_and_moves_the_counters(gate, reader, clock):
    app = GateConsole(gate, confirm_arm=0.0, reader=reader)
    async with app.run_test() as pilot:
        reader.present("04A1B2C3")
        await until(pilot, lambda: "checkin" in kinds(gate), "the check-in event")
        await until(pilot, lambda: "allowed" in banner(app)[0], "a green banner")
        classes, text = banner(app)
        assert "王子涵" in text and "已签到" in text
        app.refresh_status()
        assert "在校 1" in str(app.main["counters"].render())
        assert "应到 3" in str(app.main["counters"].render())


async def checked_in(pilot, app, gate, reader, card="04A1B2C3"):
    reader.present(card)
    await until(pilot, lambda: "checkin" in kinds(gate), "the check-in")


async def pickup_asked(pilot, app, gate, reader, clock) -> None:
    """The guard is signed in; S1 checks in; a moment later 王建国 taps, then S1: the confirmation is up."""
    sign_in(gate)
    await checked_in(pilot, app, gate, reader)
    clock.advance(seconds=5)
    reader.present("DEADBEEF")
    reader.present("04A1B2C3")
    await until(pilot, lambda: isinstance(app.screen, ConfirmPickup), "the confirmation")


async def test_pickup_waits_for_enter_then_is_recorded(gate, reader, clock):
    app = GateConsole(gate, confirm_arm=0.0, reader=reader)
    sign_in(gate)
    async with app.run_test() as pilot:
        await checked_in(pilot, app, gate, reader)
        clock.advance(minutes=50)
        reader.present("DEADBEEF")  # the guardian
        reader.present("04A1B2C3")  # then the child, within 30 s
        await until(pilot, lambda: isinstance(app.screen, ConfirmPickup), "the confirmation")
        assert "pickup" not in kinds(gate)  # nothing is recorded before the guard confirms
        assert "王建国" in str(app.screen.query_one("#confirm-body").render())
        assert "138****1234" in str(app.screen.query_one("#confirm-body").render())
        await pilot.press("enter")
        await until(pilot, lambda: "pickup" in kinds(gate), "the pickup event")
        assert not isinstance(app.screen, ConfirmPickup)
        app.refresh_status()
        assert "已离校 1" in str(app.main["counters"].render())


async def test_guard_may_refuse_an_allowed_pickup_with_esc(gate, reader, clock):
    app = GateConsole(gate, confirm_arm=0.0, reader=reader)
    async with app.run_test() as pilot:
        await checked_in(pilot, app, gate, reader)
        clock.advance(seconds=5)
        reader.present("04A1B2C3")
        reader.present("DEADBEEF")
        await until(pilot, lambda: isinstance(app.screen, ConfirmPickup), "the confirmation")
        await pilot.press("escape")
        await until(pilot, lambda: "pickup_denied" in kinds(gate), "the refusal")
        # Not simply the last event: the console's alert timer may record another child's "absent" after it.
        denied = [e for e in gate.store.day_events(gate.state.day) if e["kind"] == "pickup_denied"]
        assert [e["reason"] for e in denied] == ["guard_refused"] and "pickup" not in kinds(gate)


async def test_barred_guardian_is_refused_in_red_with_an_alarm(gate, reader, clock):
    app = GateConsole(gate, confirm_arm=0.0, reader=reader)
    bells = []
    app.bell = lambda: bells.append(1)
    async with app.run_test() as pilot:
        await checked_in(pilot, app, gate, reader)
        clock.advance(seconds=5)
        reader.present("99AABBCC")  # 王某, barred by a custody order
        reader.present("04A1B2C3")
        await until(pilot, lambda: "pickup_denied" in kinds(gate), "pickup_denied")
        await until(pilot, lambda: "alarm" in banner(app)[0], "the alarm banner")
        assert "禁止接送" in banner(app)[1]
        assert bells and not isinstance(app.screen, ConfirmPickup)
        assert [e["reason"] for e in gate.store.day_events(gate.state.day) if e["kind"] == "pickup_denied"] == ["barred"]


async def test_one_time_code_is_used_once_and_refused_the_second_time(gate, reader, clock):
    app = GateConsole(gate, confirm_arm=0.0, reader=reader)
    sign_in(gate)
    async with app.run_test() as pilot:
        await checked_in(pilot, app, gate, reader)
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen), "the search screen")
        await pilot.press(*"S1")
        await pilot.press("enter")  # to the list of children
        await pilot.press("enter")  # pick the highlighted child
        screen = app.screen
        assert screen.student == "S1"
        assert "王建国" in str(screen.query_one("#guardians").get_option_at_index(0).prompt)
        assert "王某" in str(screen.query_one("#barred").render())
        await pilot.pause()
        assert "无照片" in str(screen.query_one("#child-photo").render())
        assert "王\n" in str(screen.query_one("#guardian-photo").render())  # 王建国's placeholder
        screen.query_one("#code").focus()
        await pilot.press(*CODE, "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmPickup), "the confirmation")
        await pilot.press("enter")
        await until(pilot, lambda: "pickup" in kinds(gate), "the pickup")
        assert [e["note"] for e in gate.store.day_events(gate.state.day) if e["kind"] == "pickup"] == ["code:7"]
        screen.query_one("#code").focus()
        await pilot.press(*CODE, "enter")
        await until(pilot, lambda: app.recent[0].outcome == "code_used", "the second use refused")
        assert "refused" in banner(app)[0]


async def test_visitor_signs_in_and_out(gate, clock):
    app = GateConsole(gate, confirm_arm=0.0)
    async with app.run_test() as pilot:
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, VisitorsScreen), "the visitors screen")
        await pilot.press(*"刘师傅", "tab", *"123X", "tab", *"送货", "tab", *"总务处", "enter")
        await until(pilot, lambda: "visitor_in" in kinds(gate), "visitor_in")
        assert app.screen.query_one("#on-site").row_count == 1
        app.screen.query_one("#on-site").focus()
        await pilot.press("enter")
        await until(pilot, lambda: "visitor_out" in kinds(gate), "visitor_out")
        assert app.screen.query_one("#on-site").row_count == 0 and gate.state.visitors == {}


async def test_a_bad_visitor_row_is_refused_with_a_reason_and_nothing_recorded(gate):
    app = GateConsole(gate, confirm_arm=0.0)
    async with app.run_test() as pilot:
        await pilot.press("v")
        await pilot.press(*"刘师傅", "tab", *"12", "tab", *"送货", "tab", *"总务处", "enter")
        await pilot.pause()
        assert "visitor_in" not in kinds(gate)
        assert any("身份证" in str(n.message) for n in app._notifications)


async def test_late_pickup_alert_appears_at_its_time(gate, reader, clock):
    app = GateConsole(gate, confirm_arm=0.0, reader=reader, alert_every=0.05)
    async with app.run_test() as pilot:
        await checked_in(pilot, app, gate, reader)
        clock.now = local("17:34")
        app.check_alerts()  # the timer's own check, run here so that it has surely run at 17:34
        await pilot.pause()
        assert not any(e.get("reason") == "late_pickup" for e in gate.store.day_events(gate.state.day))
        clock.now = local("17:35")
        await until(pilot, lambda: any(e.get("reason") == "late_pickup" for e in gate.store.day_events(gate.state.day)),
                    "the late-pickup alert event")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen), "the alerts screen")

        def rows() -> list[str]:
            table = app.screen.query_one("#alerts")
            return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]

        # The screen fills its table once mounted: on a loaded machine that can come a frame after the screen.
        await until(pilot, lambda: any("超时未接" in row and "王子涵" in row for row in rows()), "the late-pickup row")


async def test_keyboard_wedge_burst_is_a_tap_and_slow_typing_is_not(gate, clock):
    app = GateConsole(gate, confirm_arm=0.0, wedge_format="decimal")
    number = cardnumber.render("04A1B2C3", "decimal")
    async with app.run_test() as pilot:
        for digit in number:  # a person at the keyboard: a pause between keys
            await pilot.press(digit)
            await pilot.pause(0.1)
        await pilot.press("enter")
        await pilot.pause()
        assert kinds(gate) == []
        wedge(app, number)  # the reader: the whole number at once
        await until(pilot, lambda: kinds(gate) == ["checkin"], "the wedge tap")
        assert gate.store.day_events(gate.state.day)[0]["card"] == "04A1B2C3"


async def test_wedge_burst_into_a_text_field_is_a_tap_and_leaves_the_field_clean(gate, clock):
    app = GateConsole(gate, confirm_arm=0.0)
    number = cardnumber.render("04A1B2C3", "decimal")
    async with app.run_test() as pilot:
        await pilot.press("v")
        await pilot.press("刘")
        wedge(app, number)
        await until(pilot, lambda: kinds(gate) == ["checkin"], "the wedge tap")
        assert app.screen.query_one("#visitor_name").value == "刘"


async def test_override_admits_a_refused_child_with_a_reason(gate, reader, clock):
    app = GateConsole(gate, confirm_arm=0.0, reader=reader)
    async with app.run_test() as pilot:
        reader.present("AABBCCDD")  # not enrolled
        await until(pilot, lambda: app.last_refused is not None, "the refusal")
        await pilot.press("o")
        await pilot.press(*"家长电话确认", "enter")
        await until(pilot, lambda: "override" in kinds(gate), "the override")
        assert gate.state.on_site("S3")


async def test_english_console(tmp_path, clock):
    gate = make_gate(tmp_path, clock, locale="en")
    reader = SimulatedReader(clock=clock)
    app = GateConsole(gate, confirm_arm=0.0, reader=reader)
    try:
        async with app.run_test() as pilot:
            reader.present("04A1B2C3")
            await until(pilot, lambda: "checked in" in banner(app)[1], "an English banner")
            app.refresh_status()
            assert "On site 1" in str(app.main["counters"].render())
    finally:
        reader.close()
        gate.close()


def test_console_reads_a_wedge_on_its_own_keys_and_opens_other_readers():
    assert open_reader("keyboard?format=hex&gap=0.1") == (None, {"wedge_format": "hex", "wedge_gap": 0.1})
    reader, options = open_reader("sim")
    assert isinstance(reader, SimulatedReader) and options == {}
    reader.close()


async def test_photos_from_the_cache_are_drawn_and_a_missing_one_is_a_placeholder(gate, reader, tmp_path):
    from PIL import Image

    Image.new("RGB", (60, 80), (180, 120, 90)).save(tmp_path / "s1.jpg")
    gate.photo_path = lambda kind, ref: tmp_path / "s1.jpg" if (kind, ref) == ("students", "S1") else None
    app = GateConsole(gate, confirm_arm=0.0, reader=reader)
    async with app.run_test() as pilot:
        reader.present("04A1B2C3")
        await until(pilot, lambda: app.recent and app.recent[0].student == "S1", "S1's check-in")
        assert "▀" in str(app.main["photo"].render())
        reader.present("0000000A")
        await until(pilot, lambda: app.recent[0].student == "S4", "S4's check-in")
        assert "无照片" in str(app.main["photo"].render())


def test_photo_sync_with_central_out_of_reach_is_logged_not_raised(tmp_path, caplog):
    from gateway.mqtt import free_port

    gate = Kiosk(KioskSettings(school="s1", kiosk="k1", data_dir=tmp_path, mqtt_url=None, secret=KEY.hex(),
                               central_url=f"http://127.0.0.1:{free_port()}"), sync=False)
    try:
        assert gate.sync_photos() is None and gate.photo_path("students", "S1") is None
        assert "photos not synced" in caplog.text
    finally:
        gate.close()


async def test_roll_call_and_help_screens(gate, reader):
    app = GateConsole(gate, confirm_arm=0.0, reader=reader)
    async with app.run_test() as pilot:
        reader.present("04A1B2C3")
        await until(pilot, lambda: "checkin" in kinds(gate), "the check-in")
        await pilot.press("r")
        text = str(app.screen.query_one(Static).render())
        assert "当前在校学生 1 人" in text and "课后托管 · 教学楼201" in text and "王子涵" in text
        await pilot.press("escape", "question_mark")
        text = str(app.screen.query_one(Static).render())
        assert "紧急点名" in text and "键盘式读卡器" in text


async def test_many_alerts_at_once_make_one_banner_and_are_all_listed(gate):
    app = GateConsole(gate, confirm_arm=0.0, alert_every=3600)
    async with app.run_test() as pilot:
        gate.clock.now = local("16:45")  # S1, S2 (session 10) and S4 (session 11) are absent
        app.check_alerts()
        await pilot.pause()
        assert "新提醒 3 条" in banner(app)[1]
        assert len(app.alerts) == 3 and [e["reason"] for e in gate.store.day_events(gate.state.day)] == ["absent"] * 3


async def test_a_fault_while_confirming_is_a_red_banner_and_the_console_stays_up(gate, reader, clock, monkeypatch):
    app = GateConsole(gate, confirm_arm=0.0, reader=reader)
    async with app.run_test() as pilot:
        await pickup_asked(pilot, app, gate, reader, clock)

        def broken(*args, **kwargs):
            raise OSError("disk I/O error")

        monkeypatch.setattr(gate.store, "record", broken)
        await pilot.press("enter")
        await until(pilot, lambda: "终端故障" in banner(app)[1], "the fault banner")
        assert "refused" in banner(app)[0] and app.is_running


async def test_an_enter_meant_for_another_field_does_not_confirm_a_pickup_that_just_popped_up(gate, reader, clock):
    seconds = [100.0]  # the console's monotonic clock, moved by hand: a slow machine cannot arm it early
    app = GateConsole(gate, reader=reader, confirm_arm=0.5, monotonic=lambda: seconds[0])
    async with app.run_test() as pilot:
        await pickup_asked(pilot, app, gate, reader, clock)
        seconds[0] += 0.25
        await pilot.press("enter")  # before it is armed: the guard was typing
        await pilot.pause()  # the Enter is handled once the app is idle again
        assert "pickup" not in kinds(gate) and isinstance(app.screen, ConfirmPickup)
        seconds[0] += 0.25  # confirm_arm (0.5 s) after it showed: armed
        await pilot.press("enter")
        await until(pilot, lambda: "pickup" in kinds(gate), "the pickup once the guard has seen it")


async def test_a_custody_order_arriving_while_the_guard_looks_refuses_the_enter(gate, reader, clock):
    from gateworld import snapshot

    app = GateConsole(gate, reader=reader, confirm_arm=0.0)
    async with app.run_test() as pilot:
        await pickup_asked(pilot, app, gate, reader, clock)
        changed = snapshot(version=4)
        changed["guardians"][0]["links"][0]["barred"] = True  # g1 is barred from S1 by a court order
        gate.store.apply_snapshot(protocol.RosterSnapshot.model_validate(changed))
        await pilot.press("enter")
        await until(pilot, lambda: "pickup_denied" in kinds(gate), "the refusal")
        assert "pickup" not in kinds(gate) and "alarm" in banner(app)[0]


async def test_override_pickup_of_a_child_not_seen_on_site_survives_a_restart(tmp_path, clock):
    gate = make_gate(tmp_path, clock)
    shown = gate.pickup("S1", "g1")
    assert shown.outcome == "not_on_site" and shown.overridable
    asked = gate.override_pickup(shown, "孩子随家长从校医室过来")
    assert asked.outcome == "pickup_allowed" and asked.confirm
    gate.refuse(asked.confirm)  # the guard changes their mind: the child stays in their care
    before = gate.counts()
    gate.close()
    again = make_gate(tmp_path, clock)
    try:
        assert again.counts() == before and again.state.on_site("S1")
        with pytest.raises(ValueError, match="override_not_needed"):
            again.override("S1", "再次放行")
    finally:
        again.close()


def test_a_code_pickup_overridden_for_a_child_not_on_site_records_the_code_and_the_person(tmp_path, clock):
    gate = make_gate(tmp_path, clock)
    try:
        sign_in(gate)
        shown = gate.pickup_code("S1", CODE)
        assert shown.outcome == "not_on_site" and shown.note == "code:7"
        asked = gate.override_pickup(shown, "舅舅持接送码，孩子在校医室")
        done = gate.confirm(asked.confirm)
        event = gate.store.day_events(gate.state.day)[-1]
        assert done.outcome == "pickup_done" and (event["kind"], event["note"]) == ("pickup", "code:7")
        assert gate.pickup_code("S1", CODE).outcome == "code_used"
    finally:
        gate.close()


async def test_help_is_read_from_the_bindings(gate):
    app = GateConsole(gate, confirm_arm=0.0)
    async with app.run_test() as pilot:
        app.bind("x", "rollcall", description="一个新键")  # a key added to the console shows in help by itself
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        text = str(app.screen.query_one(Static).render())
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        assert "x     一个新键" in lines
        assert "/     查找学生 / 无卡接送 / 接送码" in lines and "q     退出" in lines
        assert "Enter 确认放行" in lines and "Esc   拒绝" in lines  # the pickup modal's own bindings


async def test_the_footer_and_counters_follow_the_kiosk_without_being_asked(gate, clock):
    """The status watcher posts what changed: nothing on the UI thread asks the store."""
    app = GateConsole(gate, confirm_arm=0.0, status_every=0.02, alert_every=3600)
    async with app.run_test() as pilot:
        assert "待上传 0" in str(app.main["sync"].render())
        gate.visitor_in("刘师傅", "123X", "送货", "总务处")  # recorded behind the console's back
        await until(pilot, lambda: "待上传 1" in str(app.main["sync"].render()), "the footer's queue")
        clock.now = local("16:45")  # past session 10's and 11's absent times: S1, S2, S4 absent
        await until(pilot, lambda: "缺勤 3" in str(app.main["counters"].render()), "the absent count")
