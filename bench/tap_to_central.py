"""tap_to_central: a tap at a kiosk until its event is committed at central and visible through
the API, through Mosquitto (as generated) and the embedded broker. 20 taps/s for 60 s.
Target: p99 <= 100 ms through Mosquitto.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.common import available, broker, database, emit, machine, ms, parse_args, percentile
from central.admin import central_key, create_school, register_kiosk
from central.core.config import Settings
from central.server import CentralServer
from gateway import mosquitto
from gateway.mqtt import free_port
from hardware import CardTap
from kiosk.config import KioskSettings
from kiosk.runtime import Kiosk

SECRET = "ab" * 32


def run_one(broker_kind: str, *, rate: float, seconds: float) -> list[float]:
    logins = [mosquitto.KioskLogin("bench", "gate-1", SECRET)]
    with database("sqlite") as url, broker(broker_kind, logins) as (central_url, kiosk_url), tempfile.TemporaryDirectory() as folder:
        settings = Settings(database_url=url, mqtt_url=central_url, signing_key_file=Path(folder) / "central-signing.key")
        create_school(settings, code="bench", name="bench")
        register_kiosk(settings, school="bench", kiosk="gate-1", secret=SECRET)
        with CentralServer(settings, port=free_port()) as central:
            gate = Kiosk(KioskSettings(school="bench", kiosk="gate-1", data_dir=Path(folder), secret=SECRET, mqtt_url=kiosk_url,
                                       central_key=central_key(settings))).start()
            headers = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
            seen: dict[int, float] = {}
            tapped: dict[int, float] = {}
            stop = threading.Event()

            def watch() -> None:
                # What a teacher's page does: ask for what is new since the last event it saw.
                with httpx.Client(base_url=central.url, headers=headers) as client:
                    after = 0
                    while not stop.is_set():
                        rows = client.get("/api/v1/schools/bench/events", params={"kiosk": "gate-1", "after_seq": after}).json()
                        now = time.perf_counter()
                        for row in rows:
                            seen.setdefault(row["seq"], now)
                            after = max(after, row["seq"])
                        time.sleep(0.002)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            while not gate.sync.online:
                time.sleep(0.05)
            count = int(rate * seconds)
            start = time.perf_counter()
            for i in range(count):
                time.sleep(max(0.0, start + i / rate - time.perf_counter()))
                t = time.perf_counter()
                shown = gate.handle(CardTap(f"{0x30000000 + i:08X}", "sim", "sim", _now()))
                tapped[shown.seq] = t
            deadline = time.perf_counter() + 30
            while len(seen) < count and time.perf_counter() < deadline:
                time.sleep(0.01)
            stop.set()
            watcher.join(5)
            gate.close()
    return [seen[seq] - t for seq, t in tapped.items() if seq in seen]


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def run(*, rate: float = 20.0, seconds: float = 60.0, brokers=("mosquitto", "embedded")) -> list[dict]:
    out = []
    for kind in brokers:
        if not available(kind):
            continue
        latencies = run_one(kind, rate=rate, seconds=seconds)
        settings = {"broker": kind, "taps_per_s": rate, "seconds": seconds, "taps": int(rate * seconds), "seen": len(latencies), **machine()}
        out.append(emit("tap_to_central", f"p50_{kind}", ms(percentile(latencies, 50)), "ms", **settings))
        out.append(emit("tap_to_central", f"p99_{kind}", ms(percentile(latencies, 99)), "ms", **settings, target="<= 100 ms"))
        out.append(emit("tap_to_central", f"max_{kind}", ms(max(latencies)), "ms", **settings))
    return out


TINY = dict(seconds=1.0)  # a size that only shows the benchmark still works (CI)


def main() -> None:
    args = parse_args(__doc__)
    run(**TINY) if args.tiny else run()


if __name__ == "__main__":
    main()
