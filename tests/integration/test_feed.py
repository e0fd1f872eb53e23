"""One school, two gates (issue 13): what gate A saw, gate B knows through the school's feed.

Runs against the embedded broker with SQLite and against Mosquitto with PostgreSQL (conftest.py):
central on a free port, two registered kiosks of one school, each with its own store, reading the
feed over MQTT and catching up over signed HTTP from central.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sgtest import wait_for

from central.admin import central_key, create_school, import_files, register_kiosk
from central.core.config import Settings
from central.demo import DEMO_GUARD_CARD, enroll_demo_students, write_demo_roster
from central.server import CentralServer
from gateway.feed import CURRENT
from gateway.mqtt import free_port
from hardware import CardTap
from kiosk.config import KioskSettings
from kiosk.runtime import Kiosk

SECRETS = {"gate-a": "a1" * 32, "gate-b": "b2" * 32}


class School:
    """Central and a school with two gates; each gate a ``Kiosk`` started (or restarted) on its own store."""

    def __init__(self, backend, tmp_path) -> None:
        self.backend, self.tmp = backend, tmp_path
        self.code = f"sch-{uuid.uuid4().hex[:8]}"
        self.settings = Settings(database_url=backend.database_url, mqtt_url=backend.mqtt_url,
                                 topic_prefix=backend.topic_prefix)
        self.central = CentralServer(self.settings, port=free_port()).start()
        create_school(self.settings, code=self.code, name=self.code)
        students, guardians = write_demo_roster(tmp_path / "roster", students=6, guardians=6)
        import_files(self.settings, school=self.code, students=students, guardians=guardians)
        self.roster_version = enroll_demo_students(self.settings, school=self.code).version
        for gate, secret in SECRETS.items():
            register_kiosk(self.settings, school=self.code, kiosk=gate, secret=secret)
        self.gates: dict[str, Kiosk] = {}

    def start(self, gate: str) -> Kiosk:
        kiosk = Kiosk(KioskSettings(
            school=self.code, kiosk=gate, data_dir=self.tmp / gate, secret=SECRETS[gate],
            central_key=central_key(self.settings), mqtt_url=self.backend.kiosk_url,
            topic_prefix=self.backend.topic_prefix, central_url=self.central.url, resend_after=2.0,
        )).start()
        self.gates[gate] = kiosk
        wait_for(lambda: kiosk.roster.version >= self.roster_version, what=f"{gate}'s roster")
        wait_for(lambda: kiosk.feed.state == CURRENT, what=f"{gate} caught up with the school's feed")
        return kiosk

    def stop(self, gate: str) -> None:
        self.gates.pop(gate).close()

    def head(self) -> int:
        """The school's feed head as central has it now (read as gate A, signed like a kiosk)."""
        return self.gates["gate-a"].feed.fetcher.after(0, 1).head

    def close(self) -> None:
        for kiosk in self.gates.values():
            kiosk.close()
        self.central.stop()


@pytest.fixture
def school(backend, tmp_path):
    found = School(backend, tmp_path)
    try:
        yield found
    finally:
        found.close()


def tap(gate: Kiosk, card: str):
    return gate.handle(CardTap(card, "sim", "sim", datetime.now(UTC)))


def families(gate: Kiosk) -> list[tuple[str, str, str, str]]:
    """(student, child's card, guardian, guardian's card) for each guardian who may pick their child up."""
    roster = gate.roster
    found = []
    for guardian in sorted(roster.guardians.values(), key=lambda g: g.id):
        for link in guardian.links:
            child = roster.students[link.student]
            if link.may_pick_up and not link.barred and child.enrolled and child.cards and guardian.cards:
                found.append((child.id, child.cards[0], guardian.id, guardian.cards[0]))
    return found


def caught_up(gate: Kiosk, head: int) -> bool:
    return gate.feed.state == CURRENT and gate.feed_pos >= head


def test_two_gates_share_the_school_day(school):
    a, b = school.start("gate-a"), school.start("gate-b")
    (child, child_card, guardian, guardian_card), *others = families(a)

    # Checked in at gate A: on site at gate B, in B's roll call with the gate the child came through.
    assert tap(a, child_card).outcome == "checked_in"
    wait_for(lambda: b.state.on_site(child), what="gate B to see the check-in at gate A")
    assert child in [sid for _session, children in b.roll_call() for sid in children]
    assert b.came_through()[child] == "gate-a"

    # The guardian at gate B: the pickup is allowed with no override, and gate A sees the child gone.
    assert tap(b, DEMO_GUARD_CARD).outcome == "guard_signed_in"
    assert tap(b, guardian_card).outcome == "guardian_waiting"
    asked = tap(b, child_card)
    assert asked.outcome == "pickup_allowed", asked.message
    assert b.confirm(asked.confirm).outcome == "pickup_done"
    wait_for(lambda: a.state.gone.get(child) == "pickup", what="gate A to see the pickup at gate B")

    # Gate B away for a while; gate A goes on. Back, B catches up and counts what A counts.
    school.stop("gate-b")
    for other, other_card, _g, _gc in others[:3]:
        if not a.state.on_site(other):
            assert tap(a, other_card).outcome == "checked_in"
    wait_for(lambda: a.store.queue_depth() == 0, what="gate A's events stored at central")
    head = school.head()
    wait_for(lambda: caught_up(a, head), what="gate A's feed at the head")
    b = school.start("gate-b")
    wait_for(lambda: caught_up(b, head), what="gate B caught up")
    assert b.counts() == a.counts()
    assert b.counts().on_site == len({o[0] for o in others[:3]} - {child})
    assert b.state.checked_in == a.state.checked_in
    assert b.state.gone == a.state.gone == {child: "pickup"}
    assert a.state.guard is None and b.state.guard is not None  # B's guard signed in at B only
    # Its own events came back to it on the feed and were not kept twice.
    assert [e["kiosk"] for e in b.store.feed_events(b.state.day)] == ["gate-a"] * len(b.store.feed_events(b.state.day))


def test_the_catch_up_route_refuses_an_unsigned_request(school):
    response = httpx.get(f"{school.central.url}/api/v1/kiosks/{school.code}/gate-a/feed?after=0")
    assert response.status_code in (401, 403)
