"""SVG snapshots (pytest-textual-snapshot) of the main screen (nobody signed in, and a guard on duty),
the pickup modal and the alerts screen, in zh_CN and en. After a deliberate change to the console: ``scripts/test tests/kiosk --snapshot-update``."""

from __future__ import annotations

import pytest

from gateway import protocol
from gateworld import GUARD_CARD, KEY, Clock, local, snapshot
from hardware import CardTap
from kiosk.config import KioskSettings
from kiosk.console import GateConsole
from kiosk.runtime import Kiosk

SIZE = (110, 34)


@pytest.fixture(params=["zh_CN", "en"])
def console(request, tmp_path):
    clock = Clock(local("16:40"))
    gate = Kiosk(
        KioskSettings(school="s1", kiosk="k1", data_dir=tmp_path, mqtt_url=None, secret=KEY.hex(), locale=request.param),
        sync=False,
        clock=clock,
    )
    gate.store.apply_snapshot(protocol.RosterSnapshot.model_validate(snapshot()))
    app = GateConsole(gate, alert_every=3600)
    app.clock = clock
    yield app
    gate.close()


def tap(app: GateConsole, uid: str, **later: float) -> None:
    now = app.clock.advance(**later) if later else app.clock()
    app.show(app.kiosk.handle(CardTap(uid=uid, tech="sim", reader="sim", read_at=now)))


async def afternoon(pilot) -> None:
    app = pilot.app
    tap(app, "04A1B2C3")
    tap(app, "0000000A", seconds=40)
    tap(app, "5A5A5A5A", seconds=40)
    tap(app, "99AABBCC", seconds=40)  # the barred guardian, then the child: refused in red
    tap(app, "04A1B2C3", seconds=5)
    await pilot.pause()


async def guard_on_duty(pilot) -> None:
    """刘师傅 signs in at this gate, then the afternoon: the footer names him."""
    tap(pilot.app, GUARD_CARD)
    await afternoon(pilot)


async def pickup(pilot) -> None:
    app = pilot.app
    tap(app, "04A1B2C3")
    tap(app, "DEADBEEF", minutes=30)
    tap(app, "04A1B2C3", seconds=5)
    await pilot.pause()


async def alerts(pilot) -> None:
    app = pilot.app
    tap(app, "04A1B2C3")
    tap(app, "01020304", seconds=10)  # an unknown card
    app.clock.now = local("17:40")
    app.check_alerts()
    await pilot.press("a")
    await pilot.pause()


def test_main_screen(console, snap_compare):
    assert snap_compare(console, run_before=afternoon, terminal_size=SIZE)


def test_main_screen_with_a_guard_signed_in(console, snap_compare):
    assert snap_compare(console, run_before=guard_on_duty, terminal_size=SIZE)


def test_pickup_modal(console, snap_compare):
    assert snap_compare(console, run_before=pickup, terminal_size=SIZE)


def test_alerts_screen(console, snap_compare):
    assert snap_compare(console, run_before=alerts, terminal_size=SIZE)
