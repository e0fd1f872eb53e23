"""Zero loss under faults: 5 kiosk processes x 2,000 taps while the broker is killed -9 every few
seconds, central is killed and restarted twice, and one kiosk is killed and restarted.

At the end central holds exactly the union of all outboxes (0 lost, 0 duplicated), every chain
verifies and every outbox is empty. Run against Mosquitto with the generated configuration (and
PostgreSQL), and against the embedded broker (and SQLite). Everything runs as separate processes
started with the `schoolgate` command line, as in a school.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from central.admin import central_key, create_school, register_kiosk
from central.core.config import Settings
from central.core.db import make_engine
from gateway import mosquitto
from gateway.broker import wait_until_reachable
from gateway.mqtt import free_port

KIOSKS = 5
TAPS = 2000
TAPS_PER_SECOND = 250  # per kiosk: 2,000 taps take 8 s, all under fire
SCHOOL = "chaos"
DRAIN_TIMEOUT = 120


SHANGHAI = ZoneInfo("Asia/Shanghai")


def _utc(value) -> datetime:
    """A stored time as read back (SQLite gives a naive UTC string or datetime, PostgreSQL an aware one)."""
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}
    return {**base, **extra}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "schoolgate", *args]


class Broker:
    def __init__(self, kind: str, folder: Path, logins: list[mosquitto.KioskLogin], database_url: str) -> None:
        self.kind = kind
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.central_password = uuid.uuid4().hex
        self.database_url = database_url  # the embedded broker looks kiosks' logins up in central's database
        # Central logs in on the embedded broker's one port; Mosquitto gives it a listener of its own
        # (gateway/mosquitto.py).
        self.central_port = free_port() if kind == "mosquitto" else self.port
        self.central_url = f"mqtt://central:{self.central_password}@127.0.0.1:{self.central_port}"
        if kind == "mosquitto":
            self.conf = mosquitto.write(
                folder / "mosquitto", kiosks=logins, central_password=self.central_password, port=self.port,
                bind="127.0.0.1", user=getpass.getuser(), central_port=self.central_port,
            )
        self.kiosk_url = f"mqtt://127.0.0.1:{self.port}"  # kiosks log in with their derived credentials

    def start(self) -> None:
        if self.kind == "mosquitto":
            args = ["mosquitto", "-c", str(self.conf)]
        else:
            args = command("broker", "--port", str(self.port))
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env(SCHOOLGATE_MQTT_URL=self.central_url, SCHOOLGATE_DATABASE_URL=self.database_url),
        )
        wait_until_reachable("127.0.0.1", self.port, timeout=20)
        if self.kind == "mosquitto":
            wait_until_reachable("127.0.0.1", self.central_port, timeout=20)

    def kill(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


class Central:
    def __init__(self, database_url: str, mqtt_url: str, folder: Path, signing_key_file: Path) -> None:
        self.port = free_port()
        self.env = env(
            SCHOOLGATE_DATABASE_URL=database_url, SCHOOLGATE_MQTT_URL=mqtt_url, SCHOOLGATE_SIGNING_KEY_FILE=str(signing_key_file)
        )
        self.log = (folder / "central.log").open("a")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            command("central", "serve", "--port", str(self.port)), stdout=self.log, stderr=self.log, env=self.env
        )
        wait_until_reachable("127.0.0.1", self.port, timeout=30)

    def kill(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


class KioskProcess:
    """One kiosk process fed taps on stdin; remembers every seq it printed."""

    def __init__(self, index: int, secret: str, folder: Path, mqtt_url: str, central_key: str, central_url: str) -> None:
        self.code = f"k{index}"
        self.central_url = central_url  # the school's feed is caught up from there (issue 13)
        self.central_key = central_key
        self.index = index
        self.secret = secret
        self.data = folder / f"kiosk-{index}"
        self.mqtt_url = mqtt_url
        self.printed: set[int] = set()
        self.fed = 0
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    @property
    def db(self) -> Path:
        return self.data / f"{SCHOOL}-{self.code}.sqlite3"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            command(
                "kiosk", "run", "--school", SCHOOL, "--kiosk", self.code, "--reader", "sim", "--no-ui",
                "--data-dir", str(self.data), "--mqtt-url", self.mqtt_url, "--secret", self.secret,
                "--central-key", self.central_key,
            ),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=env(SCHOOLGATE_KIOSK_RESEND_AFTER="2", SCHOOLGATE_KIOSK_CENTRAL_URL=self.central_url),
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            seq = json.loads(line).get("seq")
            if seq:
                self.printed.add(seq)

    def feed(self, count: int) -> None:
        lines = "".join(f"{self.index:02X}{self.fed + i:06X}\n" for i in range(count))
        try:
            self.proc.stdin.write(lines)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            return  # killed in between: those taps never happened
        self.fed += count

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def school_feed(self) -> tuple[int, dict[str, int]]:
        """(the last feed place it has every event up to, {event id: place} of the other gates' events it keeps)."""
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'feed_pos'").fetchone()
            return int(row[0]) if row else 0, dict(db.execute("SELECT id, pos FROM feed").fetchall())
        finally:
            db.close()

    def outbox(self) -> tuple[int, int]:
        """(events still in the outbox, last seq written), read as another process would."""
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            left = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            row = db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
            return left, int(row[0]) if row else 0
        finally:
            db.close()


def test_nothing_is_lost_or_doubled_whatever_is_killed(chaos_backend, tmp_path):
    broker_kind, database_url = chaos_backend
    started = time.monotonic()
    secrets = {i: uuid.uuid4().hex * 2 for i in range(KIOSKS)}
    settings = Settings(database_url=database_url, mqtt_url="mqtt://127.0.0.1:1", signing_key_file=tmp_path / "central.key")
    create_school(settings, code=SCHOOL, name=SCHOOL)
    for i, secret in secrets.items():
        register_kiosk(settings, school=SCHOOL, kiosk=f"k{i}", secret=secret)
    broker = Broker(broker_kind, tmp_path, [mosquitto.KioskLogin(SCHOOL, f"k{i}", s) for i, s in secrets.items()], database_url)
    broker.start()
    central = Central(database_url, broker.central_url, tmp_path, settings.signing_key_file)
    central.start()
    kiosks = [KioskProcess(i, secrets[i], tmp_path, broker.kiosk_url, central_key(settings), f"http://127.0.0.1:{central.port}")
              for i in range(KIOSKS)]
    for k in kiosks:
        k.start()
    kills = {"broker": 0, "central": 0, "kiosk": 0}
    # The fault schedule, in seconds from the first tap: the broker every 2.5 s, central twice,
    # one kiosk once; taps keep coming throughout.
    schedule = [(t, "broker") for t in (1.5, 4.0, 6.5, 9.0)] + [(3.0, "central"), (7.5, "central"), (5.0, "kiosk")]
    schedule.sort()
    try:
        t0 = time.monotonic()
        step = 0.1
        while any(k.fed < TAPS for k in kiosks) or schedule:
            now = time.monotonic() - t0
            while schedule and schedule[0][0] <= now:
                _, what = schedule.pop(0)
                kills[what] += 1
                if what == "broker":
                    broker.kill()
                    time.sleep(0.5)
                    broker.start()
                elif what == "central":
                    central.kill()
                    time.sleep(0.5)
                    central.start()
                else:
                    victim = kiosks[2]
                    victim.kill()
                    victim.start()
            for k in kiosks:
                k.feed(min(int(TAPS_PER_SECOND * step), TAPS - k.fed))
            time.sleep(step)
        fed_at = time.monotonic()
        deadline = fed_at + DRAIN_TIMEOUT
        engine = make_engine(database_url)
        while True:
            states = [k.outbox() for k in kiosks]
            with engine.connect() as conn:
                at_central = conn.execute(sa.text("SELECT COUNT(*) FROM event")).scalar()
            written = sum(last for _, last in states)
            if all(left == 0 for left, _ in states) and at_central == written and all(
                last >= len(k.printed) for k, (_, last) in zip(kiosks, states)
            ):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"not drained after {DRAIN_TIMEOUT}s: outboxes {states}, central {at_central}/{written}")
            time.sleep(0.25)
        drained = time.monotonic() - fed_at
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT k.code, e.seq, e.prev, e.hash FROM event e JOIN kiosk k ON k.id = e.kiosk_id ORDER BY k.code, e.seq"
                )
            ).all()
            placed = conn.execute(
                sa.text("SELECT e.id, e.feed_pos, k.code, e.at FROM event e JOIN kiosk k ON k.id = e.kiosk_id")
            ).all()
            head = conn.execute(sa.text("SELECT feed_head FROM school WHERE code = :code"), {"code": SCHOOL}).scalar_one()
        engine.dispose()
        # Every gate follows the school's feed to its head: what the others saw, each event once.
        while not all(k.school_feed()[0] == head for k in kiosks):
            if time.monotonic() > deadline:
                pytest.fail(f"the gates did not reach the feed's head {head}: {[k.school_feed()[0] for k in kiosks]}")
            time.sleep(0.25)
        feeds = {k.code: k.school_feed()[1] for k in kiosks}
    finally:
        for k in kiosks:
            k.stop()
        central.kill()
        broker.kill()

    by_kiosk: dict[str, list] = {}
    for code, seq, prev, digest in rows:
        by_kiosk.setdefault(code, []).append((seq, prev, digest))
    total = 0
    for k, (_, last) in zip(kiosks, states):
        events = by_kiosk.get(k.code, [])
        assert [seq for seq, _, _ in events] == list(range(1, last + 1)), f"{k.code}: lost or doubled"
        assert k.printed <= set(range(1, last + 1)), f"{k.code}: printed a decision central never got"
        previous = ""
        for seq, prev, digest in events:
            assert prev == previous, f"{k.code} seq {seq}: the chain is broken"
            previous = digest
        total += last
    assert total >= KIOSKS * TAPS * 0.9  # only taps in flight when a kiosk was killed are lost input
    # Central placed every event once, with no gap; each gate keeps the others' events at their places, and
    # all of the school's day it is on (a gate keeps its own day only: past the school's midnight, the day
    # before is let go).
    assert sorted(pos for _, pos, _, _ in placed) == list(range(1, total + 1)) and head == total
    today = datetime.now(SHANGHAI).date()
    for k in kiosks:
        others = {event_id: pos for event_id, pos, code, _ in placed if code != k.code}
        of_today = {event_id: pos for event_id, pos, code, at in placed
                    if code != k.code and _utc(at).astimezone(SHANGHAI).date() == today}
        kept = feeds[k.code]
        assert kept.items() <= others.items(), f"{k.code}: keeps feed events no other gate stored, or at other places"
        assert of_today.items() <= kept.items(), f"{k.code}: the school's feed lost events of the day"
    print(
        json.dumps(
            {
                "broker": broker_kind,
                "events": total,
                "kills": kills,
                "seconds_to_drain": round(drained, 1),
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )
