"""``schoolgate demo``: broker, central and one kiosk side by side with a generated school.

Wiring only: every step is a call into the packages, as a school's own installation makes it.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from pathlib import Path

import httpx

from central.admin import import_files, register_kiosk
from central.core.config import Settings
from central.demo import enroll_demo_students, write_demo_roster
from central.server import CentralServer
from gateway.broker import EmbeddedBroker
from gateway.mqtt import free_port
from hardware import SimulatedReader
from kiosk.config import KioskSettings
from kiosk.runtime import Kiosk

log = logging.getLogger("schoolgate.demo")
SCHOOL, KIOSK = "demo-school", "gate-1"


def _wait(condition, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def run_demo(*, headless: bool, timeout: float = 60.0) -> dict:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="schoolgate-demo-") as tmp:
        folder = Path(tmp)
        embedded = EmbeddedBroker("127.0.0.1", free_port()).start()
        settings = Settings(database_url=f"sqlite:///{folder / 'central.sqlite3'}", mqtt_url=embedded.url)
        central = CentralServer(settings, port=free_port()).start()
        gate = reader = None
        try:
            secret = register_kiosk(settings, school=SCHOOL, kiosk=KIOSK)
            students_csv, guardians_csv = write_demo_roster(folder / "roster")
            import_files(settings, school=SCHOOL, students=students_csv, guardians=guardians_csv, school_name="示范小学")
            # Imported students are not in the service: each goes through the consent chain first (P2.1).
            enrolled = enroll_demo_students(settings, school=SCHOOL)
            version = enrolled.version if enrolled else 1
            log.info("central at %s (API token: %s)", central.url, settings.api_token.get_secret_value())

            gate = Kiosk(
                KioskSettings(school=SCHOOL, kiosk=KIOSK, data_dir=folder / "kiosk", secret=secret, mqtt_url=embedded.url)
            ).start()
            if not _wait(lambda: gate.store.roster.version >= version, timeout):
                raise RuntimeError("the kiosk never received its roster")
            reader = SimulatedReader()
            stop = threading.Event()
            shown: list[dict] = []

            def on_decision(decision: dict) -> None:
                shown.append(decision)
                if not headless:
                    log.info("%s  %s", decision["tone"], decision["message"])

            loop = threading.Thread(target=gate.run, args=(reader, _Null(), stop, on_decision), daemon=True)
            loop.start()
            cards = [s.cards[0] for s in gate.store.roster.students.values() if s.cards]
            for uid in cards:
                reader.present(uid)
            _wait(lambda: len(shown) >= len(cards), timeout)
            _wait(lambda: gate.store.queue_depth() == 0, timeout)
            stop.set()
            loop.join(5)

            headers = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
            events = httpx.get(
                f"{central.url}/api/v1/schools/{SCHOOL}/events", params={"limit": 1000}, headers=headers, timeout=10
            ).json()
            taps = len(shown)
            summary = {
                "taps": taps,
                "events_at_central": len(events),
                "outbox_left": gate.store.queue_depth(),
                "kiosk_roster_version": gate.store.roster.version,
                "seconds": round(time.monotonic() - started, 2),
            }
            summary["ok"] = (
                taps == len(cards)
                and all(d["event"] == "checkin" for d in shown)
                and summary["events_at_central"] == taps
                and len({e["seq"] for e in events}) == len(events)
                and summary["outbox_left"] == 0
            )
            if not headless:
                log.info("summary: %s", json.dumps(summary, ensure_ascii=False))
            return summary
        finally:
            if reader:
                reader.close()
            if gate:
                gate.close()
            central.stop()
            embedded.stop()


class _Null:
    def write(self, _text: str) -> None:
        pass

    def flush(self) -> None:
        pass
