"""gate_to_gate: a tap at gate A until gate B of the same school has it in its state (issue 13), through
the school's feed: A's event to central, stored and placed in the feed, published, received by B,
checked and folded. 20 taps/s for 60 s at gate A; gate B only listens.
Target: p99 <= 200 ms through Mosquitto. In the same run: a tap until A has central's ack (tap -> central),
so the ratio says what the feed adds.
"""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import available, broker, database, emit, machine, ms, parse_args, percentile
from central.admin import central_key, create_school, register_kiosk
from central.core.config import Settings
from central.server import CentralServer
from gateway import mosquitto
from gateway.feed import CURRENT
from gateway.mqtt import free_port
from hardware import CardTap
from kiosk.config import KioskSettings
from kiosk.runtime import Kiosk

SECRETS = {"gate-a": "a1" * 32, "gate-b": "b2" * 32}


def _wait(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the gates did not come up")
        time.sleep(0.02)


def run_one(broker_kind: str, *, rate: float, seconds: float) -> tuple[list[float], list[float]]:
    logins = [mosquitto.KioskLogin("bench", gate, secret) for gate, secret in SECRETS.items()]
    with database("sqlite") as url, broker(broker_kind, logins) as (central_url, kiosk_url), tempfile.TemporaryDirectory() as folder:
        settings = Settings(database_url=url, mqtt_url=central_url, signing_key_file=Path(folder) / "central-signing.key")
        create_school(settings, code="bench", name="bench")
        for gate, secret in SECRETS.items():
            register_kiosk(settings, school="bench", kiosk=gate, secret=secret)
        with CentralServer(settings, port=free_port()) as central:
            gates = {
                gate: Kiosk(KioskSettings(school="bench", kiosk=gate, data_dir=Path(folder) / gate, secret=secret,
                                          mqtt_url=kiosk_url, central_key=central_key(settings), central_url=central.url)).start()
                for gate, secret in SECRETS.items()
            }
            a, b = gates["gate-a"], gates["gate-b"]
            _wait(lambda: a.sync.online and b.sync.online and b.feed.state == CURRENT)
            in_b: dict[str, float] = {}
            acked: dict[int, float] = {}
            lock = threading.Lock()

            # Gate B's state has an event once apply_feed returns (stored and folded); gate A knows central
            # has its event once its outbox is acked up to it.
            folded, ack = b.apply_feed, a.store.ack

            def apply_feed(events, **kw):
                folded(events, **kw)
                now = time.perf_counter()
                with lock:
                    for event in events:
                        in_b.setdefault(event.id, now)

            def store_ack(upto: int) -> int:
                result = ack(upto)
                now = time.perf_counter()
                with lock:
                    for seq in range(max(acked, default=0) + 1, upto + 1):
                        acked.setdefault(seq, now)
                return result

            b.apply_feed, a.store.ack = apply_feed, store_ack
            count = int(rate * seconds)
            tapped: dict[str, tuple[int, float]] = {}
            start = time.perf_counter()
            for i in range(count):
                time.sleep(max(0.0, start + i / rate - time.perf_counter()))
                t = time.perf_counter()
                shown = a.handle(CardTap(f"{0x40000000 + i:08X}", "sim", "sim", datetime.now(UTC)))
                tapped[shown.event_id] = (shown.seq, t)
            _wait(lambda: len(in_b) >= count and len(acked) >= count, seconds=60)
            for kiosk in gates.values():
                kiosk.close()
    to_b = [in_b[event_id] - t for event_id, (_, t) in tapped.items() if event_id in in_b]
    to_central = [acked[seq] - t for seq, t in tapped.values() if seq in acked]
    return to_b, to_central


def run(*, rate: float = 20.0, seconds: float = 60.0, brokers=("mosquitto", "embedded")) -> list[dict]:
    out = []
    for kind in brokers:
        if not available(kind):
            continue
        to_b, to_central = run_one(kind, rate=rate, seconds=seconds)
        settings = {"broker": kind, "taps_per_s": rate, "seconds": seconds, "taps": int(rate * seconds),
                    "in_b": len(to_b), **machine()}
        p99_b, p99_central = percentile(to_b, 99), percentile(to_central, 99)
        out.append(emit("gate_to_gate", f"p50_{kind}", ms(percentile(to_b, 50)), "ms", **settings))
        out.append(emit("gate_to_gate", f"p99_{kind}", ms(p99_b), "ms", **settings, target="<= 200 ms"))
        out.append(emit("gate_to_gate", f"max_{kind}", ms(max(to_b)), "ms", **settings))
        out.append(emit("gate_to_gate", f"p99_tap_to_central_{kind}", ms(p99_central), "ms", **settings))
        out.append(emit("gate_to_gate", f"ratio_p99_{kind}", round(p99_b / p99_central, 2), "x", **settings))
    return out


TINY = dict(seconds=1.0)  # a size that only shows the benchmark still works (CI)


def main() -> None:
    args = parse_args(__doc__)
    run(**TINY) if args.tiny else run()


if __name__ == "__main__":
    main()
