"""A partitioned ingest worker subscribes to its own kiosks' topics only (issue 17): each of N workers
receiving every message was N times the MQTT work for 1/N of the storing. A kiosk registered after the
start is subscribed by its worker at the next refresh. The embedded broker with SQLite: no server needed."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from sgtest import Broker, wait_for

from central.admin import create_school, register_kiosk
from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.kiosks.bus import Bus
from gateway import protocol
from gateway.mqtt import BrokerAddress, make_client

SECRETS = {k: uuid.uuid4().hex * 2 for k in ("k0", "k1", "k4", "k5", "k6")}
# CRC-32 of "s1/<kiosk>" modulo 2, worked out once by hand for these names: k0, k1 → 1; k4, k5, k6 → 0.
PARTITION = {0: {"k4", "k5"}, 1: {"k0", "k1"}}


def kiosk_topics(*kiosks: str) -> set[str]:
    return {f"sg/v1/s1/{k}/{kind}" for k in kiosks for kind in ("events", "status")}


def test_each_worker_subscribes_to_its_own_kiosks_and_stores_their_events(tmp_path):
    url = f"sqlite:///{tmp_path / 'central.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    broker = Broker(url).start()
    settings = Settings(database_url=url, mqtt_url=broker.central_url, signing_key_file=tmp_path / "central.key")
    create_school(settings, code="s1", name="s1")
    for kiosk in ("k0", "k1", "k4", "k5"):
        register_kiosk(settings, school="s1", kiosk=kiosk, secret=SECRETS[kiosk])
    address = BrokerAddress.parse(broker.central_url)
    workers = [Bus(engine, broker=address, topics=protocol.Topics(), partition=(i, 2), kiosk_refresh_s=0.1,
                   settings=settings).start() for i in range(2)]
    probe = make_client(f"probe-{uuid.uuid4().hex[:6]}", address)
    try:
        wait_for(lambda: all(w.connection.subscribed.is_set() for w in workers), what="both workers subscribed")
        assert set(workers[0].connection._subscriptions) == kiosk_topics("k4", "k5")
        assert set(workers[1].connection._subscriptions) == kiosk_topics("k0", "k1")

        register_kiosk(settings, school="s1", kiosk="k6", secret=SECRETS["k6"])  # after the start
        wait_for(lambda: kiosk_topics("k6") <= set(workers[0].connection._subscriptions), what="k6 subscribed by worker 0")
        assert set(workers[1].connection._subscriptions) == kiosk_topics("k0", "k1")

        probe.connect(address.host, address.port)
        probe.loop_start()
        for kiosk, secret in SECRETS.items():
            event = protocol.new_event(school="s1", kiosk=kiosk, seq=1, prev="", at=datetime.now(UTC), kind="unknown_card",
                                       card="04A1B2C3", secret=bytes.fromhex(secret))
            probe.publish(f"sg/v1/s1/{kiosk}/events", protocol.canonical_json(event), qos=1).wait_for_publish(10)
        wait_for(lambda: [w.ingest.stored for w in workers] == [3, 2], what="each kiosk's event stored by its worker")
    finally:
        probe.loop_stop()
        for worker in workers:
            worker.stop()
        broker.stop()
        engine.dispose()


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_started_before_its_database_is_ready_subscribes_once_it_is(tmp_path, caplog):
    brokers_db = f"sqlite:///{tmp_path / 'broker.sqlite3'}"
    migrate(make_engine(brokers_db))
    broker = Broker(brokers_db).start()  # central's login only
    url = f"sqlite:///{tmp_path / 'central.sqlite3'}"  # not made yet: no kiosk table
    engine = make_engine(url)
    settings = Settings(database_url=url, mqtt_url=broker.central_url, signing_key_file=tmp_path / "central.key")
    worker = Bus(engine, broker=BrokerAddress.parse(broker.central_url), topics=protocol.Topics(), partition=(0, 2),
                 kiosk_refresh_s=0.1, settings=settings).start()
    try:
        assert "reading the kiosks to subscribe to failed" in caplog.text
        migrate(engine)
        create_school(settings, code="s1", name="s1")
        register_kiosk(settings, school="s1", kiosk="k4", secret=SECRETS["k4"])
        wait_for(lambda: kiosk_topics("k4") <= set(worker.connection._subscriptions), what="k4 subscribed once the database is there")
        assert "republishing the retained rosters failed" in caplog.text
        wait_for(lambda: not any(t.name == "roster-republish" for t in threading.enumerate()),
                 what="the rosters republished once the database is there")
    finally:
        worker.stop()
        broker.stop()
        engine.dispose()
