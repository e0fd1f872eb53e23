"""The whole path once: taps at a kiosk reach central over MQTT, and the roster comes back.

Runs against two back-ends (conftest.py): the embedded broker with SQLite, and Mosquitto with
PostgreSQL. Central is served by uvicorn on a free port; the kiosk reads the simulated reader and
nfcpy's own `udp` radio with emulated ISO 14443A cards.
"""

from __future__ import annotations

import csv
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sgtest import Broker, RunningClock, wait_for
import paho.mqtt.client as mqtt
import pytest

from central.admin import central_key, create_school, import_files, register_kiosk
from central.core import clock
from central.core.config import Settings
from central.demo import enroll_demo_students
from central.server import CentralServer
from gateway import protocol
from gateway.mqtt import BrokerAddress, free_port, make_client
from hardware import SimulatedReader, connect
from hardware.udpcard import UdpCard
from kiosk.config import KioskSettings
from kiosk.runtime import Kiosk

SECRET = "5a" * 32
UDP_CARDS = ["04A1B2C3", "04112233445566", "08090A0B", "04D5E6F7A8B9C0"]
# A Tuesday afternoon at the school (16:30 in Asia/Shanghai): the time of day the 500 taps happen at,
# whatever the machine's clock says (scripts/test-at-midnight runs this at the school's midnight).
TUESDAY_AFTERNOON = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)




