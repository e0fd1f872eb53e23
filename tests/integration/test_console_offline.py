"""The console with no broker: decisions keep coming and the footer's queue grows; when the broker
(and central behind it) appears, the queue drains. Embedded broker: the test owns its port."""

from __future__ import annotations

import uuid

from central.admin import central_key, create_school, register_kiosk
from central.core.config import Settings
from central.server import CentralServer
from gateway import protocol

from gateway.mqtt import free_port
from gateworld import KEY, snapshot
from hardware import SimulatedReader
from kiosk.config import KioskSettings
from kiosk.console import GateConsole
from kiosk.runtime import Kiosk
from sgtest import Broker, pilot_until as until


def footer(app: GateConsole) -> str:
    app.refresh_status()
    return str(app.main["sync"].render())


async def test_console_without_a_broker_keeps_deciding_and_drains_when_it_appears(tmp_path):
    broker = Broker(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    prefix = f"sgtest-{uuid.uuid4().hex[:8]}/v1"
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.sqlite3'}", mqtt_url=broker.central_url, topic_prefix=prefix)
    gate = Kiosk(KioskSettings(school="s1", kiosk="k1", data_dir=tmp_path / "kiosk", mqtt_url=broker.url, topic_prefix=prefix,
                               secret=KEY.hex(), resend_after=2.0, central_key=central_key(settings))).start()
    gate.store.apply_snapshot(protocol.RosterSnapshot.model_validate(snapshot()))
    reader = SimulatedReader()
    app = GateConsole(gate, reader=reader)
    try:
        async with app.run_test() as pilot:
            for uid in ("5A5A5A5A", "01020304", "0A0B0C0D"):  # a teacher on duty, two unknown cards
                reader.present(uid)
            # Recorded by the kiosk first, then shown by the console: wait for both.
            await until(pilot, lambda: gate.store.queue_depth() == 3 and len(app.recent) == 3, "three decisions recorded offline and shown")
            assert [d.outcome for d in reversed(app.recent)] == ["staff_on", "unknown_card", "unknown_card"]
            assert "离线" in footer(app) and "待上传 3" in footer(app)
            with broker:
                create_school(settings, code="s1", name="s1")
                register_kiosk(settings, school="s1", kiosk="k1", secret=KEY.hex())
                with CentralServer(settings, port=free_port()):
                    await until(pilot, lambda: gate.store.queue_depth() == 0, "the queue to drain", timeout=40)
                    await until(pilot, lambda: "在线" in footer(app) and "待上传 0" in footer(app), "the footer online")
    finally:
        reader.close()
        gate.close()
