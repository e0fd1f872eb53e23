"""city: a whole city's dismissal on one machine. 1,000,000 children in 500 schools (4 gates each,
2,000 kiosks), 2,000,000 events in 15 minutes (about 2,200 a second), replayed against central
(`schoolgate central serve`, its own process) on PostgreSQL behind Mosquitto (as generated).

The kiosks are a load generator in this process: 2,000 kiosk processes do not fit here. It publishes
what kiosks publish (each kiosk's own chain, signed with its own secret, one message as soon as
events are due, a batch when more than one is pending, as the sync client does) with central's
broker login, and reads central's acks. The lag of an event is from the moment it was due to the
ack covering it (central acks after the commit: an upper bound of event -> committed). Meanwhile
two readers ask what the pages ask: a school's events list over HTTP (the oldest page and a gate's
newest 100), and a group's live roster (each of 40 children's last event today, the query a live
roster makes; main has no live-roster endpoint yet).

Left out by the generator: the kiosks' own SQLite outboxes and fsyncs (each kiosk has its own disk),
2,000 TCP connections and their logins (one connection carries all), resends (none needed when
nothing is lost), status messages and roster fetches, and the children's rows (ingest does not read
them; 500 schools x 2,000 students would be imported before, not during, the dismissal).

``--minutes`` simulated minutes at ``--speed`` (2,000,000 x minutes / 15 events over minutes / speed
real minutes); ``--speeds 1,2,3`` then runs a phase of ``--phase-seconds`` at each further speed on
the same central, for the fastest speed keeping p99 <= 1 s. Targets: lag p99 <= 1 s at real speed,
nothing left behind; reads p99 <= 100 ms.
"""

from __future__ import annotations

import argparse
import collections
import gc
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import sqlalchemy as sa
from sqlmodel import Session

from bench.common import available, broker, central_key, database, emit, machine, ms, percentile
from central.core.db import make_engine, migrate
from central.kiosks import services
from central.schools import registry
from gateway import protocol
from gateway.broker import wait_until_reachable
from gateway.mqtt import BrokerAddress, free_port, make_client

CITY_EVENTS = 2_000_000
CITY_MINUTES = 15.0
KINDS = ("checkout", "pickup")  # each child leaves its group, then is picked up at a gate


class Gate:
    """One simulated kiosk: its chain, and when each of its unacked events was due."""

    def __init__(self, school: str, kiosk: str, secret: bytes) -> None:
        self.school, self.kiosk, self.secret = school, kiosk, secret
        self.seq, self.prev = 0, ""
        self.due: collections.deque[tuple[int, float]] = collections.deque()
        self.lock = threading.Lock()

    def event(self, kind: str, student: int, due: float, at: datetime | None = None) -> dict:
        self.seq += 1
        fields = {"student": f"{student:06d}", "card": f"{student:08X}"}
        if kind == "pickup":
            fields["guardian"] = f"g{student}"
        # What protocol.new_event builds, without its check that the event is valid (the first event
        # of a run is checked, in run()): that check was a fifth of this process's time, and at the
        # speeds searched here the generator must not be what falls behind.
        at = at or datetime.now(UTC)
        event = {"v": protocol.VERSION, "id": protocol.uuid7(), "school": self.school, "kiosk": self.kiosk, "seq": self.seq,
                 "prev": self.prev, "at": at.isoformat(timespec="milliseconds"), "kind": kind, **fields}
        event["sig"] = protocol.sign(event, self.secret)
        if self.seq == 1:
            protocol.parse_event(event)  # each gate's first event: what central would refuse is not sent
        self.prev = protocol.event_hash(event)
        with self.lock:
            self.due.append((self.seq, due))
        return event

    def acked(self, upto: int, now: float) -> list[float]:
        lags = []
        with self.lock:
            while self.due and self.due[0][0] <= upto:
                lags.append(now - self.due.popleft()[1])
        return lags


