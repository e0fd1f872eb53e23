"""kiosk_memory: a kiosk process holding a 10,000-person roster (3,000 students, 7,000 guardians).

Figures: the process's resident memory (RSS, and its peak) once the roster is applied; the
retained snapshot's size on the wire (compressed) and uncompressed; the time to decode and apply
it. The kiosk runs twice: with --no-ui, and with the guard's console (Textual) on a pseudo-terminal.
Targets: <= 120 MB RSS; snapshot apply <= 1 s.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import emit, machine, ms, parse_args
from bench.roster import snapshot
from gateway import protocol
from gateway.broker import EmbeddedBroker
from gateway.mqtt import Logins, BrokerAddress, free_port, make_client
from kiosk.store import KioskStore


def _rss_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def run(*, students: int = 3000, guardians: int = 7000) -> list[dict]:
    snap = snapshot("bench", students, guardians)
    people = {
        "students": [s.model_dump(by_alias=True) for s in snap.students],
        "guardians": [g.model_dump() for g in snap.guardians],
        "sessions": [s.model_dump(exclude_none=True) for s in snap.sessions],
    }
    header = {"v": 1, "school": "bench", "version": 1, "generated_at": snap.generated_at}
    payload = protocol.snapshot_payload(header, people)
    plain = len(protocol.canonical_json({**header, **people}))
    with tempfile.TemporaryDirectory() as folder:
        store = KioskStore(Path(folder) / "k.sqlite3", school="bench", kiosk="gate-1")
        t = time.perf_counter()
        store.apply_snapshot(protocol.parse_snapshot(payload))
        apply_s = time.perf_counter() - t
        store.close()
    settings = {"students": students, "guardians": guardians, **machine()}
    out = [
        emit("kiosk_memory", "snapshot_bytes_compressed", len(payload), "bytes", **settings, uncompressed=plain),
        emit("kiosk_memory", "snapshot_apply", ms(apply_s), "ms", **settings, target="<= 1000 ms"),
    ]
    port = free_port()
    prefix = f"bench-{uuid.uuid4().hex[:6]}/v1"
    topics = protocol.Topics(prefix)
    # Logins only and a signed roster, as central publishes it; the kiosk holds central's public key.
    secret, key = os.urandom(32).hex(), Ed25519PrivateKey.generate()
    logins = Logins({"central": "bench"}, lambda school, kiosk: secret if school == "bench" and kiosk in ("gate-1", "gate-2") else None)
    with EmbeddedBroker("127.0.0.1", port, logins=logins) as embedded, tempfile.TemporaryDirectory() as folder:
        publisher = make_client("bench-central", BrokerAddress("127.0.0.1", port, "central", "bench"))
        publisher.connect("127.0.0.1", port)
        publisher.loop_start()
        publisher.publish(topics.roster("bench"), protocol.seal(payload, key), qos=1, retain=True).wait_for_publish(30)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}
        env["SCHOOLGATE_KIOSK_TOPIC_PREFIX"] = prefix
        proc = subprocess.Popen(
            [sys.executable, "-m", "schoolgate", "kiosk", "run", "--school", "bench", "--kiosk", "gate-1", "--reader", "sim",
             "--no-ui", "--data-dir", folder, "--mqtt-url", embedded.url, "--secret", secret,
             "--central-key", protocol.public_key_hex(key)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
        )
        try:
            # The roster is in when a card on it checks in.
            proc.stdin.write(f"{0x04000000 + students - 1:08X}\n")
            proc.stdin.flush()
            deadline = time.monotonic() + 60
            outcome = None
            while time.monotonic() < deadline:
                outcome = json.loads(proc.stdout.readline())["outcome"]
                if outcome == "checked_in":
                    break
                time.sleep(0.5)
                proc.stdin.write(f"{0x04000000 + students - 2:08X}\n")
                proc.stdin.flush()
            time.sleep(1.0)
            rss = _rss_kb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(20)
        if outcome != "checked_in":
            raise SystemExit("kiosk_memory: the kiosk never applied the roster")
        try:
            console = _console_rss(embedded.url, prefix, folder, secret, protocol.public_key_hex(key))
        finally:
            publisher.disconnect()
            publisher.loop_stop()
    out.append(emit("kiosk_memory", "rss", round(rss["VmRSS"] / 1024, 1), "MB", **settings, roster_applied=outcome == "checked_in", console="--no-ui", target="<= 120 MB"))
    out.append(emit("kiosk_memory", "rss_peak", round(rss["VmHWM"] / 1024, 1), "MB", **settings))
    out.append(emit("kiosk_memory", "rss_console", round(console["VmRSS"] / 1024, 1), "MB", **settings, console="textual", target="<= 120 MB"))
    out.append(emit("kiosk_memory", "rss_console_peak", round(console["VmHWM"] / 1024, 1), "MB", **settings, console="textual"))
    return out


def _console_rss(url: str, prefix: str, folder: str, secret: str, central_key: str) -> dict[str, int]:
    """The console kiosk's memory once its footer shows roster v1 (it runs on a pseudo-terminal)."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}
    env.update(SCHOOLGATE_KIOSK_TOPIC_PREFIX=prefix, TERM="xterm-256color", COLUMNS="120", LINES="40")
    proc = subprocess.Popen(
        [sys.executable, "-m", "schoolgate", "kiosk", "run", "--school", "bench", "--kiosk", "gate-2", "--reader", "keyboard",
         "--data-dir", folder, "--mqtt-url", url, "--secret", secret, "--central-key", central_key],
        stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
    )
    os.close(slave)
    shown = threading.Event()

    def drain() -> None:
        # Read the terminal until the console closes it: a terminal nobody reads fills up, and then
        # the console's next redraw blocks and it can no longer quit on SIGTERM.
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the console has exited and its side of the terminal is closed
                return
            if not chunk:
                return
            seen = (seen + chunk)[-4096:]
            if "名单 v1".encode() in seen:
                shown.set()

    reader = threading.Thread(target=drain, name="pty-drain", daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not shown.wait(0.2):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("kiosk_memory: the console never showed the roster")
        time.sleep(1.0)
        return _rss_kb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(20)
        reader.join(5)
        os.close(master)


TINY = dict(students=30, guardians=70)  # a size that only shows the benchmark still works (CI)


def main() -> None:
    args = parse_args(__doc__)
    run(**TINY) if args.tiny else run()


if __name__ == "__main__":
    main()
