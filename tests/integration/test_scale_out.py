"""Two ingest workers share one event stream into PostgreSQL through Mosquitto (generated
configuration): by an MQTT 5 shared subscription, or each taking the kiosks of its partition.
Every event is stored exactly once, in order, either way."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from central.admin import central_key, create_school, register_kiosk
from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.core.events import DomainEvents, FeedAdvanced, SchoolWatched
from central.kiosks.bus import Bus
from gateway import mosquitto, protocol
from gateway.broker import wait_until_reachable
from gateway.mqtt import BrokerAddress, free_port
from hardware import CardTap
from kiosk.config import KioskSettings
from kiosk.runtime import Kiosk
from sgtest import wait_for

def require_mosquitto_binary() -> None:
    if shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: the mosquitto binary is needed and missing")
        pytest.skip("needs the mosquitto binary (Debian package mosquitto)")


SECRETS = {f"k{i}": uuid.uuid4().hex * 2 for i in range(3)}


@pytest.mark.parametrize("mode", ["shared", "partition"])
def test_two_workers_store_every_event_once(tmp_path, fresh_postgres, mode):
    require_mosquitto_binary()
    fresh = fresh_postgres
    port, central_port = free_port(), free_port()
    password = uuid.uuid4().hex
    logins = [mosquitto.KioskLogin("s1", k, s) for k, s in SECRETS.items()]
    # Both workers log in as central, on central's own listener: each keeps a client id of its own.
    conf = mosquitto.write(tmp_path / "mq", kiosks=logins, central_password=password, port=port, bind="127.0.0.1",
                           user=getpass.getuser(), central_port=central_port)
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    engine = make_engine(fresh)
    migrate(engine)
    settings = Settings(database_url=fresh, mqtt_url=f"mqtt://central:{password}@127.0.0.1:{central_port}")
    create_school(settings, code="s1", name="s1")
    for kiosk, secret in SECRETS.items():
        register_kiosk(settings, school="s1", kiosk=kiosk, secret=secret)
    workers, gates = [], []
    heard: list[list[int]] = [[], []]
    try:
        wait_until_reachable("127.0.0.1", port)
        wait_until_reachable("127.0.0.1", central_port)
        address = BrokerAddress.parse(settings.mqtt_url)
        if mode == "shared":
            workers = [Bus(engine, broker=address, topics=protocol.Topics(), shared_group="central", batch=50).start() for _ in range(2)]
        else:
            # Each worker follows the school's feed, as central serve does beside workers while a live
            # page of the school is open (SchoolWatched): its pages must hear what the other stored
            # (FeedAdvanced), each head once, in order.
            with engine.connect() as conn:
                school_id = conn.execute(sa.text("SELECT id FROM school WHERE code = 's1'")).scalar_one()
            for i in range(2):
                events = DomainEvents()
                events.subscribe(FeedAdvanced, lambda e, i=i: heard[i].append(e.head))
                workers.append(Bus(engine, broker=address, topics=protocol.Topics(), partition=(i, 2), batch=50, events=events,
                                   follow_feeds=True).start())
                events.publish(SchoolWatched(school_id, watching=True))
            wait_for(lambda: all(w.following == {school_id} for w in workers), timeout=10, what="both workers following s1's feed")
        for kiosk, secret in SECRETS.items():
            gate = Kiosk(KioskSettings(school="s1", kiosk=kiosk, data_dir=tmp_path / kiosk, secret=secret, mqtt_url=f"mqtt://127.0.0.1:{port}", resend_after=2.0,
                                       central_key=central_key(settings)))
            for i in range(700):
                gate.handle(CardTap(f"{int(kiosk[1:]) << 24 | i:08X}", "sim", "sim", datetime.now(UTC)))
            gates.append(gate)
        for gate in gates:
            gate.start()  # all three drain their 700 events at once, in batches of 100
        deadline = time.monotonic() + 60
        while any(g.store.queue_depth() for g in gates) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(g.store.queue_depth() for g in gates)
        if mode == "partition":
            wait_for(lambda: all(h and h[-1] == 2100 for h in heard), timeout=30, what="each worker heard the school's last head")
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT k.code, e.seq FROM event e JOIN kiosk k ON k.id = e.kiosk_id ORDER BY k.code, e.seq")).all()
        both = [w.ingest.stored for w in workers]
    finally:
        for gate in gates:
            gate.close()
        for worker in workers:
            worker.stop()
        engine.dispose()
        proc.kill()
        proc.wait(10)
    for kiosk in SECRETS:
        assert [seq for code, seq in rows if code == kiosk] == list(range(1, 701))
    assert sum(both) == 2100
    if mode == "shared":
        assert all(both), f"both workers take a share: {both}"
    else:
        # Each kiosk has exactly one writer: the worker its key hashes to.
        topics = protocol.Topics()
        expected = [700 * sum(w.mine(topics.events("s1", k)) for k in SECRETS) for w in workers]
        assert both == expected
        for heads in heard:  # its own batches and the other's, never a head twice nor going back
            assert heads == sorted(set(heads))