class Readers:
    """The pages' reads while the dismissal runs, each timed."""

    def __init__(self, base_url: str, token: str, db_url: str, schools: list[str], school_ids: dict[str, int]) -> None:
        self.base_url, self.token, self.db_url = base_url, token, db_url
        self.schools, self.school_ids = schools, school_ids
        self.events: list[float] = []
        self.roster: list[float] = []
        self.errors = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._events, daemon=True), threading.Thread(target=self._roster, daemon=True)]

    def start(self) -> Readers:
        for t in self.threads:
            t.start()
        return self

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def _events(self) -> None:
        rng = random.Random(5)
        with httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30) as client:
            while not self.stop.wait(0.05):
                school = rng.choice(self.schools)
                params = {"limit": 100} if rng.random() < 0.5 else {"kiosk": "gate0", "after_seq": 0, "limit": 100}
                t = time.perf_counter()
                answer = client.get(f"/api/v1/schools/{school}/events", params=params)
                if answer.status_code != 200:
                    self.errors += 1
                    continue
                self.events.append(time.perf_counter() - t)

    def _roster(self) -> None:
        rng = random.Random(7)
        engine = make_engine(self.db_url)
        query = sa.text(
            "SELECT DISTINCT ON (student) student, kind, at FROM event "
            "WHERE school_id = :school AND student = ANY(:students) AND at >= :since ORDER BY student, at DESC"
        )
        try:
            with engine.connect() as conn:
                while not self.stop.wait(0.05):
                    school = self.school_ids[rng.choice(self.schools)]
                    first = rng.randrange(0, 2000 - 40)
                    students = [f"{i:06d}" for i in range(first, first + 40)]
                    since = datetime.now(UTC) - timedelta(hours=12)
                    t = time.perf_counter()
                    conn.execute(query, {"school": school, "students": students, "since": since}).all()
                    self.roster.append(time.perf_counter() - t)
                    conn.rollback()
        finally:
            engine.dispose()


def _read(conn, base_url: str, token: str, db_url: str, schools: list[str], school_ids: dict[str, int]) -> None:
    """The readers in a process of their own (``spawn``): timed in this process, a read's time would
    include waiting for the generator's GIL, which has nothing to do with how fast central answers.
    ``take`` answers the reads timed since the last ``take`` and starts afresh; ``stop`` ends it."""
    readers = Readers(base_url, token, db_url, schools, school_ids).start()
    try:
        while True:
            command = conn.recv()
            if command == "take":
                events, roster, errors = readers.events, readers.roster, readers.errors
                readers.events, readers.roster, readers.errors = [], [], 0
                conn.send((events, roster, errors))
            else:
                return
    finally:
        readers.close()


class ReaderProcess:
    def __init__(self, *args) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_read, args=(child, *args), daemon=True)
        self.process.start()

    def take(self) -> tuple[list[float], list[float], int]:
        self.conn.send("take")
        return self.conn.recv()

    def close(self) -> None:
        if self.process.is_alive():
            self.conn.send("stop")
        self.process.join(15)
        if self.process.is_alive():
            self.process.kill()


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux /proc), all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _plan(gates: list[Gate], students: int, events: int, rate: float, start: float, at: datetime, rng: random.Random,
          kinds=KINDS) -> list[tuple[int, bytes]]:
    """Every event of a phase made, signed and chained before it starts, stamped with the time it is due
    (``start``: the phase's start, perf_counter; ``at``: the same on the wall clock): the 2,000 kiosks make
    their events on their own CPUs, not on central's machine, so the generator makes them ahead and only
    publishes them on time (each gate's ``due`` is filled here: an event's lag counts from its due time).
    Returns (gate index, canonical JSON)."""
    plan = []
    for n in range(events):
        index = rng.randrange(len(gates))
        event = gates[index].event(kinds[n % len(kinds)], rng.randrange(students), start + n / rate, at + timedelta(seconds=n / rate))
        plan.append((index, protocol.canonical_json(event)))
    return plan


def _replay(client, gates: list[Gate], plan: list[tuple[int, bytes]], seconds: float, start: float) -> float:
    """Publish the planned events spread evenly over ``seconds`` from ``start`` (perf_counter), those of
    a gate due together as one batch, as the sync client sends them; returns how far behind the schedule
    it ended (s)."""
    events = len(plan)
    rate = events / seconds
    made, checked = 0, False
    topics = protocol.Topics()
    while made < events:
        now = time.perf_counter()
        due = min(events, int((now - start) * rate) + 1)
        pending: dict[int, list[bytes]] = {}
        for index, payload in plan[made:due]:
            pending.setdefault(index, []).append(payload)
        made = due
        for index, batch in pending.items():
            gate = gates[index]
            for i in range(0, len(batch), 100):
                part = batch[i : i + 100]
                # protocol.batch_payload's canonical JSON, from the events' own (the first checked against it)
                payload = part[0] if len(part) == 1 else b'{"batch":[' + b",".join(part) + b'],"v":1}'
                if len(part) > 1 and not checked:
                    assert payload == protocol.batch_payload([orjson.loads(p) for p in part]), payload[:200]
                    checked = True
                client.publish(topics.events(gate.school, gate.kiosk), payload, qos=1)
        time.sleep(max(0.0, min(0.02, start + made / rate - time.perf_counter())))
    return max(0.0, time.perf_counter() - start - seconds)


