"""``schoolgate demo`` without --headless: the guard's console on the demo school, played with demo keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from central.core import clock as central_clock
from hardware import SimulatedReader
from kiosk import engine
from kiosk.console import ConfirmPickup, DemoKeys, GateConsole
from schoolgate.demo import demo_school
from sgtest import RunningClock
from sgtest import pilot_until as until

# A Tuesday afternoon at the school (16:30 in Asia/Shanghai), whatever the machine's clock says.
TUESDAY_AFTERNOON = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)


async def test_a_new_user_checks_in_sees_a_barred_guardian_refused_and_confirms_a_pickup(monkeypatch):
    afternoon = RunningClock(TUESDAY_AFTERNOON)
    monkeypatch.setattr(central_clock, "utcnow", afternoon)  # central's, for the demo's session and its roster
    # The kiosk's and the reader's clock, moved on by hand past the repeat-tap debounce below.
    later = [timedelta(0)]

    def clock() -> datetime:
        return afternoon() + later[0]

    with demo_school(clock=clock) as school:
        gate = school.gate
        reader = SimulatedReader(clock=clock)
        keys = DemoKeys(reader, gate.store.roster)
        app = GateConsole(gate, reader=reader, demo=keys, confirm_arm=0.0)

        def kinds():
            return [e["kind"] for e in gate.store.day_events(gate.state.day)]

        try:
            async with app.run_test() as pilot:
                await pilot.press("d")  # the guard signs in with their staff card
                await until(pilot, lambda: gate.state.guard is not None, "the guard signed in")
                assert "值守：王师傅" in str(app.main["sync"].render())
                await pilot.press("1", "2", "3")
                await until(pilot, lambda: kinds().count("checkin") == 3, "three check-ins")
                assert "在校 3" in str(app.main["counters"].render())
                await pilot.press("b")  # the barred guardian taps, then the child they may not take
                await until(pilot, lambda: "pickup_denied" in kinds(), "the barred guardian refused")
                assert "alarm" in app.main["banner"].classes
                later[0] = engine.DEBOUNCE + timedelta(seconds=0.1)  # past the repeat-tap debounce
                await pilot.press("1", "g")  # the first child, then one of their guardians
                await until(pilot, lambda: isinstance(app.screen, ConfirmPickup), "the pickup confirmation")
                await pilot.press("enter")
                await until(pilot, lambda: "pickup" in kinds(), "the confirmed pickup")
                await until(pilot, lambda: "已离校 1" in str(app.main["counters"].render()), "the counters")
                await until(pilot, lambda: gate.store.queue_depth() == 0, "every event at central")
        finally:
            reader.close()
        assert len(school.events()) == len(kinds())
