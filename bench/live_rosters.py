"""live_rosters: 1,000 open live rosters (/teacher pages' Server-Sent Events streams) of one school, each
receiving a tap at the school's gate: from the card presented at a real kiosk (signed event, broker,
central's ingest) until each open page has the new roster. Target: p99 <= 1 s.

Central (uvicorn, SQLite, the embedded broker) and the kiosk run in this process; the 1,000 pages are
plain HTTP/1.1 streams read by a second process (``--client``), so the pages' reading does not share
central's interpreter. The pages are logged in as the school's teacher and its admin over several
sessions (each page with its session's cookie), as a school's staff would have them open.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.common import emit, machine, ms, parse_args, percentile

PASSWORD = "bench-password-123"
SECRET = "cd" * 32


# --- the pages: a second process --------------------------------------------------------------------


async def _page(host: str, port: int, cookie: str, path: str, seen: list[tuple[float, int]], ready: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"{path}: {status!r}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    # The body is chunked; central sends each event as one chunk, so an event's lines are whole lines.
    while line := await reader.readline():
        if line.startswith(b"id: "):
            seen.append((time.monotonic(), int(line[4:])))
            ready.set()


async def _pages(url: str, cookies: list[str], count: int) -> None:
    host, port = url.removeprefix("http://").split(":")
    seen: list[list[tuple[float, int]]] = [[] for _ in range(count)]
    readies = [asyncio.Event() for _ in range(count)]
    tasks = [asyncio.create_task(_page(host, int(port), cookies[i % len(cookies)], "/teacher/live", seen[i], readies[i]))
             for i in range(count)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), timeout=300)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # the taps are done
    for task in tasks:
        task.cancel()
    print(json.dumps(seen), flush=True)


def client_main(url: str, count: int) -> None:
    cookies = json.loads(sys.stdin.readline())
    asyncio.run(_pages(url, cookies, count))


# --- central, the gate and the taps ---------------------------------------------------------------


def _log_in(url: str, user: str) -> str:
    with httpx.Client(base_url=url, timeout=120) as client:
        page = client.get("/login").text
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        r = client.post("/login", data={"username": user, "password": PASSWORD, "csrf": csrf})
        if r.status_code != 303:
            raise RuntimeError(f"login of {user}: {r.status_code}")
        return f"schoolgate_session={client.cookies['schoolgate_session']}"


def run(*, pages: int = 1000, taps: int = 20, sessions: int = 10, gap: float = 2.0) -> list[dict]:
    from gateway.broker import EmbeddedBroker
    from gateway.mqtt import Logins, free_port

    from central.admin import central_key, create_school, create_user, import_files, register_kiosk
    from central.core.config import Settings
    from central.core.db import make_engine
    from central.demo import enroll_demo_students, write_demo_roster
    from central.server import CentralServer
    from hardware import CardTap
    from kiosk.config import KioskSettings
    from kiosk.runtime import Kiosk
    from sqlmodel import Session, select

    from central.programme.models import Staff

    with tempfile.TemporaryDirectory(prefix="sg-bench-live-") as folder:
        tmp = Path(folder)
        port = free_port()
        with EmbeddedBroker("127.0.0.1", port, logins=Logins({"central": "pw"}, lambda s, k: SECRET if k == "gate-1" else None)) as broker:
            settings = Settings(database_url=f"sqlite:///{tmp / 'central.sqlite3'}", mqtt_url=f"mqtt://central:pw@127.0.0.1:{port}",
                                session_secret="b" * 64, signing_key_file=tmp / "signing.key")
            with CentralServer(settings, port=free_port()) as central:
                create_school(settings, code="bench", name="示范小学")
                students, guardians = write_demo_roster(tmp / "roster", classes=1, students=max(taps, 30), guardians=max(taps, 30))
                import_files(settings, school="bench", students=students, guardians=guardians)
                version = enroll_demo_students(settings, school="bench").version
                register_kiosk(settings, school="bench", kiosk="gate-1", secret=SECRET)
                engine = make_engine(settings.sqlalchemy_url)
                with Session(engine) as db:
                    teacher = db.exec(select(Staff).where(Staff.name == "值班老师")).one()
                engine.dispose()
                create_user(settings, username="teacher", password=PASSWORD, role="teacher", school="bench", staff_id=teacher.id)
                create_user(settings, username="principal", password=PASSWORD, role="school_admin", school="bench")
                gate = Kiosk(KioskSettings(school="bench", kiosk="gate-1", data_dir=tmp / "gate", secret=SECRET, mqtt_url=broker.url, central_url=central.url,
                                           central_key=central_key(settings))).start()
                deadline = time.monotonic() + 60
                while gate.roster.version < version and time.monotonic() < deadline:
                    time.sleep(0.05)
                cards = [s.cards[0] for s in sorted(gate.roster.students.values(), key=lambda s: s.id) if s.enrolled and s.cards][:taps]
                cookies = [_log_in(central.url, "teacher" if i % 2 == 0 else "principal") for i in range(sessions)]
                client = subprocess.Popen([sys.executable, "-m", "bench.live_rosters", "--client", central.url, str(pages)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                try:
                    client.stdin.write(json.dumps(cookies) + "\n")
                    client.stdin.flush()
                    if client.stdout.readline().strip() != "ready":
                        raise RuntimeError("the pages did not open")
                    renders = central.app.state.live_shared.renders
                    tapped = []
                    for card in cards:
                        time.sleep(gap)  # the pages settle; a tap a gap apart
                        tapped.append(time.monotonic())
                        shown = gate.handle(CardTap(card, "sim", "sim", datetime.now(UTC)))
                        if shown.outcome != "checked_in":
                            raise RuntimeError(f"the gate said {shown.outcome} to {card}")
                    time.sleep(2 * gap + 1)  # the last tap reaches every page
                    renders = central.app.state.live_shared.renders - renders
                    client.stdin.write("done\n")
                    client.stdin.flush()
                    seen = json.loads(client.stdout.readline())
                finally:
                    client.kill()
                    client.wait(10)
                    gate.close()

    latencies, missed = [], 0
    by_tap: list[list[float]] = [[] for _ in tapped]
    for events in seen:
        for i, at in enumerate(tapped):
            before = max((h for t, h in events if t < at), default=0)
            after = [t for t, h in events if t >= at and h > before]
            if after:  # the first roster this page got with the tap (a later tap's roster shows it too)
                latencies.append(after[0] - at)
                by_tap[i].append(after[0] - at)
            else:
                missed += 1
    settings_row = {"pages": pages, "taps": len(tapped), "sessions": sessions, "database": "sqlite", "broker": "embedded",
                    "received": len(latencies), "missed": missed, "renders": renders, **machine()}
    return [
        emit("live_rosters", "p50", ms(percentile(latencies, 50)), "ms", **settings_row),
        emit("live_rosters", "p99", ms(percentile(latencies, 99)), "ms", **settings_row, target="<= 1000 ms",
             p99_by_tap=[ms(percentile(one, 99)) for one in by_tap]),
        emit("live_rosters", "max", ms(max(latencies)) if latencies else None, "ms", **settings_row),
    ]


TINY = dict(pages=20, taps=2, sessions=2, gap=0.5)  # a size that only shows the benchmark still works (CI)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--client":
        client_main(sys.argv[2], int(sys.argv[3]))
        return
    args = parse_args(__doc__)
    run(**TINY) if args.tiny else run()


if __name__ == "__main__":
    main()
