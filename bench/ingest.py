"""ingest: central's MQTT ingest against the raw limits of the same broker and database, same run.

For each broker (embedded amqtt, Mosquitto as generated) and database (SQLite, PostgreSQL):
events from several kiosks published as single messages and as batches of 100, stored by
central's ingest; beside it the raw insert rate of the same rows with plain ``executemany`` in
500-row transactions, and what paho alone receives of the same single messages from the same
broker. Targets: batched ingest >= 0.5 x raw on SQLite; single-message ingest >= 0.7 x paho alone.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from bench.common import available, broker, database, emit, machine, parse_args, signed_events
from central.core.db import make_engine, migrate
from central.kiosks import services
from central.kiosks.bus import Bus
from central.kiosks.ingest import EVENT, event_row
from central.schools import registry
from gateway import mosquitto, protocol
from gateway.mqtt import BrokerAddress, make_client

BATCH = 100
SECRET = bytes(32)


def _publish(url: str, topic: str, payloads: list[bytes]) -> None:
    address = BrokerAddress.parse(url)
    client = make_client(f"bench-pub-{uuid.uuid4().hex[:8]}", address)
    client.connect(address.host, address.port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for payload in payloads]
    for info in infos:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def _flood(url: str, topics: protocol.Topics, school: str, per_kiosk: dict[str, list[dict]], batched: bool) -> None:
    threads = []
    for kiosk, events in per_kiosk.items():
        if batched:
            payloads = [protocol.batch_payload(events[i : i + BATCH]) for i in range(0, len(events), BATCH)]
        else:
            payloads = [protocol.canonical_json(e) for e in events]
        threads.append(threading.Thread(target=_publish, args=(url, topics.events(school, kiosk), payloads)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def paho_alone(url: str, payloads_per_kiosk: dict[str, list[bytes]], prefix: str) -> float:
    """Messages/s one paho subscriber receives of the same flood, nothing else done with them."""
    address = BrokerAddress.parse(url)
    total = sum(len(p) for p in payloads_per_kiosk.values())
    got = 0
    done = threading.Event()
    last = 0.0

    def on_message(_c, _u, _m) -> None:
        nonlocal got, last
        got += 1
        last = time.perf_counter()
        if got == total:
            done.set()

    sub = make_client(f"bench-sub-{uuid.uuid4().hex[:8]}", address)
    sub.on_message = on_message
    sub.connect(address.host, address.port)
    sub.loop_start()
    sub.subscribe(f"{prefix}/#", qos=1)
    time.sleep(0.5)
    t0 = time.perf_counter()
    threads = [
        threading.Thread(target=_publish, args=(url, f"{prefix}/{kiosk}/events", payloads))
        for kiosk, payloads in payloads_per_kiosk.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while not done.wait(1.0) and time.perf_counter() - max(last, t0) < 5.0:
        pass  # the broker dropped some: count what came
    elapsed = max(last, t0) - t0
    sub.disconnect()
    sub.loop_stop()
    return got / elapsed if elapsed else 0.0


def raw_insert(url: str, rows: list[dict]) -> float:
    """Rows/s of the same rows with executemany in 500-row transactions."""
    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as session:
        school = registry.ensure_school(session, code="raw")
        kiosk, _ = services.register_kiosk(session, school=registry.get_school(session, "raw"), kiosk="raw")
        school_id, kiosk_id = school.id, kiosk.id
    rows = [{**r, "school_id": school_id, "kiosk_id": kiosk_id, "seq": i + 1} for i, r in enumerate(rows)]
    t0 = time.perf_counter()
    with engine.connect() as conn:
        for start in range(0, len(rows), 500):
            with conn.begin():
                conn.execute(EVENT.insert(), rows[start : start + 500])
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return len(rows) / elapsed


def run_one(broker_kind: str, db_kind: str, batched: bool, events: int, kiosks: int, per_kiosk: dict) -> tuple[float, int]:
    school = "bench"
    topics = protocol.Topics()  # each run has a broker of its own
    logins = [mosquitto.KioskLogin(school, k, SECRET.hex()) for k in per_kiosk]
    with database(db_kind) as url, broker(broker_kind, logins) as (central_url, _):
        engine = make_engine(url)
        migrate(engine)
        with Session(engine) as session:
            registry.ensure_school(session, code=school)
            for kiosk in per_kiosk:
                services.register_kiosk(session, school=registry.get_school(session, school), kiosk=kiosk, secret=SECRET.hex())
        done = threading.Event()
        last = [0.0]

        def on_stored(rows) -> None:
            last[0] = time.perf_counter()
            if bus.ingest.stored >= events:
                done.set()

        # The events were made before the run, so their wall clocks look behind: no skew incidents.
        bus = Bus(engine, broker=BrokerAddress.parse(central_url), topics=topics, skew_limit_ms=10**12,
                  signing_key=Ed25519PrivateKey.generate())  # a key of this run's own, not one left in the working folder
        bus.ingest.on_stored = on_stored
        bus.start()
        t0 = time.perf_counter()
        # The publishers stand in for kiosks and log in as central, which may write any topic.
        _flood(central_url, topics, school, per_kiosk, batched)
        # A broker may drop messages under a flood (these publishers, unlike kiosks, never resend):
        # stop once nothing more arrives for 5 s, and count what was stored by then.
        while not done.wait(1.0) and time.perf_counter() - max(last[0], t0) < 5.0:
            pass
        elapsed = max(last[0], t0) - t0
        stored = bus.ingest.stored
        bus.stop()
        engine.dispose()
    return stored / elapsed, stored


def run(
    *,
    events: int = 200_000,
    single_events: int = 20_000,
    kiosks: int = 4,
    brokers=("embedded", "mosquitto"),
    dbs=("sqlite", "postgres"),
) -> list[dict]:
    """``events`` go as batches; single messages are slower by far (amqtt passes a few hundred a
    second under a flood), so ``single_events`` of them go one message each."""
    per = events // kiosks
    per_kiosk = {f"k{i}": signed_events("bench", f"k{i}", SECRET, per) for i in range(kiosks)}
    events = per * kiosks
    per_single = single_events // kiosks
    singles_per_kiosk = {k: v[:per_single] for k, v in per_kiosk.items()}
    single_events = per_single * kiosks
    now = datetime.now(UTC)
    rows = [
        event_row(protocol.parse_event(e), protocol.event_hash(e), school_id=0, kiosk_id=0, at=now, received_at=now)
        for events_ in per_kiosk.values()
        for e in events_
    ]
    out = []
    for db_kind in dbs:
        if not available(db_kind):
            continue
        with database(db_kind) as url:
            raw = raw_insert(url, rows)
        out.append(emit("ingest", f"raw_insert_{db_kind}", round(raw), "rows/s", rows=len(rows), transaction=500, **machine()))
        for broker_kind in brokers:
            if not available(broker_kind):
                continue
            with broker(broker_kind, []) as (url, _):
                singles = {k: [protocol.canonical_json(e) for e in v] for k, v in singles_per_kiosk.items()}
                alone = paho_alone(url, singles, f"{protocol.DEFAULT_PREFIX}/alone")
            for batched in (True, False):
                sent, flood = (events, per_kiosk) if batched else (single_events, singles_per_kiosk)
                rate, stored = run_one(broker_kind, db_kind, batched, sent, kiosks, flood)
                mode = "batch" if batched else "single"
                settings = {"events": sent, "stored": stored, "kiosks": kiosks, "broker": broker_kind, "db": db_kind, "mode": mode}
                out.append(emit("ingest", f"{mode}_{broker_kind}_{db_kind}", round(rate), "events/s", **settings))
                if batched:
                    out.append(emit("ingest", f"batch_over_raw_{broker_kind}_{db_kind}", round(rate / raw, 3), "ratio", **settings, target=">= 0.5 on sqlite"))
                else:
                    out.append(emit("ingest", f"paho_alone_{broker_kind}", round(alone), "messages/s", **settings))
                    out.append(emit("ingest", f"single_over_paho_{broker_kind}_{db_kind}", round(rate / alone, 3), "ratio", **settings, target=">= 0.7"))
    return out


TINY = dict(events=400, single_events=200)  # a size that only shows the benchmark still works (CI)


def main() -> None:
    args = parse_args(__doc__)
    run(**TINY) if args.tiny else run()


if __name__ == "__main__":
    main()