def write_students(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student_no", "name", "grade", "class", "card", "poverty_registered"])
        for number, card in rows:
            writer.writerow([number, f"学生{number}", "三年级", "1班", card, "否"])
    return path


class World:
    """Central, one registered kiosk, and helpers to look at both."""

    def __init__(self, backend, tmp_path: Path) -> None:
        self.backend = backend
        self.tmp = tmp_path
        self.school = f"sch-{uuid.uuid4().hex[:8]}"
        self.topics = protocol.Topics(backend.topic_prefix)
        self.settings = Settings(
            database_url=backend.database_url, mqtt_url=backend.mqtt_url, topic_prefix=backend.topic_prefix
        )
        self.central = CentralServer(self.settings, port=free_port()).start()
        create_school(self.settings, code=self.school, name=self.school)
        self.http = httpx.Client(
            base_url=self.central.url, headers={"Authorization": f"Bearer {self.settings.api_token.get_secret_value()}"}
        )

    def register(self, kiosk: str = "gate-1", secret: str = SECRET) -> None:
        register_kiosk(self.settings, school=self.school, kiosk=kiosk, secret=secret)

    @property
    def central_key(self) -> str:
        """What registration hands a kiosk besides its secret: central's public key."""
        return central_key(self.settings)

    def kiosk(self, kiosk: str = "gate-1", secret: str | None = SECRET, mqtt_url: str | None = None, clock=None) -> Kiosk:
        return Kiosk(
            KioskSettings(
                school=self.school,
                kiosk=kiosk,
                data_dir=self.tmp / "kiosk",
                secret=secret,
                central_key=self.central_key,
                mqtt_url=mqtt_url or self.backend.kiosk_url,
                topic_prefix=self.backend.topic_prefix,
                resend_after=2.0,
            ),
            clock=clock,
        ).start()

    def events(self, **params) -> list[dict]:
        out, cursor = [], {}
        while True:
            page = self.http.get(f"/api/v1/schools/{self.school}/events", params={**cursor, "limit": 1000, **params})
            page.raise_for_status()
            rows = page.json()
            out += rows
            if len(rows) < 1000:
                return out
            cursor = {"after_kiosk": rows[-1]["kiosk"], "after_seq": rows[-1]["seq"]}

    def incidents(self) -> list[dict]:
        response = self.http.get(f"/api/v1/schools/{self.school}/incidents")
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self.http.close()
        self.central.stop()


@pytest.fixture
def world(backend, tmp_path):
    w = World(backend, tmp_path)
    try:
        yield w
    finally:
        w.close()


def run_reader(gate: Kiosk, reader, shown: list, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=gate.run, args=(reader, _Null(), stop, shown.append), daemon=True)
    thread.start()
    return thread


class _Null:
    def write(self, _text):
        pass

    def flush(self):
        pass


def test_500_taps_are_stored_exactly_once_and_the_outbox_ends_empty(world, tmp_path, monkeypatch):
    # One clock for central, the kiosk and both readers: the demo's session, the kiosk's day and
    # central's "today" (rosters, ingest) are the same afternoon's.
    now = RunningClock(TUESDAY_AFTERNOON)
    monkeypatch.setattr(clock, "utcnow", now)
    sim_cards = [f"{0x10000000 + i:08X}" for i in range(500 - len(UDP_CARDS))]
    cards = sim_cards + UDP_CARDS
    students = write_students(tmp_path / "students.csv", [(f"S{i:04d}", card) for i, card in enumerate(cards)])
    world.register()
    import_files(world.settings, school=world.school, students=students, guardians=None)
    # P2.1: the consent chain, for all 500; the session starts at 16:35.
    enrolled = enroll_demo_students(world.settings, school=world.school, now=now())
    gate = world.kiosk(clock=now)
    stop = threading.Event()
    shown: list[dict] = []
    udp_port = free_udp_port()
    nfc_reader = connect(f"nfc:udp:localhost:{udp_port}", clock=now)
    sim_reader = SimulatedReader(clock=now)
    threads = [run_reader(gate, nfc_reader, shown, stop), run_reader(gate, sim_reader, shown, stop)]
    try:
        wait_for(lambda: gate.store.roster.version >= enrolled.version, what="the roster with the enrollments")
        card = UdpCard(udp_port)
        try:
            for uid in UDP_CARDS:
                card.present(uid)
        finally:
            card.close()
        for uid in sim_cards:
            sim_reader.present(uid)
        wait_for(lambda: len(shown) >= 500, what="500 decisions")
        wait_for(lambda: gate.store.queue_depth() == 0, what="an empty outbox")
        events = world.events()
    finally:
        stop.set()
        sim_reader.close()
        nfc_reader.close()
        for t in threads:
            t.join(5)
        gate.close()
    assert [d.outcome for d in shown].count("checked_in") == 500
    assert {d.card for d in shown if d.reader.startswith("nfc:")} == set(UDP_CARDS)
    assert len(events) == 500
    assert sorted(e["seq"] for e in events) == list(range(1, 501))
    assert {e["card"] for e in events} == set(cards)
    assert all(e["kind"] == "checkin" for e in events)
    assert world.incidents() == []


def free_udp_port() -> int:
    # nfcpy's card side binds 0.0.0.0:PORT over UDP, so probe that.
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


def raw_publisher(world) -> mqtt.Client:
    address = BrokerAddress.parse(world.backend.probe_url)
    client = make_client(f"sgtest-{uuid.uuid4().hex[:8]}", address)
    client.connect(address.host, address.port)
    client.loop_start()
    return client


def subscribed(client: mqtt.Client, topic: str) -> None:
    """Subscribe at QoS 1 and return once the broker's SUBACK is in: from then on it routes ``topic`` here."""
    granted = threading.Event()
    client.on_subscribe = lambda *_: granted.set()
    client.subscribe(topic, qos=1)
    assert granted.wait(10), f"no SUBACK for {topic}"


def publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(10)


def chain(n: int, secret: str = SECRET, school: str = "", start: int = 1, prev: str = "") -> list[dict]:
    from datetime import UTC, datetime

    out = []
    for seq in range(start, start + n):
        event = protocol.new_event(
            school=school, kiosk="gate-1", seq=seq, prev=prev, at=datetime.now(UTC), kind="unknown_card",
            secret=bytes.fromhex(secret), card=f"{seq:08X}",
        )
        prev = protocol.event_hash(event)
        out.append(event)
    return out


def test_duplicated_delivery_is_stored_once_and_acked(world):
    world.register()
    events = chain(5, school=world.school)
    acks: list[protocol.Ack] = []
    raw_acks: list[bytes] = []
    client = raw_publisher(world)
    try:
        client.on_message = lambda _c, _u, m: (raw_acks.append(m.payload), acks.append(protocol.parse_message(protocol.Ack, m.payload)))
        subscribed(client, world.topics.ack(world.school, "gate-1"))
        topic = world.topics.events(world.school, "gate-1")
        for event in events[:3]:
            publish(client, topic, protocol.canonical_json(event))
            publish(client, topic, protocol.canonical_json(event))
        publish(client, topic, protocol.batch_payload(events))  # 1-3 again, 4-5 new
        publish(client, topic, protocol.batch_payload(events[3:]))
        wait_for(lambda: acks and acks[-1].upto == 5, what="an ack up to 5")
    finally:
        client.loop_stop()
        client.disconnect()
    # Every ack came signed by central's own key (what the kiosk checks before it deletes anything).
    key = protocol.parse_public_key(world.central_key)
    assert all(protocol.unseal(raw, key)["upto"] == ack.upto for raw, ack in zip(raw_acks, acks))
    stored = world.events()
    assert [e["seq"] for e in stored] == [1, 2, 3, 4, 5]
    assert [e["id"] for e in stored] == [e["id"] for e in events]


def test_a_gap_is_not_stored_and_central_asks_for_a_resend(world):
    world.register()
    events = chain(3, school=world.school)
    acks: list[protocol.Ack] = []
    client = raw_publisher(world)
    try:
        client.on_message = lambda _c, _u, m: acks.append(protocol.parse_message(protocol.Ack, m.payload))
        subscribed(client, world.topics.ack(world.school, "gate-1"))
        topic = world.topics.events(world.school, "gate-1")
        publish(client, topic, protocol.canonical_json(events[0]))
        publish(client, topic, protocol.canonical_json(events[2]))
        wait_for(lambda: any(a.resend_from == 2 for a in acks), what="an ack asking for seq 2")
        publish(client, topic, protocol.batch_payload(events[1:]))
        wait_for(lambda: acks[-1].upto == 3, what="an ack up to 3")
    finally:
        client.loop_stop()
        client.disconnect()
    assert [e["seq"] for e in world.events()] == [1, 2, 3]


def test_forged_and_malformed_payloads_become_incidents_and_ingest_goes_on(world):
    world.register()
    good = chain(2, school=world.school)
    forged = chain(1, secret="00" * 32, school=world.school, start=3, prev=protocol.event_hash(good[-1]))[0]
    client = raw_publisher(world)
    topic = world.topics.events(world.school, "gate-1")
    try:
        publish(client, topic, protocol.canonical_json(good[0]))
        publish(client, topic, protocol.canonical_json(forged))  # wrong HMAC, also out of order
        publish(client, topic, b"{this is not json")
        publish(client, topic, protocol.canonical_json(dict(good[1], kind="teleport")))
        publish(client, world.topics.events(world.school, "gate-9"), protocol.canonical_json(good[0]))
        publish(client, topic, protocol.canonical_json(good[1]))
        wait_for(lambda: len(world.events()) == 2, what="the two good events")
        wait_for(lambda: len(world.incidents()) >= 4, what="four incidents")
    finally:
        client.loop_stop()
        client.disconnect()
    kinds = sorted(i["kind"] for i in world.incidents())
    assert kinds == ["bad_signature", "malformed_payload", "malformed_payload", "unknown_kiosk"]
    assert [e["seq"] for e in world.events()] == [1, 2]
    assert "HMAC" in next(i["detail"] for i in world.incidents() if i["kind"] == "bad_signature")


def test_a_roster_change_at_central_reaches_the_kiosk(world, tmp_path):
    world.register()
    import_files(
        world.settings, school=world.school, students=write_students(tmp_path / "a.csv", [("S1", "0A000001")]), guardians=None
    )
    gate = world.kiosk()
    try:
        wait_for(lambda: gate.store.roster.version == 1, what="roster v1")
        assert gate.store.roster.lookup("0A000002") is None
        import_files(
            world.settings,
            school=world.school,
            students=write_students(tmp_path / "b.csv", [("S1", "0A000001"), ("S2", "0A000002")]),
            guardians=None,
        )
        wait_for(lambda: gate.store.roster.version == 2, what="roster v2")
        assert gate.store.roster.lookup("0A000002") == ("student", "S2")
    finally:
        gate.close()


def test_a_forged_roster_on_the_broker_is_refused_by_the_kiosk_and_centrals_next_one_applies(world, tmp_path):
    world.register()
    import_files(world.settings, school=world.school, students=write_students(tmp_path / "a.csv", [("S1", "0A000001")]), guardians=None)
    gate = world.kiosk()
    client = raw_publisher(world)  # a process with a login on the broker, but not central's key
    try:
        wait_for(lambda: gate.store.roster.version == 1, what="roster v1")
        forged = {"v": 1, "school": world.school, "version": 7, "generated_at": "2026-12-01T08:00:00+00:00", "students": []}
        publish(client, world.topics.roster(world.school), protocol.canonical_json(forged))
        wait_for(lambda: gate.sync.refused == 1, what="the forged roster refused")
        assert gate.store.roster.version == 1
        assert gate.store.roster.lookup("0A000001") == ("student", "S1")
        assert [f["kind"] for f in gate.store.faults()] == ["unverified_from_central"]
        import_files(
            world.settings, school=world.school,
            students=write_students(tmp_path / "b.csv", [("S1", "0A000001"), ("S2", "0A000002")]), guardians=None,
        )
        wait_for(lambda: gate.store.roster.version == 2, what="central's roster v2")
    finally:
        client.loop_stop()
        client.disconnect()
        gate.close()


def test_a_kiosk_on_first_boot_without_network_records_every_card_then_syncs(tmp_path):
    """Embedded broker only: the test owns the port the kiosk waits on."""
    broker = Broker(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    prefix = f"sgtest-{uuid.uuid4().hex[:8]}/v1"
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.sqlite3'}", mqtt_url=broker.central_url, topic_prefix=prefix)
    gate = Kiosk(
        KioskSettings(school="first-boot", kiosk="gate-1", data_dir=tmp_path / "kiosk", mqtt_url=broker.url,
                      topic_prefix=prefix, central_key=central_key(settings))
    ).start()
    assert gate.store.secret_created
    try:
        from hardware import CardTap

        shown = [gate.handle(CardTap(uid, "sim", "sim", _now())) for uid in ("04A1B2C3", "0A0B0C0D", "01020304")]
        assert [d.outcome for d in shown] == ["unknown_card"] * 3
        assert gate.store.queue_depth() == 3
        with broker:
            create_school(settings, code="first-boot", name="first-boot")
            register_kiosk(settings, school="first-boot", kiosk="gate-1", secret=gate.store.secret_hex)
            with CentralServer(settings, port=free_port()):
                wait_for(lambda: gate.store.queue_depth() == 0, timeout=40, what="the offline events to sync")
    finally:
        gate.close()


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_the_kiosk_status_is_retained_and_its_will_says_offline(world):
    world.register()
    seen: list[protocol.Status] = []
    watcher = raw_publisher(world)
    watcher.on_message = lambda _c, _u, m: seen.append(protocol.parse_message(protocol.Status, m.payload))
    gate = world.kiosk()
    try:
        wait_for(lambda: gate.sync.online, what="the kiosk online")
        watcher.subscribe(world.topics.status(world.school, "gate-1"), qos=1)
        gate.reader = SimulatedReader()  # what `run` sets: the status carries the reader's state
        wait_for(lambda: seen and seen[-1].online, what="a retained online status")
        gate.sync.status_every = 0.2
        wait_for(lambda: seen[-1].reader == "ok" and seen[-1].boot == gate.store.boot, what="the reader's state in the status")
        # The connection dies without a DISCONNECT (power cut, cable pulled): the broker sends the will.
        gate.sync.drop()
        wait_for(lambda: not seen[-1].online, what="the will marking the kiosk offline")
    finally:
        watcher.loop_stop()
        watcher.disconnect()
        gate.store.close()


def test_a_kiosk_offline_through_several_versions_catches_up_from_the_compressed_snapshot(world, tmp_path):
    world.register()
    rows = [(f"S{i:04d}", f"{0x20000000 + i:08X}") for i in range(3000)]
    import_files(world.settings, school=world.school, students=write_students(tmp_path / "v1.csv", rows[:10]), guardians=None)
    gate = world.kiosk()
    try:
        wait_for(lambda: gate.store.roster.version == 1, what="roster v1")
    finally:
        gate.close()
    # While the kiosk is off: three more versions, the last one a whole school of 3,000.
    for version, size in ((2, 20), (3, 40), (4, 3000)):
        import_files(world.settings, school=world.school, students=write_students(tmp_path / f"v{version}.csv", rows[:size]), guardians=None)
    gate = world.kiosk()
    try:
        wait_for(lambda: gate.store.roster.version == 4, what="roster v4 from the retained snapshot")
        assert len(gate.store.roster.students) == 3000
        assert gate.store.roster.lookup(rows[2999][1]) == ("student", "S2999")
    finally:
        gate.close()
