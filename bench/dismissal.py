"""dismissal: a district's afternoon at once. 20 schools x 2,000 students, 4 kiosks each; every
student checked in, then picked up, within 15 simulated minutes replayed at 10x speed (90 s).

Central runs as its own process (`schoolgate central serve`) on PostgreSQL behind Mosquitto (as
generated); the kiosks are real kiosk stores and sync clients in this process. The lag of an event
is from its recording at the kiosk to the kiosk receiving central's ack for it, which central
sends only after the commit: an upper bound of event -> committed. Target: never above 1 s.
"""

from __future__ import annotations

import heapq
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from sqlmodel import Session

from bench.common import available, broker, central_key, database, emit, machine, ms, parse_args, percentile
from central.core.db import make_engine, migrate
from central.kiosks import services
from central.schools import registry
from gateway import mosquitto
from gateway.broker import wait_until_reachable
from gateway.client import SyncClient
from gateway.mqtt import BrokerAddress, free_port, kiosk_credentials
from kiosk.store import KioskStore


class TimedStore(KioskStore):
    """A kiosk store that notes when each event was recorded and when central acked it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.recorded: dict[int, float] = {}
        self.lags: list[float] = []

    def record(self, kind, at, **fields):
        event = super().record(kind, at, **fields)
        self.recorded[event["seq"]] = time.perf_counter()
        return event

    def ack(self, upto: int) -> int:
        now = time.perf_counter()
        first = self.acked + 1
        dropped = super().ack(upto)
        for seq in range(first, upto + 1):
            t = self.recorded.pop(seq, None)
            if t is not None:
                self.lags.append(now - t)
        return dropped


def run(*, schools: int = 20, students: int = 2000, kiosks: int = 4, minutes: float = 15.0, speed: float = 10.0, db: str = "postgres") -> list[dict]:
    if not available("mosquitto") or not available(db):
        return []
    real_seconds = minutes * 60 / speed
    secrets = {(f"school{s:02d}", f"gate{k}"): os.urandom(32).hex() for s in range(schools) for k in range(kiosks)}
    logins = [mosquitto.KioskLogin(s, k, secret) for (s, k), secret in secrets.items()]
    # 80 kiosks each have a disk of their own in a district; here they would queue on one disk's
    # fsyncs, so their stores live in memory (tmpfs) and the disk is central's alone.
    kiosk_disk = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with (
        database(db) as url,
        broker("mosquitto", logins) as (central_url, kiosk_url),
        tempfile.TemporaryDirectory(dir=kiosk_disk) as folder,
    ):
        engine = make_engine(url)
        migrate(engine)
        with Session(engine) as session:
            for school, kiosk in secrets:
                registry.ensure_school(session, code=school)
                services.register_kiosk(session, school=registry.get_school(session, school), kiosk=kiosk, secret=secrets[school, kiosk])
        engine.dispose()
        port = free_port()
        key_file, public = central_key(Path(folder))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}, "SCHOOLGATE_DATABASE_URL": url, "SCHOOLGATE_MQTT_URL": central_url,
               "SCHOOLGATE_SIGNING_KEY_FILE": str(key_file)}
        central = subprocess.Popen(
            [sys.executable, "-m", "schoolgate", "central", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        stores: dict[tuple[str, str], TimedStore] = {}
        clients: dict[tuple[str, str], SyncClient] = {}
        try:
            wait_until_reachable("127.0.0.1", port, timeout=60)
            address = BrokerAddress.parse(kiosk_url)
            for (school, kiosk), secret in secrets.items():
                store = TimedStore(Path(folder) / f"{school}-{kiosk}.sqlite3", school=school, kiosk=kiosk, secret=secret, central_key=public)
                user, password = kiosk_credentials(school, kiosk, secret)
                client = SyncClient(store, school=school, kiosk=kiosk, broker=BrokerAddress(address.host, address.port, user, password), resend_after=5.0)
                stores[school, kiosk] = store
                clients[school, kiosk] = client.start()
            while not all(c.online for c in clients.values()):
                time.sleep(0.1)
            # The afternoon: each student checks in during the first half and is picked up in the
            # second, at a gate of their school.
            rng = random.Random(3)
            plan: list[tuple[float, str, str, str, int]] = []
            for s in range(schools):
                school = f"school{s:02d}"
                for i in range(students):
                    gate = f"gate{rng.randrange(kiosks)}"
                    plan.append((rng.uniform(0, real_seconds / 2), school, gate, "checkin", i))
                    plan.append((rng.uniform(real_seconds / 2, real_seconds), school, gate, "pickup", i))
            heapq.heapify(plan)
            start = time.perf_counter()
            today = date.today()
            while plan:
                at, school, gate, kind, i = heapq.heappop(plan)
                time.sleep(max(0.0, start + at - time.perf_counter()))
                store = stores[school, gate]
                fields = {"student": f"{i:05d}", "card": f"{i:08X}"}
                if kind == "pickup":
                    fields["guardian"] = f"g{i}"
                store.record(kind, datetime.now(UTC), day=today, **fields)
                clients[school, gate].notify()
            behind = time.perf_counter() - start - real_seconds
            deadline = time.perf_counter() + 120
            while any(s.queue_depth() for s in stores.values()) and time.perf_counter() < deadline:
                time.sleep(0.1)
            left = sum(s.queue_depth() for s in stores.values())
        finally:
            for c in clients.values():
                c.stop()
            central.terminate()
            central.wait(20)
    lags = [lag for s in stores.values() for lag in s.lags]
    settings = {
        "schools": schools, "students_each": students, "kiosks_each": kiosks, "events": len(lags),
        "left_unacked": left, "simulated_minutes": minutes, "speed": speed, "db": db, "broker": "mosquitto",
        "replay_fell_behind_s": round(max(0.0, behind), 2), "kiosk_stores": kiosk_disk or "disk", **machine(),
    }
    return [
        emit("dismissal", "lag_p50", ms(percentile(lags, 50)), "ms", **settings),
        emit("dismissal", "lag_p99", ms(percentile(lags, 99)), "ms", **settings, target="<= 1000 ms"),
        emit("dismissal", "lag_max", ms(max(lags)), "ms", **settings, target="<= 1000 ms"),
    ]


TINY = dict(schools=2, students=20, kiosks=2, minutes=0.5)  # a size that only shows the benchmark still works (CI)


def main() -> None:
    args = parse_args(__doc__)
    run(**TINY) if args.tiny else run()


if __name__ == "__main__":
    main()
