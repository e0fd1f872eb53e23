"""Central killed in the middle of sending (issue 16): a real central in a subprocess, SIGKILLed while a
webhook delivery is in flight, then started again — no notification lost, none recorded as sent is sent again;
those in flight at the kill (the chunk claimed together, ``outbox.CHUNK``) come again once, each under its own id
(the webhook's idempotency key). And the window between the ingest's
commit and the outbox's write: ``outbox.recover`` stores what a crash left unstored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sgtest import wait_for
from sqlmodel import Session, select

from central.core.db import make_engine, migrate
from central.kiosks import services
from central.kiosks.ingest import Ingest
from central.notifications import outbox
from central.notifications.models import GuardianChannel, Notification
from central.schools import registry
from central.schools.models import Guardian, GuardianLink, SchoolClass, Student
from gateway import protocol

ROOT = Path(__file__).resolve().parents[2]
TOPICS = protocol.Topics("sg/v1")
SECRET = "71" * 32
AT = datetime(2030, 9, 2, 8, 0, tzinfo=UTC)
COUNT = 12
CENTRAL = """
import sys
import uvicorn
from central.core.config import Settings
from central.main import create_app
app = create_app(Settings(database_url=sys.argv[1], notify_check_seconds=0.05), with_bus=False)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HoldingReceiver:
    """Keeps each delivery's X-Schoolgate-Id; holds the ``hold_at``-th request unanswered until released."""

    def __init__(self, hold_at: int) -> None:
        self.ids: list[str] = []
        self.held, self.release = threading.Event(), threading.Event()
        lock, receiver = threading.Lock(), self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    receiver.ids.append(self.headers["X-Schoolgate-Id"])
                    hold = len(receiver.ids) == hold_at
                if hold:
                    receiver.held.set()
                    receiver.release.wait(30)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # central is gone

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def start_central(script: Path, url: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(script), url, str(free_port())], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_central_killed_mid_send_loses_nothing_and_repeats_only_the_one_in_flight_under_its_id(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    receiver = HoldingReceiver(hold_at=5)
    with Session(engine) as session:
        s1 = registry.ensure_school(session, code="s1")
        mum = Guardian(school_id=s1.id, name="mum")
        session.add(mum)
        session.flush()
        session.add(GuardianChannel(guardian_id=mum.id, channel="webhook", address=receiver.url, secret="s"))
        past = datetime(2020, 1, 1, tzinfo=UTC)  # due at once for the real central's clock
        session.add_all([Notification(school_id=s1.id, event_ref=f"event:{i}", recipient=f"g{mum.id}", kind="picked_up",
                                      channel="webhook", address=receiver.url, body=f"message {i}", language="zh_CN",
                                      next_try_at=past) for i in range(COUNT)])
        session.commit()
    script = tmp_path / "central_proc.py"
    script.write_text(CENTRAL)
    first = start_central(script, url)
    try:
        assert receiver.held.wait(60), first.stderr.read().decode() if first.poll() is not None else "never held"
        first.send_signal(signal.SIGKILL)  # in the middle of the fifth delivery
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    receiver.release.set()
    with Session(engine) as session:
        # The chunk claimed before the sends: in flight (the held one among them), none recorded as sent.
        in_flight = {str(n.id) for n in session.exec(select(Notification).where(Notification.last_error == outbox.IN_FLIGHT))}
        recorded = {str(n.id) for n in session.exec(select(Notification).where(Notification.state == "sent"))}
    held = receiver.ids[4]
    assert held in in_flight and not recorded & in_flight
    second = start_central(script, url)
    try:
        def all_sent() -> bool:
            with Session(engine) as session:
                return all(n.state == "sent" for n in session.exec(select(Notification)))
        wait_for(all_sent, 60, "every notification sent after the restart")
    finally:
        second.terminate()
        second.wait(10)
        receiver.stop()
    with Session(engine) as session:
        rows = session.exec(select(Notification)).all()
        assert all(n.tries == (2 if str(n.id) in in_flight else 1) for n in rows)
    counts = Counter(receiver.ids)
    assert set(counts) == {str(n.id) for n in rows}  # nothing lost
    # Sent again: only what was in flight at the kill, at most once more, each under its own id; never one recorded sent.
    again = {k for k, v in counts.items() if v > 1}
    assert again <= in_flight and held in again and max(counts.values()) == 2
    engine.dispose()


def test_recover_stores_the_notifications_of_events_stored_before_a_crash(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        s1 = registry.ensure_school(session, code="s1")
        services.register_kiosk(session, school=s1, kiosk="k1", secret=SECRET)
        klass = SchoolClass(school_id=s1.id, grade="3", name="3-2")
        session.add(klass)
        session.flush()
        ming = Student(school_id=s1.id, class_id=klass.id, student_no="S1", name="王小明")
        mum = Guardian(school_id=s1.id, name="mum")
        session.add_all([ming, mum])
        session.flush()
        session.add(GuardianLink(guardian_id=mum.id, student_id=ming.id, relation="妈妈"))
        session.add(GuardianChannel(guardian_id=mum.id, channel="sms", address="+8613900000001", language="en"))
        session.commit()
        mum_id = mum.id
    event = protocol.new_event(school="s1", kiosk="k1", seq=1, prev="", at=AT, kind="pickup", student="S1",
                               guardian=f"g{mum_id}", secret=bytes.fromhex(SECRET))
    # Central died right after the ingest's commit: nobody heard of the event (no subscribers).
    Ingest(engine, topics=TOPICS, publish=lambda *a, **k: None, events=None, clock=lambda: AT).process(
        [(TOPICS.events("s1", "k1"), protocol.canonical_json(event), False)])
    with Session(engine) as session:
        assert session.exec(select(Notification)).all() == []
        assert outbox.recover(session, now=AT + timedelta(minutes=1)) == (1, 0)
        assert outbox.recover(session, now=AT + timedelta(minutes=2)) == (0, 0)
        [n] = session.exec(select(Notification)).all()
        assert (n.kind, n.body) == ("picked_up", "小明 was picked up by mother at k1 at 2030-09-02 16:00.")
        # Past the look-back, an event is not looked at again.
        assert outbox.recover(session, now=AT + outbox.RECOVER_SINCE + timedelta(minutes=1)) == (0, 0)
    engine.dispose()
