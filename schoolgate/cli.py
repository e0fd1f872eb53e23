"""The ``schoolgate`` command line: thin wiring over the packages, no logic of its own."""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="schoolgate: after-school attendance and pickup kiosks", no_args_is_help=True)
kiosk_app = typer.Typer(help="Run a gate or room kiosk.", no_args_is_help=True)
central_app = typer.Typer(help="The central server and its admin commands.", no_args_is_help=True)
app.add_typer(kiosk_app, name="kiosk")
app.add_typer(central_app, name="central")

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="TOML file with [kiosk] / [central] tables.")]


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("amqtt", "transitions", "uvicorn.access", "alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(2)


@app.command()
def broker(
    host: str = typer.Option("127.0.0.1", help="Loopback address to listen on."),
    port: int = typer.Option(1883, help="TCP port."),
) -> None:
    """Run the embedded MQTT broker (amqtt, MQTT 3.1.1) until Ctrl-C."""
    from gateway.broker import EmbeddedBroker
    from gateway.mqtt import MqttError

    _logging(False)
    try:
        embedded = EmbeddedBroker(host, port).start()
    except MqttError as exc:
        _fail(str(exc))
    typer.echo(f"embedded broker on {embedded.url}", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        embedded.stop()


@kiosk_app.command("run")
def kiosk_run(
    school: Annotated[Optional[str], typer.Option(help="School id.")] = None,
    kiosk: Annotated[Optional[str], typer.Option(help="This kiosk's id.")] = None,
    reader: Annotated[
        Optional[str], typer.Option(help="Reader spec: sim (taps UIDs read from stdin), nfc:usb, nfc:udp:HOST:PORT, …")
    ] = None,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Print one JSON line per decision instead of the console.")] = False,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder of the kiosk's SQLite store.")] = None,
    mqtt_url: Annotated[Optional[str], typer.Option(help="Broker URL, mqtt://[user:pass@]host:port.")] = None,
    secret: Annotated[Optional[str], typer.Option(help="Hex secret shared with central.")] = None,
    config: ConfigOpt = None,
    verbose: bool = False,
) -> None:
    """Run a kiosk: read cards, decide, keep every event in the outbox, sync to central."""
    from pydantic import ValidationError

    from hardware import ReaderError, SimulatedReader, connect
    from kiosk.config import KioskSettings
    from kiosk.i18n import t
    from kiosk.runtime import Kiosk

    _logging(verbose)
    try:
        settings = KioskSettings.load(
            config, school=school, kiosk=kiosk, reader=reader, data_dir=data_dir, mqtt_url=mqtt_url, secret=secret
        )
    except ValidationError as exc:
        _fail(f"kiosk settings: {exc}")
    if not no_ui:
        _fail("the guard console comes with its own issue; run with --no-ui for now")
    try:
        card_reader = connect(settings.reader)
    except ReaderError as exc:
        _fail(str(exc))
    gate = Kiosk(settings)
    typer.echo(t("kiosk_started", settings.locale, school=settings.school, kiosk=settings.kiosk), err=True)
    if gate.store.secret_created:
        typer.echo(t("secret_created", settings.locale, command=gate.register_command()), err=True)
    gate.start()
    stop = threading.Event()
    if isinstance(card_reader, SimulatedReader):
        # The simulated reader taps what arrives on standard input, one "UID [TECH]" per line.
        threading.Thread(target=card_reader.feed, args=(sys.stdin,), name="sim-stdin", daemon=True).start()
    try:
        gate.run(card_reader, sys.stdout, stop)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        card_reader.close()
        gate.close()


@central_app.command("serve")
def central_serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="HTTP port."),
    with_broker: bool = typer.Option(False, "--with-broker", help="Also run the embedded broker at SCHOOLGATE_MQTT_URL."),
    config: ConfigOpt = None,
) -> None:
    """Run the central server: API, MQTT ingest, roster publication."""
    import uvicorn

    from central.core.config import Settings
    from central.main import create_app
    from gateway.broker import EmbeddedBroker
    from gateway.mqtt import BrokerAddress

    _logging(False)
    settings = Settings.load(config)
    embedded = None
    if with_broker:
        address = BrokerAddress.parse(settings.mqtt_url)
        embedded = EmbeddedBroker(address.host, address.port).start()
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    finally:
        if embedded:
            embedded.stop()


@central_app.command("migrate")
def central_migrate(config: ConfigOpt = None) -> None:
    """Create or upgrade the central database schema."""
    from central.admin import open_db
    from central.core.config import Settings

    open_db(Settings.load(config)).dispose()
    typer.echo("database is at the newest schema", err=True)


@central_app.command("import")
def central_import(
    students: Annotated[Path, typer.Argument(help="Students file (CSV or XLSX).", exists=True, dir_okay=False)],
    guardians: Annotated[Optional[Path], typer.Argument(help="Guardians file (CSV or XLSX).", exists=True, dir_okay=False)] = None,
    school: str = typer.Option(..., help="School id; created if new."),
    school_name: Optional[str] = typer.Option(None, help="The school's name, for a new school."),
    config: ConfigOpt = None,
) -> None:
    """Import students and guardians; a file with any bad row imports nothing and lists every bad row."""
    from central.admin import import_files
    from central.core.config import Settings
    from central.importer import ImportRejected

    _logging(False)
    try:
        result, change = import_files(
            Settings.load(config), school=school, students=students, guardians=guardians, school_name=school_name
        )
    except ImportRejected as exc:
        _fail(str(exc))
    summary = {"imported": vars(result), "roster_version": change.version if change else None}
    typer.echo(json.dumps(summary, ensure_ascii=False))


@central_app.command("register-kiosk")
def central_register_kiosk(
    school: str = typer.Option(..., help="School id."),
    kiosk: str = typer.Option(..., help="Kiosk id."),
    secret: Optional[str] = typer.Option(None, help="The kiosk's hex secret (printed by the kiosk on first start); made here if absent."),
    config: ConfigOpt = None,
) -> None:
    """Register a kiosk and its secret at central (again, to change the secret)."""
    from central.admin import register_kiosk
    from central.core.config import Settings
    from gateway.protocol import ProtocolError

    try:
        made = register_kiosk(Settings.load(config), school=school, kiosk=kiosk, secret=secret)
    except (ValueError, ProtocolError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps({"school": school, "kiosk": kiosk, "secret": made}))


@app.command()
def demo(
    headless: bool = typer.Option(False, "--headless", help="Run the scripted afternoon and print a JSON summary."),
    verbose: bool = False,
) -> None:
    """Run broker, central and a kiosk on this machine with a generated demo school."""
    from schoolgate.demo import run_demo

    _logging(verbose)
    summary = run_demo(headless=headless)
    typer.echo(json.dumps(summary, ensure_ascii=False))
    if not summary["ok"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
