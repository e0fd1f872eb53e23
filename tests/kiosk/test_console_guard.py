"""Guards sign in at the console with their staff card, out with a key or the card again; every event
the console records carries the signed-in guard as ``operator``; a pickup is not confirmed while nobody
is signed in (check-ins still work); the footer names who is on duty at this gate."""

from __future__ import annotations

import pytest
from gateworld import GUARD_CARD, KEY, Clock, snapshot
from sgtest import pilot_until as until

from gateway import protocol
from hardware import SimulatedReader
from kiosk.config import KioskSettings
from kiosk.console import ConfirmPickup, GateConsole
from kiosk.runtime import Kiosk

TEACHER_CARD = "5A5A5A5A"  # 李老师 (st1): on duty, but not a guard


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def gate(tmp_path, clock):
    gate = Kiosk(KioskSettings(school="s1", kiosk="k1", data_dir=tmp_path, mqtt_url=None, secret=KEY.hex()),
                 sync=False, clock=clock)
    gate.store.apply_snapshot(protocol.RosterSnapshot.model_validate(snapshot()))
    yield gate
    gate.close()


@pytest.fixture
def reader(clock):
    reader = SimulatedReader(clock=clock)
    yield reader
    reader.close()


def events(gate: Kiosk) -> list[dict]:
    return gate.store.day_events(gate.state.day)


def recorded(gate: Kiosk) -> list[tuple]:
    """(kind, staff, note, operator) of each event recorded today."""
    return [(e["kind"], e.get("staff"), e.get("note"), e.get("operator")) for e in events(gate)]


def footer(app: GateConsole) -> str:
    return str(app.main["sync"].render())


def banner(app: GateConsole) -> str:
    return str(app.main["banner"].render())


async def test_a_guard_signs_in_with_their_card_and_out_with_the_key(gate, reader):
    app = GateConsole(gate, reader=reader, confirm_arm=0.0, alert_every=3600)
    async with app.run_test() as pilot:
        assert "无人值守（门卫请刷卡签到）" in footer(app)
        reader.present(GUARD_CARD)
        await until(pilot, lambda: "门卫刘师傅已签到" in banner(app), "the sign-in on the banner")
        assert footer(app).startswith("值守：刘师傅 · ")
        assert recorded(gate) == [("staff_on", "st2", "guard", "st2")]
        await pilot.press("s")
        await until(pilot, lambda: "门卫刘师傅已签退" in banner(app), "the sign-out on the banner")
        assert "无人值守" in footer(app) and gate.state.guard is None
        assert recorded(gate)[-1] == ("staff_off", "st2", "guard", "st2")
        await pilot.press("s")  # nobody is signed in: told so, nothing recorded
        await pilot.pause()
        assert len(events(gate)) == 2
        assert any("当前无人在本门签到值守" in str(n.message) for n in app._notifications)


async def test_a_guard_signs_out_by_tapping_their_card_again(gate, reader, clock):
    app = GateConsole(gate, reader=reader, confirm_arm=0.0, alert_every=3600)
    async with app.run_test() as pilot:
        reader.present(GUARD_CARD)
        await until(pilot, lambda: gate.state.guard == "st2", "the sign-in")
        clock.advance(seconds=5)  # past the 2 s debounce: a second tap, not the card held on the reader
        reader.present(GUARD_CARD)
        await until(pilot, lambda: "门卫刘师傅已签退" in banner(app), "the sign-out on the banner")
        assert "无人值守" in footer(app)
        assert recorded(gate) == [("staff_on", "st2", "guard", "st2"), ("staff_off", "st2", "guard", "st2")]


async def test_a_pickup_is_not_confirmed_while_nobody_is_signed_in_and_check_ins_still_work(gate, reader, clock):
    app = GateConsole(gate, reader=reader, confirm_arm=0.0, alert_every=3600)
    async with app.run_test() as pilot:
        reader.present(TEACHER_CARD)  # a teacher on duty is not a guard at the gate
        reader.present("04A1B2C3")  # S1 checks in with nobody signed in
        await until(pilot, lambda: [e["kind"] for e in events(gate)] == ["staff_on", "checkin"], "the check-in")
        assert "无人值守" in footer(app)
        clock.advance(seconds=5)
        reader.present("DEADBEEF")  # 王建国, then S1: the pickup waits for the guard
        reader.present("04A1B2C3")
        await until(pilot, lambda: isinstance(app.screen, ConfirmPickup), "the confirmation")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmPickup) and "pickup" not in [e["kind"] for e in events(gate)]
        assert any("无人签到值守，不能确认接送" in str(n.message) for n in app._notifications)

        reader.present(GUARD_CARD)  # the guard comes, taps in, and lets the child go
        await until(pilot, lambda: gate.state.guard == "st2", "the guard's sign-in")
        await pilot.press("enter")
        await until(pilot, lambda: "pickup" in [e["kind"] for e in events(gate)], "the pickup")
        assert not isinstance(app.screen, ConfirmPickup)


async def test_every_event_recorded_while_a_guard_is_signed_in_carries_them_as_operator(gate, reader, clock):
    app = GateConsole(gate, reader=reader, confirm_arm=0.0, alert_every=3600)
    async with app.run_test() as pilot:
        reader.present("0000000A")  # S4, before anyone signs in: no operator
        reader.present(GUARD_CARD)
        reader.present("04A1B2C3")  # S1
        await until(pilot, lambda: len(events(gate)) == 3, "three events")
        clock.advance(seconds=5)
        reader.present("DEADBEEF")
        reader.present("04A1B2C3")
        await until(pilot, lambda: isinstance(app.screen, ConfirmPickup), "the confirmation")
        await pilot.press("enter")
        await until(pilot, lambda: "pickup" in [e["kind"] for e in events(gate)], "the pickup")
        await pilot.press("v")
        await pilot.press(*"刘师傅", "tab", *"123X", "tab", *"送货", "tab", *"总务处", "enter")
        await until(pilot, lambda: "visitor_in" in [e["kind"] for e in events(gate)], "the visitor")
        await pilot.press("escape", "s")
        await until(pilot, lambda: gate.state.guard is None, "the sign-out")
        clock.advance(seconds=5)
        reader.present("04112233445566")  # S2 after the sign-out: no operator
        await until(pilot, lambda: len(events(gate)) == 7, "the last check-in")
    assert [(e["kind"], e.get("operator")) for e in events(gate)] == [
        ("checkin", None), ("staff_on", "st2"), ("checkin", "st2"), ("pickup", "st2"), ("visitor_in", "st2"),
        ("staff_off", "st2"), ("checkin", None),
    ]
