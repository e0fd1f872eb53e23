"""scale_out: two central ingest workers sharing the event stream on Mosquitto (as generated) into
PostgreSQL, against one worker, same run: once through an MQTT 5 shared subscription
(`$share/central/...`, round robin), once each worker taking the kiosks of its partition. Workers are `schoolgate central ingest` processes; kiosks are real kiosk stores
filled offline with the same events for both runs, then drained at once by their sync clients.
Beside them, the same rows inserted raw (executemany, 500-row transactions) by one and by two writer
processes: on a 2-core machine the database's own scaling is the limit, so the workers' ratio is
divided by it. Target: that quotient >= 0.9, 0 lost, 0 duplicated.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

from bench.common import available, broker, central_key, database, emit, machine, parse_args, signed_events
from central.admin import create_school, register_kiosk
from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.kiosks import services
from central.kiosks.ingest import EVENT, event_row
from central.schools import registry
from gateway import mosquitto, protocol
from gateway.client import SyncClient
from gateway.mqtt import BrokerAddress, kiosk_credentials
from kiosk.store import KioskStore

SCHOOL = "bench"


def _fill(folder: Path, secrets: dict[str, str], per_kiosk: int) -> None:
    for kiosk, secret in secrets.items():
        store = KioskStore(folder / f"{kiosk}.sqlite3", school=SCHOOL, kiosk=kiosk, secret=secret)
        for i in range(per_kiosk):
            store.record("unknown_card", datetime.now(UTC), card=f"{i:08X}")
        store.close()


def run_workers(workers: int, filled: Path, secrets: dict[str, str], per_kiosk: int, mode: str = "shared") -> dict:
    logins = [mosquitto.KioskLogin(SCHOOL, k, s) for k, s in secrets.items()]
    with database("postgres") as url, broker("mosquitto", logins) as (central_url, kiosk_url), tempfile.TemporaryDirectory() as folder:
        engine = make_engine(url)
        migrate(engine)
        key_file, public = central_key(Path(folder))
        settings = Settings(database_url=url, mqtt_url=central_url, signing_key_file=key_file)
        create_school(settings, code=SCHOOL, name=SCHOOL)
        for kiosk, secret in secrets.items():
            register_kiosk(settings, school=SCHOOL, kiosk=kiosk, secret=secret)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}
        env.update(SCHOOLGATE_DATABASE_URL=url, SCHOOLGATE_MQTT_URL=central_url, SCHOOLGATE_CLOCK_SKEW_LIMIT_S="1e9",
                   SCHOOLGATE_SIGNING_KEY_FILE=str(key_file))
        if mode == "shared":
            env["SCHOOLGATE_INGEST_SHARED_GROUP"] = "central"
        logs = [Path(folder) / f"worker-{i}.log" for i in range(workers)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "schoolgate", "central", "ingest"],
                env={**env, **({"SCHOOLGATE_INGEST_PARTITION": f"{i}/{workers}"} if mode == "partition" else {})},
                stdout=subprocess.DEVNULL,
                stderr=open(log, "w"),
            )
            for i, log in enumerate(logs)
        ]
        clients: list[SyncClient] = []
        try:
            _wait_connected(procs, logs)
            address = BrokerAddress.parse(kiosk_url)
            stores = []
            for kiosk, secret in secrets.items():
                shutil.copy(filled / f"{kiosk}.sqlite3", Path(folder) / f"{kiosk}.sqlite3")
                store = KioskStore(Path(folder) / f"{kiosk}.sqlite3", school=SCHOOL, kiosk=kiosk, central_key=public)
                stores.append(store)
                user, password = kiosk_credentials(SCHOOL, kiosk, secret)
                clients.append(SyncClient(store, school=SCHOOL, kiosk=kiosk, broker=BrokerAddress(address.host, address.port, user, password), resend_after=5.0))
            t0 = time.perf_counter()
            for client in clients:
                client.start()
            deadline = t0 + 600
            while any(s.queue_depth() for s in stores) and time.perf_counter() < deadline:
                time.sleep(0.05)
            elapsed = time.perf_counter() - t0
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT k.code, COUNT(*), COUNT(DISTINCT e.seq), MAX(e.seq) FROM event e JOIN kiosk k ON k.id = e.kiosk_id GROUP BY k.code")).all()
        finally:
            for client in clients:
                client.stop()
            for proc in procs:
                proc.terminate()
                proc.wait(20)
            engine.dispose()
    stored = sum(r[1] for r in rows)
    total = per_kiosk * len(secrets)
    duplicated = sum(r[1] - r[2] for r in rows)
    return {"rate": stored / elapsed, "stored": stored, "lost": total - sum(r[2] for r in rows), "duplicated": duplicated}


def _wait_connected(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 60.0) -> None:
    """Until each worker has logged its broker connection (it subscribes in the same callback; a message
    sent before the SUBACK is only resent by its kiosk, which the figure would show)."""
    deadline = time.monotonic() + timeout
    while not all("connected to" in log.read_text(errors="replace") for log in logs):
        if any(proc.poll() is not None for proc in procs) or time.monotonic() > deadline:
            raise RuntimeError("an ingest worker did not connect: " + " | ".join(log.read_text(errors="replace")[-500:] for log in logs))
        time.sleep(0.05)


def _raw_writer(url: str, rows: list[dict], ready, start, done) -> None:
    """One raw writer process: its rows with executemany in 500-row transactions, from the common start."""
    engine = make_engine(url)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        conn.rollback()
        ready.put(True)
        start.wait()
        for first in range(0, len(rows), 500):
            with conn.begin():
                conn.execute(EVENT.insert(), rows[first : first + 500])
    engine.dispose()
    done.put(time.perf_counter())


def raw_writers(writers: int, secrets: dict[str, str], per_kiosk: int) -> float:
    """Rows/s the database takes from ``writers`` processes of raw inserts (the kiosks split among
    them as the partitioned workers split them), the same rows the ingest stores: the database's own
    scaling on this machine, which the workers' is measured against."""
    with database("postgres") as url:
        engine = make_engine(url)
        migrate(engine)
        with Session(engine) as session:
            school = registry.ensure_school(session, code=SCHOOL)
            ids = {k: services.register_kiosk(session, school=school, kiosk=k, secret=s)[0].id for k, s in secrets.items()}
            school_id = school.id
        engine.dispose()
        now = datetime.now(UTC)
        shares: list[list[dict]] = [[] for _ in range(writers)]
        for i, (kiosk, secret) in enumerate(secrets.items()):
            for e in signed_events(SCHOOL, kiosk, bytes.fromhex(secret), per_kiosk):
                shares[i % writers].append(
                    event_row(protocol.parse_event(e), protocol.event_hash(e), school_id=school_id, kiosk_id=ids[kiosk], at=now, received_at=now)
                )
        context = multiprocessing.get_context("fork")
        ready, start, done = context.Queue(), context.Event(), context.Queue()
        procs = [context.Process(target=_raw_writer, args=(url, share, ready, start, done)) for share in shares]
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.get(timeout=60)  # each writer connected
        t0 = time.perf_counter()
        start.set()
        ends = [done.get(timeout=600) for _ in procs]
        for proc in procs:
            proc.join(30)
    return sum(len(share) for share in shares) / (max(ends) - t0)


