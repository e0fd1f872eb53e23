"""notify: a tap → its notification handed to the channel, at dismissal peak; and how fast the outbox drains.

In-process, SQLite, a real local HTTP receiver standing in for the webhook channel:

- ``latency``: a school of ``children`` children, each with two guardians consenting to the webhook; every child
  picked up once, spread evenly over ``peak_s`` seconds from ``gates`` gates (each tap its own ingest batch, as a
  gate sends it); central's ingest stores it, the outbox stores the guardians' notifications (one insert per
  batch) and wakes the sender (central/main.py's loop: ladder, then ``dispatch_due``). Figure: p50/p99 from the
  ingest being handed the tap to the receiver getting the message. Target p99 <= 5 s with the real peak
  (2,000 children in 15 minutes); ``speed`` compresses the peak to keep the run short (x10: 2,000 in 90 s).
  The MQTT hop before the ingest is not in it (bench/tap_to_central.py measures that).
- ``drain``: ``drain`` notifications already stored, sent by ``dispatch_due`` rounds to the receiver, on SQLite
  and (full size, when reachable) PostgreSQL. Target >= 200/s.
"""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from sqlmodel import Session, select

from bench.common import available, database, emit, machine, ms, parse_args, percentile
from central.core.db import make_engine, migrate
from central.core.events import DomainEvents
from central.kiosks import services
from central.kiosks.ingest import Ingest
from central.notifications import channels, outbox
from central.notifications.models import GuardianChannel, Notification
from central.schools import registry
from central.schools.models import Guardian, GuardianLink, SchoolClass, Student
from gateway import protocol

FULL = {"children": 2000, "peak_s": 90.0, "speed": 10, "gates": 4, "drain": 4000, "dbs": ("sqlite", "postgres")}
TINY = {"children": 40, "peak_s": 2.0, "speed": 450, "gates": 2, "drain": 200, "dbs": ("sqlite",)}
SECRET = "71" * 32
TOPICS = protocol.Topics("sg/v1")


class Receiver:
    """A local HTTP receiver: the monotonic time each delivery arrived, by the event it tells of."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.count = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real gateway

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.monotonic()
                with receiver.lock:
                    receiver.count += 1
                    receiver.arrived.setdefault(body.split(b'"event":"', 1)[-1].split(b'"', 1)[0].decode(), now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def school(engine, *, children: int, gates: int, url: str) -> None:
    with Session(engine) as session:
        s1 = registry.ensure_school(session, code="s1")
        for g in range(gates):
            services.register_kiosk(session, school=s1, kiosk=f"k{g}", secret=SECRET)
        klass = SchoolClass(school_id=s1.id, grade="3", name="3-2")
        session.add(klass)
        session.flush()
        students = [Student(school_id=s1.id, class_id=klass.id, student_no=f"S{i:04d}", name=f"王小{i}") for i in range(children)]
        guardians = [Guardian(school_id=s1.id, name=f"g{i}") for i in range(children * 2)]
        session.add_all(students + guardians)
        session.flush()
        for i, student in enumerate(students):
            for g in guardians[2 * i : 2 * i + 2]:
                session.add(GuardianLink(guardian_id=g.id, student_id=student.id, relation="妈妈"))
                session.add(GuardianChannel(guardian_id=g.id, channel="webhook", address=url, secret="s", language="zh_CN"))
        session.commit()


def latency(tmp: Path, *, children: int, peak_s: float, speed: int, gates: int, **_) -> None:
    receiver = Receiver()
    engine = make_engine(f"sqlite:///{tmp / 'latency.sqlite3'}")
    migrate(engine)
    school(engine, children=children, gates=gates, url=receiver.url)
    wake, stop = threading.Event(), threading.Event()
    events = DomainEvents()
    outbox.subscribe(events, engine, wake=wake.set)
    ingest = Ingest(engine, topics=TOPICS, publish=lambda *a, **k: None, events=events)
    hook = {"webhook": channels.Webhook(httpx.Client(timeout=5))}

    def sender() -> None:  # central/main.py's loop, woken on store
        while not stop.is_set():
            wake.wait(2.0)
            wake.clear()
            with Session(engine) as session:
                while outbox.dispatch_due(session, now=datetime.now(UTC), channels=hook) >= outbox.ROUND:
                    pass

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    secret = bytes.fromhex(SECRET)
    chains = {f"k{g}": (0, "") for g in range(gates)}
    tapped: dict[str, float] = {}
    interval = peak_s / children
    start = time.monotonic()
    for i in range(children):
        due = start + i * interval
        while (left := due - time.monotonic()) > 0:
            time.sleep(left)
        kiosk = f"k{i % gates}"
        seq, prev = chains[kiosk]
        event = protocol.new_event(school="s1", kiosk=kiosk, seq=seq + 1, prev=prev, at=datetime.now(UTC), kind="pickup",
                                   student=f"S{i:04d}", secret=secret)
        chains[kiosk] = (seq + 1, protocol.event_hash(event))
        tapped[f"event:{event['id']}"] = time.monotonic()
        ingest.process([(TOPICS.events("s1", kiosk), protocol.canonical_json(event), False)])
    deadline = time.monotonic() + 120
    while receiver.count < 2 * children and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    wake.set()
    thread.join(10)
    took = [receiver.arrived[ref] - at for ref, at in tapped.items() if ref in receiver.arrived]
    settings = {"children": children, "peak_s": peak_s, "speed": speed, "gates": gates, "db": "sqlite",
                "delivered": receiver.count, "expected": 2 * children, **machine()}
    emit("notify", "tap_to_channel_p50", ms(percentile(took, 50)), "ms", **settings)
    emit("notify", "tap_to_channel_p99", ms(percentile(took, 99)), "ms", **settings)
    receiver.stop()
    engine.dispose()


def drain(tmp: Path, *, drain: int, db: str = "sqlite", **_) -> None:
    with database(db) as url:
        _drain(url, drain=drain, db=db)


def _drain(url: str, *, drain: int, db: str) -> None:
    receiver = Receiver()
    engine = make_engine(url)
    migrate(engine)
    school(engine, children=1, gates=1, url=receiver.url)
    now = datetime.now(UTC)
    with Session(engine) as session:
        s1 = registry.ensure_school(session, code="s1")
        guardian = session.exec(select(GuardianChannel.guardian_id)).first()
        outbox.store(session, [{"school_id": s1.id, "event_ref": f"event:{i}", "recipient": f"g{guardian}", "kind": "picked_up",
                                "channel": "webhook", "address": receiver.url, "language": "zh_CN", "body": f"message {i}",
                                "state": "pending", "tries": 0, "next_try_at": now, "last_error": "", "created_at": now}
                               for i in range(drain)])
        session.commit()
    hook = {"webhook": channels.Webhook(httpx.Client(timeout=5))}
    t0 = time.perf_counter()
    with Session(engine) as session:
        while outbox.dispatch_due(session, now=datetime.now(UTC), channels=hook):
            pass
    took = time.perf_counter() - t0
    with Session(engine) as session:
        sent = len(session.exec(select(Notification.id).where(Notification.state == "sent")).all())
    emit("notify", "outbox_drain", round(sent / took, 1), "notifications/s", count=drain, sent=sent, db=db,
         channel="webhook", **machine())
    receiver.stop()
    engine.dispose()


def run(**size) -> None:
    size = {**FULL, **size}
    with tempfile.TemporaryDirectory() as tmp:
        for db in size["dbs"]:
            if available(db):
                drain(Path(tmp), db=db, **size)
        latency(Path(tmp), **size)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    run(**TINY) if args.tiny else run()


if __name__ == "__main__":
    main()
