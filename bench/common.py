"""What the benchmarks share: figures out, percentiles, brokers and databases to measure on."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from gateway import mosquitto, protocol
from gateway.broker import EmbeddedBroker, wait_until_reachable
from gateway.mqtt import Logins, free_port, reachable

# amqtt logs every PUBACK it did not expect under a flood; the figures say what matters.
logging.getLogger("amqtt").setLevel(logging.CRITICAL)

POSTGRES = os.environ.get("SG_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiny", action="store_true", help="run at a size that only shows it works (CI)")
    return parser.parse_args()


def emit(bench: str, figure: str, value, unit: str, **settings) -> dict:
    row = {"bench": bench, "figure": figure, "value": value, "unit": unit, "settings": settings}
    print(json.dumps(row, ensure_ascii=False), flush=True)
    return row


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def signed_events(school: str, kiosk: str, secret: bytes, count: int, kind: str = "checkin") -> list[dict]:
    """A kiosk's chained, signed events, as the kiosk would send them."""
    out, prev = [], ""
    now = datetime.now(UTC)
    for seq in range(1, count + 1):
        event = protocol.new_event(
            school=school, kiosk=kiosk, seq=seq, prev=prev, at=now, kind=kind, secret=secret,
            card=f"{seq:08X}", student=f"S{seq % 3000:04d}", boot=1, mono=seq,
        )
        prev = protocol.event_hash(event)
        out.append(event)
    return out


@contextlib.contextmanager
def broker(kind: str, logins: list[mosquitto.KioskLogin] | None = None) -> Iterator[tuple[str, str]]:
    """(central's URL, the plain URL kiosks use with their derived logins) of a fresh broker: the
    embedded one, or Mosquitto with the generated configuration on a free port, as deployed."""
    port = free_port()
    if kind == "embedded":
        # Logins only, as every installation: central's, and each kiosk's derived from its secret.
        password = uuid.uuid4().hex
        secrets = {(k.school, k.kiosk): k.secret for k in logins or []}
        with EmbeddedBroker("127.0.0.1", port, logins=Logins({"central": password}, lambda s, k: secrets.get((s, k)))) as embedded:
            yield f"mqtt://central:{password}@127.0.0.1:{port}", embedded.url
        return
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with tempfile.TemporaryDirectory(prefix="sg-bench-mosquitto-") as folder:
        password = uuid.uuid4().hex
        central_port = free_port()  # central has a listener of its own (gateway/mosquitto.py)
        conf = mosquitto.write(
            Path(folder), kiosks=logins or [], central_password=password, port=port, bind="127.0.0.1", user=getpass.getuser(),
            central_port=central_port,
        )
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_reachable("127.0.0.1", port)
            wait_until_reachable("127.0.0.1", central_port)
            yield f"mqtt://central:{password}@127.0.0.1:{central_port}", f"mqtt://127.0.0.1:{port}"
        finally:
            proc.kill()
            proc.wait(10)


def central_key(folder: Path) -> tuple[Path, str]:
    """(file, public key hex) of a central signing key made in ``folder``: central processes get
    the file (SCHOOLGATE_SIGNING_KEY_FILE), kiosks the public key, as registration hands it out."""
    from central.core import keys

    path = Path(folder) / "central-signing.key"
    return path, keys.public_hex(path)


@contextlib.contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh database URL at the newest schema: SQLite in a temporary folder, or a new PostgreSQL
    database. Each is a copy of one migrated per process and kind (the callers' own ``migrate`` then finds
    nothing to do): running every migration for each of a benchmark's runs was half of a tiny run's time."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="sg-bench-db-") as folder:
            shutil.copy(_migrated_template("sqlite"), f"{folder}/central.sqlite3")
            yield f"sqlite:///{folder}/central.sqlite3"
        return
    import psycopg

    name = f"sgbench_{uuid.uuid4().hex[:10]}"
    template = _migrated_template("postgres")
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_templates: dict[str, str] = {}


def _migrated_template(kind: str) -> str:
    """The migrated database this process copies (a SQLite file's path, or a PostgreSQL database's name),
    made once and removed at exit."""
    if kind not in _templates:
        import atexit

        from central.core.db import make_engine, migrate

        if kind == "sqlite":
            folder = tempfile.mkdtemp(prefix="sg-bench-template-")
            atexit.register(shutil.rmtree, folder, True)
            _templates[kind], url = f"{folder}/central.sqlite3", f"sqlite:///{folder}/central.sqlite3"
        else:
            import psycopg

            name = f"sgbench_template_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(POSTGRES, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            atexit.register(_drop_postgres, name)
            _templates[kind], url = name, POSTGRES.rsplit("/", 1)[0] + f"/{name}"
        engine = make_engine(url)
        try:
            migrate(engine)
        finally:
            engine.dispose()  # CREATE DATABASE … TEMPLATE needs nobody connected to the template
    return _templates[kind]


def _drop_postgres(name: str) -> None:
    import psycopg

    with contextlib.suppress(psycopg.Error), psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def available(kind: str) -> bool:
    """Whether a broker or database kind can be measured on this machine."""
    if kind == "mosquitto":
        return shutil.which("mosquitto") is not None or os.path.exists("/usr/sbin/mosquitto")
    if kind == "postgres":
        return reachable("127.0.0.1", 5432)
    return True