def run(
    *, schools: int = 500, kiosks: int = 4, students: int = 2000, minutes: float = CITY_MINUTES, speed: float = 1.0,
    speeds: tuple[float, ...] = (), phase_seconds: float = 30.0, kinds: tuple[str, ...] = KINDS, workers: int = 0,
) -> list[dict]:
    if not available("mosquitto") or not available("postgres"):
        return []
    per_second = CITY_EVENTS / (CITY_MINUTES * 60)
    codes = [f"c{s:03d}" for s in range(schools)]
    secrets = {(c, f"gate{k}"): os.urandom(32) for c in codes for k in range(kiosks)}
    token = uuid.uuid4().hex + uuid.uuid4().hex
    figures = []
    with database("postgres") as url, broker("mosquitto", []) as (central_url, _), tempfile.TemporaryDirectory() as folder:
        engine = make_engine(url)
        migrate(engine)
        with Session(engine) as session:
            for code in codes:
                school = registry.ensure_school(session, code=code)
                for k in range(kiosks):
                    services.register_kiosk(session, school=school, kiosk=f"gate{k}", secret=secrets[code, f"gate{k}"].hex())
            school_ids = {code: registry.get_school(session, code).id for code in codes}
        port = free_port()
        key_file, _public = central_key(Path(folder))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}, "SCHOOLGATE_DATABASE_URL": url,
               "SCHOOLGATE_MQTT_URL": central_url, "SCHOOLGATE_SIGNING_KEY_FILE": str(key_file), "SCHOOLGATE_API_TOKEN": token}
        log = open(os.environ.get("CITY_CENTRAL_LOG", os.devnull), "w")
        # With --workers N central serve only serves HTTP (SCHOOLGATE_SERVE_INGEST=false) and N `central
        # ingest` processes store the events, partitioned by kiosk when N > 1 (docs/scale.md).
        central = subprocess.Popen([sys.executable, "-m", "schoolgate", "central", "serve", "--port", str(port)],
                                   env={**env, **({"SCHOOLGATE_SERVE_INGEST": "false"} if workers else {})},
                                   stdout=subprocess.DEVNULL, stderr=log)
        ingesters = [subprocess.Popen([sys.executable, "-m", "schoolgate", "central", "ingest"],
                                      env={**env, **({"SCHOOLGATE_INGEST_PARTITION": f"{i}/{workers}"} if workers > 1 else {})},
                                      stdout=subprocess.DEVNULL, stderr=log)
                     for i in range(workers)]
        pids = [central.pid] + [p.pid for p in ingesters]
        gates = [Gate(code, kiosk, secret) for (code, kiosk), secret in secrets.items()]
        by_key = {(g.school, g.kiosk): g for g in gates}
        lags: list[float] = []
        address = BrokerAddress.parse(central_url)

        def on_message(_c, _u, message) -> None:
            now = time.perf_counter()
            try:
                ack = orjson.loads(message.payload)
                gate = by_key[ack["school"], ack["kiosk"]]
            except (ValueError, KeyError):
                return
            lags.extend(gate.acked(ack["upto"], now))

        client = make_client(f"bench-city-{uuid.uuid4().hex[:8]}", address)
        client.max_queued_messages_set(0)
        # 0: unlimited. A finite window makes paho scan every message in flight on each PUBACK
        # (gateway/mqtt.py): with 1,000 in flight that scan was half of this process's paho thread.
        client.max_inflight_messages_set(0)
        client.on_message = on_message
        readers = None
        try:
            wait_until_reachable("127.0.0.1", port, timeout=120)
            client.connect(address.host, address.port)
            client.loop_start()
            client.subscribe(f"{protocol.DEFAULT_PREFIX}/+/+/ack", qos=1)
            time.sleep(1.0)
            readers = ReaderProcess(f"http://127.0.0.1:{port}", token, url, codes, school_ids)
            # The 2,000 gates and their secrets are built: out of the collector's way, so that a full
            # collection in this process (which times every ack) is not a pause counted as central's lag.
            gc.freeze()
            rng = random.Random(11)
            settings = {"kinds": list(kinds), "schools": schools, "kiosks_each": kiosks, "children": schools * students, "db": "postgres",
                        "broker": "mosquitto", "central": "schoolgate central serve" + (f" (HTTP only) + {workers} central ingest" if workers else ""), **machine()}
            phases = [(speed, minutes * 60 / speed)] + [(s, phase_seconds) for s in speeds]
            fastest = None
            for phase, (pace, seconds) in enumerate(phases):
                events = round(per_second * pace * seconds)
                # The phase's events made ahead (see _plan), stamped from a start far enough ahead to make
                # them all (about 40 µs an event here; 60 counted, and 2 s more).
                lead = events * 60e-6 + 2.0
                start, wall = time.perf_counter() + lead, datetime.now(UTC) + timedelta(seconds=lead)
                plan = _plan(gates, students, events, per_second * pace, start, wall, rng, kinds)
                lags.clear()
                time.sleep(max(0.0, start - time.perf_counter()))
                readers.take()  # what was read before this phase does not count in it
                cpu_central, cpu_here, began = sum(map(_cpu_seconds, pids)), time.process_time(), time.perf_counter()
                behind = _replay(client, gates, plan, seconds, start)
                del plan
                deadline = time.perf_counter() + 60
                while any(g.due for g in gates) and time.perf_counter() < deadline:
                    time.sleep(0.1)
                # CPU per event: what the run costs whatever else the machine's cores do meanwhile
                # (this one is shared with other work): central's process, and this one (the
                # generator, the acks it reads and the two readers).
                acked = max(1, events - sum(len(g.due) for g in gates))
                central_cpu = sum(map(_cpu_seconds, pids)) - cpu_central
                here_cpu = time.process_time() - cpu_here
                wall = time.perf_counter() - began
                left = sum(len(g.due) for g in gates)
                p99 = percentile(lags, 99)
                read_events, read_roster, read_errors = readers.take()
                run_settings = {**settings, "speed": pace, "events": events, "real_seconds": round(seconds, 1),
                                "events_per_s": round(per_second * pace), "left_unacked": left, "replay_fell_behind_s": round(behind, 2)}
                name = "real_speed" if phase == 0 else f"speed_{pace:g}"
                figures.append(emit("city", f"{name}_lag_p50", ms(percentile(lags, 50)), "ms", **run_settings))
                figures.append(emit("city", f"{name}_lag_p99", ms(p99), "ms", **run_settings, target="<= 1000 ms, 0 left"))
                figures.append(emit("city", f"{name}_lag_max", ms(max(lags) if lags else float("nan")), "ms", **run_settings))
                figures.append(emit("city", f"{name}_events_list_p99", ms(percentile(read_events, 99)), "ms", **run_settings,
                                    reads=len(read_events), errors=read_errors, target="<= 100 ms"))
                figures.append(emit("city", f"{name}_group_roster_p99", ms(percentile(read_roster, 99)), "ms", **run_settings,
                                    reads=len(read_roster), target="<= 100 ms"))
                figures.append(emit("city", f"{name}_central_cpu_per_event", round(central_cpu / acked * 1e6, 1), "µs", **run_settings,
                                    acked=acked, central_cpu_s=round(central_cpu, 1), generator_cpu_s=round(here_cpu, 1),
                                    wall_s=round(wall, 1), load_average=[round(x, 1) for x in os.getloadavg()]))
                if p99 <= 1.0 and left == 0 and behind < 1.0:
                    fastest = pace if fastest is None else max(fastest, pace)
            with engine.connect() as conn:
                stored, duplicated = conn.execute(sa.text(
                    "SELECT count(*), count(*) - count(DISTINCT (kiosk_id, seq)) FROM event")).one()
            sent = sum(g.seq for g in gates)
            figures.append(emit("city", "stored", stored, "events", **settings, sent=sent, lost=sent - stored, duplicated=duplicated))
            if speeds:
                figures.append(emit("city", "fastest_speed_p99_under_1s", fastest, "x real speed", **settings,
                                    tried=[speed, *speeds], phase_seconds=phase_seconds))
        finally:
            if readers:
                readers.close()
            client.disconnect()
            client.loop_stop()
            for process in [central, *ingesters]:
                process.terminate()
            for process in [central, *ingesters]:
                process.wait(30)
            engine.dispose()
    return figures


TINY = dict(schools=3, kiosks=2, students=50, minutes=0.01, speed=1.0)  # a size that only shows the benchmark still works (CI)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="run at a size that only shows it works (CI)")
    parser.add_argument("--minutes", type=float, default=CITY_MINUTES, help="simulated minutes of the dismissal (15: all of it)")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed of the first phase (1: real speed)")
    parser.add_argument("--speeds", default="", help="further phases, e.g. 1.5,2,3 (each --phase-seconds long)")
    parser.add_argument("--phase-seconds", type=float, default=30.0)
    parser.add_argument("--kinds", default=",".join(KINDS), help="the kinds of event, in turn (pickups notify guardians)")
    parser.add_argument("--workers", type=int, default=0,
                        help="N `central ingest` processes store the events (partitioned when N > 1) and central serve only "
                             "serves HTTP; 0: central serve stores them itself")
    args = parser.parse_args()
    if args.tiny:
        run(**TINY)
        return
    speeds = tuple(float(s) for s in args.speeds.split(",") if s)
    run(minutes=args.minutes, speed=args.speed, speeds=speeds, phase_seconds=args.phase_seconds, kinds=tuple(args.kinds.split(",")),
        workers=args.workers)


if __name__ == "__main__":
    main()
