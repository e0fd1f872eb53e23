"""One school, two gates (issue 13): what gate A saw, gate B knows through the school's feed.

Runs against the embedded broker with SQLite and against Mosquitto with PostgreSQL (conftest.py):
central on a free port, two registered kiosks of one school, each with its own store, reading the
feed over MQTT and catching up over signed HTTP from central.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session
from sgtest import wait_for

from central.admin import central_key, create_school, import_files, register_kiosk
from central.core.config import Settings
from central.core.db import make_engine
from central.main import ingest_worker
from central.schools import registry
from central.demo import DEMO_GUARD_CARD, enroll_demo_students, write_demo_roster
from central.server import CentralServer
from gateway.feed import CURRENT
from gateway import protocol
from gateway.mqtt import BrokerAddress, free_port
from hardware import CardTap
from kiosk.config import KioskSettings
from kiosk.runtime import Kiosk

SECRETS = {"gate-a": "a1" * 32, "gate-b": "b2" * 32}


class School:
    """Central and a school with two gates; each gate a ``Kiosk`` started (or restarted) on its own store."""

    def __init__(self, backend, tmp_path, **settings) -> None:
        self.backend, self.tmp = backend, tmp_path
        self.code = f"sch-{uuid.uuid4().hex[:8]}"
        self.settings = Settings(database_url=backend.database_url, mqtt_url=backend.mqtt_url,
                                 topic_prefix=backend.topic_prefix, **settings)
        self.central = CentralServer(self.settings, port=free_port()).start()
        create_school(self.settings, code=self.code, name=self.code)
        students, guardians = write_demo_roster(tmp_path / "roster", students=6, guardians=6)
        import_files(self.settings, school=self.code, students=students, guardians=guardians)
        self.roster_version = enroll_demo_students(self.settings, school=self.code).version
        for gate, secret in SECRETS.items():
            register_kiosk(self.settings, school=self.code, kiosk=gate, secret=secret)
        self.gates: dict[str, Kiosk] = {}

    def start(self, gate: str, mqtt_url: str | None = None, clock=None) -> Kiosk:
        kiosk = Kiosk(clock=clock, settings=KioskSettings(
            school=self.code, kiosk=gate, data_dir=self.tmp / gate, secret=SECRETS[gate],
            central_key=central_key(self.settings), mqtt_url=mqtt_url or self.backend.kiosk_url,
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


class Link:
    """The network between one gate and the broker, which the test can cut and restore (a TCP relay)."""

    def __init__(self, upstream: str) -> None:
        address = BrokerAddress.parse(upstream)
        self.upstream = (address.host, address.port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"mqtt://127.0.0.1:{self.server.getsockname()[1]}"
        self.up = True
        self.open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.server.accept()
            except OSError:
                return
            if not self.up:
                near.close()  # the cable is out: the gate's reconnects fail
                continue
            far = socket.create_connection(self.upstream)
            with self._lock:
                self.open += [near, far]
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.up = False
        with self._lock:
            for sock in self.open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.open.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.server.close()


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
    writers: list[str] = []  # the threads that write gate B's feed rows: never paho's network thread
    add_feed = b.store.add_feed
    b.store.add_feed = lambda *args, **kw: (writers.append(threading.current_thread().name), add_feed(*args, **kw))[1]

    # Checked in at gate A: on site at gate B, in B's roll call with the gate the child came through.
    assert tap(a, child_card).outcome == "checked_in"
    wait_for(lambda: b.state.on_site(child), what="gate B to see the check-in at gate A")
    assert child in [sid for _session, children in b.roll_call() for sid in children]
    assert b.came_through()[child] == "gate-a"
    assert writers and set(writers) == {"feed"}

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


def test_a_gate_cut_off_says_what_it_does_not_know_then_catches_up(school):
    link = Link(school.backend.kiosk_url)
    try:
        a, b = school.start("gate-a"), school.start("gate-b", mqtt_url=link.url)
        (child, child_card, guardian, _gc), (second, second_card, _g2, _gc2), *_ = families(a)
        assert tap(b, DEMO_GUARD_CARD).outcome == "guard_signed_in"
        link.cut()
        wait_for(lambda: not b.sync.online and b.feed.state == "offline", what="gate B offline")
        assert tap(a, child_card).outcome == "checked_in"
        assert tap(a, second_card).outcome == "checked_in"
        wait_for(lambda: a.store.queue_depth() == 0, what="gate A's events stored at central")
        # Gate B does not know: it refuses, says since when the other gates are unknown, and may be overridden.
        since = b.local(b.feed.unknown_since).strftime("%H:%M")
        refused = b.pickup(child, guardian)
        assert refused.outcome == "not_on_site" and refused.overridable
        assert f"离线中，自 {since} 起不知道其他校门的情况" in refused.message
        link.restore()
        head = school.head()
        wait_for(lambda: caught_up(b, head), timeout=60, what="gate B back and caught up")
        assert b.pickup(child, guardian).outcome == "pickup_allowed"  # no override needed now
        assert b.counts() == a.counts()
        assert b.came_through() == a.came_through() == {child: "gate-a", second: "gate-a"}
    finally:
        link.close()


def test_a_forged_feed_message_is_refused_and_the_gate_goes_on(school):
    # The probe: a local process with a broker login that lets it publish anywhere (as on a single-machine
    # install); the generated Mosquitto ACL forbids kiosks this (tests/gateway/test_mosquitto.py).
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from gateway.mqtt import make_client

    b = school.start("gate-b")
    child = families(b)[0][0]
    forged = protocol.feed_message(school.code, [{"pos": b.feed_pos + 1, "id": "forged", "kiosk": "gate-a", "seq": 1,
                                                  "kind": "checkin", "at": datetime.now(UTC).isoformat(),
                                                  "student": child}], b.feed_pos + 1)
    address = BrokerAddress.parse(school.backend.probe_url)
    probe = make_client(f"sgtest-{uuid.uuid4().hex[:8]}", address)
    probe.connect(address.host, address.port)
    probe.loop_start()
    try:
        topic = protocol.Topics(school.backend.topic_prefix).feed(school.code)
        probe.publish(topic, protocol.seal(protocol.canonical_json(forged), Ed25519PrivateKey.generate()),
                      qos=1).wait_for_publish(10)
        probe.publish(topic, b"not json", qos=1).wait_for_publish(10)
        wait_for(lambda: b.feed.refused == 2, what="both refused")
    finally:
        probe.loop_stop()
        probe.disconnect()
    assert not b.state.on_site(child)
    assert b.sync.online and b.feed.state == CURRENT
    faults = b.store.faults("unverified_from_central")
    assert faults and all(f["detail"].startswith(f"{topic}: ") for f in faults)


def test_an_absent_child_is_alerted_once_for_the_school_whichever_gate_sees_it_first(school):
    """Both gates' clocks past the session's absent time: gate A raises the absences, gate B learns them on
    the feed and raises none of its own, and central keeps one alert per child."""
    late = {"now": None}
    a = school.start("gate-a", clock=lambda: late["now"] or datetime.now(UTC))
    b = school.start("gate-b", clock=lambda: late["now"] or datetime.now(UTC))
    session = min(a.roster.sessions.values(), key=lambda s: s.start)  # the demo's session, the first to start
    enrolled = sorted(s.id for s in a.roster.students.values() if s.enrolled and session.group in s.groups)
    late["now"] = datetime.fromisoformat(session.absent_after.replace("Z", "+00:00")) + timedelta(minutes=1)

    raised = [shown.student for shown in a.check_alerts() if shown.reason == "absent"]
    assert sorted(raised) == enrolled and enrolled
    wait_for(lambda: caught_up(b, school.head()) and len(b.store.feed_events(b.state.day)) >= len(enrolled),
             what="gate B to hear of gate A's alerts")
    assert [shown for shown in b.check_alerts() if shown.reason == "absent"] == []  # known already: not again

    engine = make_engine(school.settings.database_url)
    try:
        wait_for(lambda: _alerts(engine, school.code) == {(child, 1) for child in enrolled},
                 what="central to keep one alert per child")
    finally:
        engine.dispose()


def _alerts(engine, code: str) -> set[tuple[str, int]]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT a.student, a.raised FROM child_alert a JOIN school s ON s.id = a.school_id "
            "WHERE s.code = :code AND a.kind = 'absent'"), {"code": code}).all())


async def _open_page(hub, school_id: int):
    """What a live page does when it opens (central/web/pages.py): watch the school in its loop."""
    return hub.watch(school_id)


def test_central_serve_beside_an_ingest_worker_wakes_its_live_pages_on_what_the_worker_stored(backend, tmp_path):
    """SCHOOLGATE_SERVE_INGEST=false: central serve stores nothing itself, a `central ingest` worker does;
    the server's live pages still move on the tap (through the school's feed), not at their next round.
    The feed is followed only while a page of the school is open, and what was stored while it was not
    wakes the page when it opens."""
    school = School(backend, tmp_path, serve_ingest=False)
    engine = make_engine(school.settings.sqlalchemy_url)
    worker = ingest_worker(engine, school.settings).start()
    try:
        gate = school.start("gate-a")
        hub, bus = school.central.app.state.live, school.central.bus
        feed_topic = bus.topics.feed(school.code)
        with Session(engine) as session:
            school_id = registry.get_school(session, school.code).id
        assert bus.following == set() and not any(t.endswith("/feed") for t in bus.connection.subscriptions())
        page = asyncio.run(_open_page(hub, school_id))
        wait_for(lambda: bus.following == {school_id}, timeout=10, what="the school's feed followed once its page opened")
        assert {t for t in bus.connection.subscriptions() if t.endswith("/feed")} == {feed_topic}
        before = hub.generation(school_id)
        child, child_card, _guardian, _card = families(gate)[0]
        assert tap(gate, child_card).outcome == "checked_in"
        wait_for(lambda: hub.generation(school_id) > before, timeout=10, what="central serve's pages woken by the worker's feed")
        wait_for(lambda: not gate.store.queue_depth(), what="the worker's ack")
        assert (school.central.bus.ingest.stored, worker.ingest.stored) == (0, 1)

        # The last page closes: the feed is no longer followed; a tap meanwhile wakes the next page to open.
        hub.forget(school_id, page)
        wait_for(lambda: not bus.following and feed_topic not in bus.connection.subscriptions(), timeout=10,
                 what="the feed let go once the school's last page closed")
        heard = hub.generation(school_id)
        assert tap(gate, families(gate)[1][1]).outcome == "checked_in"
        wait_for(lambda: not gate.store.queue_depth() and worker.ingest.stored == 2, what="the worker's second ack")
        assert hub.generation(school_id) == heard  # nobody follows the feed now
        page = asyncio.run(_open_page(hub, school_id))
        wait_for(lambda: hub.generation(school_id) > heard, timeout=10, what="the page opened after the tap woken by the head in the database")
        hub.forget(school_id, page)
    finally:
        worker.stop()
        school.close()
        engine.dispose()
