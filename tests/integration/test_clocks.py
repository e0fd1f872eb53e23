"""Kiosk clocks that are wrong or jump: days offline with a clock 3 days ahead, steps of -1 h and
+1 day mid-run. Seq stays contiguous, central orders and corrects the times, and the skew is a
safety incident."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sgtest import Broker, wait_for

from central.admin import central_key, create_school, register_kiosk
from central.core.config import Settings
from central.server import CentralServer
from gateway.mqtt import free_port
from hardware import CardTap
from kiosk.config import KioskSettings
from kiosk.display import Shown
from kiosk.runtime import Kiosk

SECRET = "c1" * 32




def tap(gate: Kiosk, uid: str, at: datetime) -> Shown:
    return gate.handle(CardTap(uid, "sim", "sim", at))


def api(central: CentralServer, settings: Settings, path: str, **params) -> list[dict]:
    headers = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
    out, cursor = [], {}
    while True:
        rows = httpx.get(f"{central.url}{path}", params={"limit": 1000, **cursor, **params}, headers=headers, timeout=30).json()
        out += rows
        if len(rows) < 1000 or "incidents" in path:
            return out
        cursor = {"after_kiosk": rows[-1]["kiosk"], "after_seq": rows[-1]["seq"]}


def test_a_kiosk_three_days_ahead_records_30000_events_offline_then_drains_in_order(tmp_path):
    school, prefix = f"off-{uuid.uuid4().hex[:6]}", f"sgtest-{uuid.uuid4().hex[:8]}/v1"
    broker = Broker(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.sqlite3'}", mqtt_url=broker.central_url, topic_prefix=prefix)
    gate = Kiosk(
        KioskSettings(school=school, kiosk="gate-1", data_dir=tmp_path / "kiosk", secret=SECRET, mqtt_url=broker.url,
                      topic_prefix=prefix, central_key=central_key(settings))
    ).start()
    ahead = timedelta(days=3)
    try:
        t0 = time.time()
        for i in range(30_000):
            tap(gate, f"{i:08X}", datetime.now(UTC) + ahead)
        recorded = time.time() - t0
        assert gate.store.queue_depth() == 30_000
        create_school(settings, code=school, name=school)
        register_kiosk(settings, school=school, kiosk="gate-1", secret=SECRET)
        with broker, CentralServer(settings, port=free_port()) as central:
            back_online = datetime.now(UTC)
            wait_for(lambda: gate.store.queue_depth() == 0, timeout=120, what="30,000 events to drain")
            events = api(central, settings, f"/api/v1/schools/{school}/events")
            incidents = api(central, settings, f"/api/v1/schools/{school}/incidents")
    finally:
        gate.close()
    assert [e["seq"] for e in events] == list(range(1, 30_001))
    corrected = [datetime.fromisoformat(e["at_corrected"]) for e in events]
    # In the order recorded: each page (one read, one clock base) exactly; across pages to within a few
    # ms, as a clock sample arriving between two reads may still tighten the base a little.
    assert [e["mono"] for e in events] == sorted(e["mono"] for e in events)
    for start in range(0, len(corrected), 1000):
        page = corrected[start : start + 1000]
        assert page == sorted(page), f"events {start + 1}-{start + len(page)} out of order"
    assert all(later - earlier > -timedelta(milliseconds=5) for earlier, later in zip(corrected, corrected[1:]))
    # Central put them back on its own clock: recorded before the kiosk came back online, not days on.
    assert corrected[0] >= back_online - timedelta(seconds=recorded + 30)
    assert corrected[-1] <= back_online + timedelta(seconds=2)
    assert all(datetime.fromisoformat(e["at"]) - c > timedelta(days=2, hours=23) for e, c in zip(events, corrected))
    skew = [i for i in incidents if i["kind"] == "clock_skew"]
    assert len(skew) == 1 and "ahead" in skew[0]["detail"]


def test_clock_steps_back_an_hour_and_on_a_day_mid_run(backend, tmp_path):
    school = f"jump-{uuid.uuid4().hex[:6]}"
    settings = Settings(database_url=backend.database_url, mqtt_url=backend.mqtt_url, topic_prefix=backend.topic_prefix)
    create_school(settings, code=school, name=school)
    register_kiosk(settings, school=school, kiosk="gate-1", secret=SECRET)
    with CentralServer(settings, port=free_port()) as central:
        gate = Kiosk(
            KioskSettings(
                school=school, kiosk="gate-1", data_dir=tmp_path / "kiosk", secret=SECRET,
                mqtt_url=backend.kiosk_url, topic_prefix=backend.topic_prefix, central_key=central_key(settings),
            )
        ).start()
        try:
            wait_for(lambda: gate.sync.online, what="the kiosk online")
            offsets = [timedelta(0)] * 5 + [timedelta(hours=-1)] * 5 + [timedelta(days=1)] * 5
            for i, offset in enumerate(offsets):
                tap(gate, f"0A{i:06X}", datetime.now(UTC) + offset)
            wait_for(lambda: gate.store.queue_depth() == 0, what="the events to drain")
            wait_for(lambda: len(api(central, settings, f"/api/v1/schools/{school}/incidents")) >= 2, what="skew incidents")
            events = api(central, settings, f"/api/v1/schools/{school}/events")
            incidents = api(central, settings, f"/api/v1/schools/{school}/incidents")
        finally:
            gate.close()
    assert [e["seq"] for e in events] == list(range(1, 16))
    walls = [datetime.fromisoformat(e["at"]) for e in events]
    assert walls != sorted(walls)  # the wall clock went back ...
    corrected = [datetime.fromisoformat(e["at_corrected"]) for e in events]
    # In the order recorded: each page (one read, one clock base) exactly; across pages to within a few
    # ms, as a clock sample arriving between two reads may still tighten the base a little.
    assert [e["mono"] for e in events] == sorted(e["mono"] for e in events)
    for start in range(0, len(corrected), 1000):
        page = corrected[start : start + 1000]
        assert page == sorted(page), f"events {start + 1}-{start + len(page)} out of order"
    assert all(later - earlier > -timedelta(milliseconds=5) for earlier, later in zip(corrected, corrected[1:]))  # ... central's order did not
    assert corrected[-1] - corrected[0] < timedelta(seconds=10)
    details = sorted(i["detail"] for i in incidents if i["kind"] == "clock_skew")
    assert len(details) == 2
    assert any("behind" in d for d in details) and any("ahead" in d for d in details)


def retained_at_broker(url: str, topic: str) -> None:
    """Return once the broker holds a retained message on ``topic`` (a fresh subscriber is sent it)."""
    from gateway.mqtt import BrokerAddress, make_client

    address = BrokerAddress.parse(url)
    probe = make_client(f"sgtest-probe-{uuid.uuid4().hex[:6]}", address)
    retained: list[bool] = []
    probe.on_message = lambda _c, _u, m: retained.append(m.retain)
    probe.connect(address.host, address.port)
    probe.loop_start()
    try:
        probe.subscribe(topic, qos=1)
        wait_for(lambda: True in retained, timeout=10, what=f"a retained message on {topic}")
    finally:
        probe.loop_stop()
        probe.disconnect()


def test_the_first_ack_on_a_connection_brings_a_live_status_for_centrals_clock(tmp_path):
    """Central reads kiosk clocks only from live statuses. A kiosk that connected before central
    subscribed had its first status delivered as a retained message: the first ack makes it send
    another at once rather than after status_every (30 s), while it is still draining its backlog."""
    from gateway import protocol
    from gateway.mqtt import BrokerAddress, make_client

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    prefix = f"sgtest-{uuid.uuid4().hex[:8]}/v1"
    topics = protocol.Topics(prefix)
    database_url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    key = Ed25519PrivateKey.generate()  # this test stands in for central: it signs with a key of its own
    with Broker(database_url) as broker:
        create_school(Settings(database_url=database_url), code="s1", name="s1")
        register_kiosk(Settings(database_url=database_url), school="s1", kiosk="gate-1", secret=SECRET)
        gate = Kiosk(KioskSettings(school="s1", kiosk="gate-1", data_dir=tmp_path, secret=SECRET, mqtt_url=broker.url,
                                   topic_prefix=prefix, central_key=protocol.public_key_hex(key))).start()
        central = make_client("sgtest-central", BrokerAddress.parse(broker.central_url))
        live: list[bool] = []
        central.on_message = lambda _c, _u, m: live.append(not m.retain)
        try:
            wait_for(lambda: gate.sync.online, what="the kiosk online")
            retained_at_broker(broker.probe_url, topics.status("s1", "gate-1"))  # its status on connecting
            central.connect("127.0.0.1", broker.port)
            central.loop_start()
            central.subscribe(topics.status("s1", "gate-1"), qos=1)
            wait_for(lambda: live[:1] == [False], what="the retained status first")
            before = live.count(True)  # a status the kiosk sent meanwhile on its own (none, mostly)
            ack = {"v": 1, "school": "s1", "kiosk": "gate-1", "upto": 0, "server_time": datetime.now(UTC).isoformat()}
            central.publish(topics.ack("s1", "gate-1"), protocol.seal(protocol.canonical_json(ack), key), qos=1)
            wait_for(lambda: live.count(True) > before, timeout=5, what="a live status after the first ack")
        finally:
            central.loop_stop()
            central.disconnect()
            gate.close()


def test_an_unsigned_status_on_the_broker_does_not_shift_corrected_times(backend, tmp_path):
    """Issue 11 item 6: anyone who may publish on a kiosk's status topic sent a mono five hours past
    the kiosk's; corrected times moved five hours and a huge mono made the events list answer 500.
    Central now takes clock samples only from the kiosk's signed status and events."""
    from gateway import protocol
    from gateway.mqtt import BrokerAddress, make_client

    school = f"forge-{uuid.uuid4().hex[:6]}"
    topics = protocol.Topics(backend.topic_prefix)
    settings = Settings(database_url=backend.database_url, mqtt_url=backend.mqtt_url, topic_prefix=backend.topic_prefix)
    create_school(settings, code=school, name=school)
    register_kiosk(settings, school=school, kiosk="gate-1", secret=SECRET)
    with CentralServer(settings, port=free_port()) as central:
        gate = Kiosk(
            KioskSettings(
                school=school, kiosk="gate-1", data_dir=tmp_path / "kiosk", secret=SECRET,
                mqtt_url=backend.kiosk_url, topic_prefix=backend.topic_prefix, central_key=central_key(settings),
            )
        ).start()
        forger = make_client(f"sgtest-forger-{uuid.uuid4().hex[:6]}", BrokerAddress.parse(backend.probe_url))
        try:
            wait_for(lambda: gate.sync.online, what="the kiosk online")
            tap(gate, "0B000001", datetime.now(UTC))
            wait_for(lambda: gate.store.queue_depth() == 0, what="the first event stored")
            forger.connect(BrokerAddress.parse(backend.probe_url).host, BrokerAddress.parse(backend.probe_url).port)
            forger.loop_start()
            for mono in (gate.store.mono() + 5 * 3_600_000, protocol.MAX_MONO):
                status = protocol.Status(v=1, online=True, queue=0, last_seq=1, roster_version=0,
                                         at=datetime.now(UTC).isoformat(), boot=gate.store.boot, mono=mono)
                forger.publish(topics.status(school, "gate-1"), protocol.dump(status), qos=1).wait_for_publish(10)
            # Published after the forgeries: once it is stored, central has read them too.
            tap(gate, "0B000002", datetime.now(UTC))
            wait_for(lambda: gate.store.queue_depth() == 0, what="the second event stored")
            events = api(central, settings, f"/api/v1/schools/{school}/events")
        finally:
            forger.loop_stop()
            forger.disconnect()
            gate.close()
    assert [e["seq"] for e in events] == [1, 2]
    for event in events:
        gap = abs(datetime.fromisoformat(event["at_corrected"]) - datetime.fromisoformat(event["at"]))
        assert gap < timedelta(seconds=5), event
