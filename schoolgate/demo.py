"""``schoolgate demo``: broker, central and one kiosk side by side with a generated school.

Wiring only: every step is a call into the packages, as a school's own installation makes it.
With ``--headless`` a scripted afternoon runs (every child checks in, one pickup is confirmed, a
barred guardian is refused) and a JSON summary is printed; without it the guard's console opens
on the demo school, with keys that tap demo cards on a simulated reader.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from central.admin import broker_logins, central_key, create_school, import_files, register_kiosk
from central.core.config import Settings
from central.demo import enroll_demo_students, write_demo_roster
from central.server import CentralServer
from gateway.broker import EmbeddedBroker
from gateway.mqtt import CENTRAL_USER, BrokerAddress, free_port
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


@dataclass
class DemoSchool:
    settings: Settings
    central: CentralServer
    gate: Kiosk

    def events(self) -> list[dict]:
        headers = {"Authorization": f"Bearer {self.settings.api_token.get_secret_value()}"}
        return httpx.get(
            f"{self.central.url}/api/v1/schools/{SCHOOL}/events", params={"limit": 1000}, headers=headers, timeout=10
        ).json()


@contextmanager
def demo_school(
    *, timeout: float = 60.0, locale: str = "zh_CN", clock: Callable[[], datetime] | None = None
) -> Iterator[DemoSchool]:
    """A broker, central with the demo school enrolled, and a kiosk holding its roster.

    ``clock`` (aware, default the wall clock) is the kiosk's, and the demo's session is planned
    from it; a test that passes one pins central's ``clock.utcnow`` to agree."""
    with tempfile.TemporaryDirectory(prefix="schoolgate-demo-") as tmp:
        folder = Path(tmp)
        # No anonymous clients: central logs in with a password made for this run, the kiosk with
        # the login derived from its secret once it is registered.
        broker = BrokerAddress("127.0.0.1", free_port(), CENTRAL_USER, secrets.token_urlsafe(24))
        settings = Settings(
            database_url=f"sqlite:///{folder / 'central.sqlite3'}", mqtt_url=broker.url_with_login(),
            signing_key_file=folder / "central-signing.key",
        )
        embedded = EmbeddedBroker(broker.host, broker.port, logins=broker_logins(settings)).start()
        central = CentralServer(settings, port=free_port()).start()
        gate = None
        try:
            create_school(settings, code=SCHOOL, name="示范小学")
            secret = register_kiosk(settings, school=SCHOOL, kiosk=KIOSK)
            students_csv, guardians_csv = write_demo_roster(folder / "roster")
            import_files(settings, school=SCHOOL, students=students_csv, guardians=guardians_csv)
            # Imported students are not in the service: each goes through the consent chain first (P2.1).
            enrolled = enroll_demo_students(settings, school=SCHOOL, now=clock() if clock else None)
            version = enrolled.version if enrolled else 1
            log.info("central at %s (API token: %s)", central.url, settings.api_token.get_secret_value())
            gate = Kiosk(KioskSettings(school=SCHOOL, kiosk=KIOSK, data_dir=folder / "kiosk", secret=secret,
                                       central_key=central_key(settings), mqtt_url=embedded.url, locale=locale),
                         clock=clock).start()
            if not _wait(lambda: gate.store.roster.version >= version, timeout):
                raise RuntimeError("the kiosk never received its roster")
            yield DemoSchool(settings, central, gate)
        finally:
            if gate:
                gate.close()
            central.stop()
            embedded.stop()


def run_demo(*, headless: bool, timeout: float = 60.0, locale: str = "zh_CN") -> dict:
    started = time.monotonic()
    with demo_school(timeout=timeout, locale=locale) as school:
        if headless:
            summary = _afternoon(school, timeout)
        else:
            summary = _console(school)
        _wait(lambda: school.gate.store.queue_depth() == 0, timeout)
        events = school.events()
        summary.update({
            "events_at_central": len(events),
            "outbox_left": school.gate.store.queue_depth(),
            "kiosk_roster_version": school.gate.store.roster.version,
            "seconds": round(time.monotonic() - started, 2),
        })
        summary["ok"] = (
            summary["ok"]
            and summary["events_at_central"] == summary["events"]
            and len({e["seq"] for e in events}) == len(events)
            and summary["outbox_left"] == 0
        )
        return summary


def _afternoon(school: DemoSchool, timeout: float) -> dict:
    """The guard signs in; every child checks in; one guardian's pickup is confirmed by the guard; a barred
    guardian is refused."""
    gate, roster = school.gate, school.gate.store.roster
    reader = SimulatedReader()
    stop = threading.Event()
    shown: list = []
    loop = threading.Thread(target=gate.run, args=(reader, _Null(), stop, shown.append), daemon=True)
    loop.start()
    try:
        # The guard signs in at the console first: a pickup is confirmed only by a signed-in guard.
        reader.present(next(m.cards[0] for m in roster.staff.values() if m.guard and m.cards))
        _wait(lambda: len(shown) >= 1, timeout)
        signed_in = shown[0].outcome == "guard_signed_in"
        children = {s.id: s.cards[0] for s in roster.students.values() if s.cards}
        for uid in children.values():
            reader.present(uid)
        _wait(lambda: len(shown) >= 1 + len(children), timeout)
        checked_in = sum(1 for d in shown if d.event == "checkin")
        allowed = next(g for g in roster.guardians.values() if g.cards and any(x.may_pick_up and not x.barred for x in g.links))
        child = next(x.student for x in allowed.links if x.may_pick_up and not x.barred)
        barred = next(g for g in roster.guardians.values() if g.cards and any(x.barred for x in g.links))
        barred_child = next(x.student for x in barred.links if x.barred)
        taps = [allowed.cards[0], children[child], barred.cards[0], children[barred_child]]
        time.sleep(gate.rules.debounce.total_seconds() + 0.1)  # a child's second tap is not a repeat
        for uid in taps:
            reader.present(uid)
        _wait(lambda: len(shown) >= 1 + len(children) + len(taps), timeout)
    finally:
        stop.set()
        loop.join(5)
        reader.close()
    asked = shown[1 + len(children) + 1]
    done = gate.confirm(asked.confirm) if asked.confirm else asked
    refused = shown[1 + len(children) + 3]
    return {
        "taps": len(shown),
        "guard_signed_in": signed_in,
        "checked_in": checked_in,
        "pickups": 1 if done.event == "pickup" else 0,
        "refused_barred": 1 if refused.outcome == "pickup_barred" else 0,
        "events": sum(1 for d in shown if d.event) + (done.event == "pickup"),
        "ok": signed_in and checked_in == len(children) and done.event == "pickup" and refused.outcome == "pickup_barred",
    }


def _console(school: DemoSchool) -> dict:
    from kiosk.console import DemoKeys, run_console

    reader = SimulatedReader()
    try:
        run_console(school.gate, reader, demo=DemoKeys(reader, school.gate.store.roster))
    finally:
        reader.close()
    recorded = len(school.gate.store.day_events(school.gate.state.day))
    return {"events": recorded, "ok": True}


class _Null:
    def write(self, _text: str) -> None:
        pass

    def flush(self) -> None:
        pass