def run(*, kiosks: int = 8, per_kiosk: int = 10_000) -> list[dict]:
    if not available("mosquitto") or not available("postgres"):
        return []
    secrets = {f"k{i}": os.urandom(32).hex() for i in range(kiosks)}
    with tempfile.TemporaryDirectory() as filled:
        _fill(Path(filled), secrets, per_kiosk)
        one = run_workers(1, Path(filled), secrets, per_kiosk)
        shared = run_workers(2, Path(filled), secrets, per_kiosk, "shared")
        partitioned = run_workers(2, Path(filled), secrets, per_kiosk, "partition")
    raw_one = raw_writers(1, secrets, per_kiosk)
    raw_two = raw_writers(2, secrets, per_kiosk)
    settings = {"kiosks": kiosks, "events": kiosks * per_kiosk, "broker": "mosquitto", "db": "postgres", **machine()}
    figures = [emit("scale_out", "one_worker", round(one["rate"]), "events/s", **settings, lost=one["lost"], duplicated=one["duplicated"])]
    figures.append(emit("scale_out", "raw_one_writer", round(raw_one), "rows/s", **settings))
    figures.append(emit("scale_out", "raw_two_writers", round(raw_two), "rows/s", **settings))
    figures.append(emit("scale_out", "raw_two_over_one", round(raw_two / raw_one, 3), "ratio", **settings))
    for name, two in (("shared_subscription", shared), ("partitioned", partitioned)):
        ratio = two["rate"] / one["rate"]
        figures.append(emit("scale_out", f"two_workers_{name}", round(two["rate"]), "events/s", **settings, lost=two["lost"], duplicated=two["duplicated"]))
        figures.append(emit("scale_out", f"two_over_one_{name}", round(ratio, 3), "ratio", **settings, lost=two["lost"], duplicated=two["duplicated"]))
        figures.append(emit("scale_out", f"two_over_one_{name}_over_raw", round(ratio / (raw_two / raw_one), 3), "ratio", **settings,
                            target=">= 0.9 (workers' scaling / the database's own), 0 lost, 0 duplicated"))
    return figures


TINY = dict(kiosks=2, per_kiosk=100)  # a size that only shows the benchmark still works (CI)


def main() -> None:
    args = parse_args(__doc__)
    run(**TINY) if args.tiny else run()


if __name__ == "__main__":
    main()
