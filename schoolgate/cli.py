"""The ``schoolgate`` command line: thin wiring over the packages, no logic of its own.

What it says to a person comes from the catalogue (``i18n``) in the language of ``--lang`` (on
``schoolgate`` itself or on a command), else of ``LC_ALL`` / ``LC_MESSAGES`` / ``LANG``, else zh_CN.
JSON output stays as it is: it is for programs.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

from i18n import LOCALES, LocalizedError, locale_from_env, t

app = typer.Typer(help="schoolgate: after-school attendance and pickup kiosks", no_args_is_help=True)
kiosk_app = typer.Typer(help="Run a gate or room kiosk.", no_args_is_help=True)
central_app = typer.Typer(help="The central server and its admin commands.", no_args_is_help=True)
app.add_typer(kiosk_app, name="kiosk")
app.add_typer(central_app, name="central")
hardware_app = typer.Typer(help="Installer tools for card readers.", no_args_is_help=True)
app.add_typer(hardware_app, name="hardware")


gateway_app = typer.Typer(help="The MQTT side: broker configuration.", no_args_is_help=True)
app.add_typer(gateway_app, name="gateway")

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="TOML file with [kiosk] / [central] tables.")]


def _logging(verbose: bool, fmt: str | LogFormat = "text") -> None:
    """One line per record on standard error, text or JSON, with card UIDs, phones, tokens and
    passwords masked (schoolgate/logs.py)."""
    from schoolgate import logs

    logs.setup(verbose=verbose, fmt=getattr(fmt, "value", fmt))


class LogFormat(str, enum.Enum):
    text = "text"
    json = "json"


LogFormatOpt = Annotated[LogFormat, typer.Option("--log-format", help="Log lines as text, or one JSON object each (json).")]


LangOpt = Annotated[
    Optional[str],
    typer.Option("--lang", help="Language of the output: zh_CN or en (default: LC_ALL, LC_MESSAGES or LANG, else zh_CN)."),
]


# `schoolgate --lang` as given on this run (set by the callback below before any command runs).
_asked: dict[str, str | None] = {"lang": None}


@app.callback()
def main(lang: LangOpt = None) -> None:
    """schoolgate: after-school attendance and pickup kiosks."""
    _asked["lang"] = lang


def _lang(explicit: str | None = None) -> str:
    """The language to speak: a command's own --lang, else schoolgate's --lang, else the environment's."""
    chosen = explicit or _asked["lang"]
    if chosen is None:
        return locale_from_env()
    if chosen not in LOCALES:
        typer.echo(t("cli.lang_unknown", locale_from_env(), given=chosen, choices=", ".join(LOCALES)), err=True)
        raise typer.Exit(2)
    return chosen


def _say(key: str, lang: str, **params: object) -> None:
    typer.echo(t(key, lang, **params), err=True)


def _fail(key: str, lang: str, **params: object) -> NoReturn:
    _say(key, lang, **params)
    raise typer.Exit(2)


def _fail_with(exc: LocalizedError | ValueError, lang: str) -> NoReturn:
    typer.echo(_problem(exc, lang), err=True)
    raise typer.Exit(2)


def _problem(exc: Exception, lang: str) -> str:
    """An error's text: a catalogue error in the chosen language; another (a reader's, a file's) as it says."""
    return exc.text(lang) if isinstance(exc, LocalizedError) else str(exc)


@app.command()
def broker(
    host: str = typer.Option("127.0.0.1", help="Loopback address to listen on."),
    port: int = typer.Option(1883, help="TCP port."),
    config: ConfigOpt = None,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Run the embedded MQTT broker (amqtt, MQTT 3.1.1) until Ctrl-C. It takes no anonymous clients:
    central logs in as SCHOOLGATE_MQTT_URL says (mqtt://central:PASSWORD@…), each kiosk registered
    in central's database with the login derived from its secret."""
    from central.admin import broker_logins
    from central.core.config import Settings
    from gateway.broker import EmbeddedBroker
    from gateway.mqtt import MqttError

    lang = _lang()
    _logging(False, log_format)
    try:
        embedded = EmbeddedBroker(host, port, logins=broker_logins(Settings.load(config))).start()
    except MqttError as exc:
        _fail("cli.broker_failed", lang, problem=_problem(exc, lang))
    _say("cli.broker_running", lang, url=embedded.url)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        embedded.stop()


@kiosk_app.command("run")
def kiosk_run(
    school: Annotated[Optional[str], typer.Option(help="School id.")] = None,
    kiosk: Annotated[Optional[str], typer.Option(help="This kiosk's id.")] = None,
    reader: Annotated[
        Optional[str],
        typer.Option(
            help="Reader spec: sim (taps UIDs read from stdin), nfc:usb, nfc:tty:USB0:pn532, nfc:udp:HOST:PORT, "
            "serial:PORT?protocol=rdm6300|line, keyboard; `schoolgate hardware list` suggests specs."
        ),
    ] = None,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Print one JSON line per decision instead of the console.")] = False,
    lang: Annotated[Optional[str], typer.Option("--lang", help="Console and output language: zh_CN or en (the kiosk's locale setting, else zh_CN).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder of the kiosk's SQLite store.")] = None,
    mqtt_url: Annotated[Optional[str], typer.Option(help="Broker URL, mqtt://[user:pass@]host:port.")] = None,
    secret: Annotated[Optional[str], typer.Option(help="Hex secret shared with central.")] = None,
    central_key: Annotated[
        Optional[str], typer.Option(help="Central's public key (64 hex digits, printed by `central register-kiosk`).")
    ] = None,
    config: ConfigOpt = None,
    verbose: bool = False,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Run a kiosk: read cards, decide, keep every event in the outbox, sync to central."""
    from pydantic import ValidationError

    from hardware import ReaderError, SimulatedReader, connect
    from kiosk.config import KioskSettings
    from kiosk.runtime import Kiosk

    said = _lang(lang)  # the command's own lines; the console and the decisions speak the kiosk's locale
    explicit = lang or _asked["lang"]
    _logging(verbose, log_format)
    try:
        settings = KioskSettings.load(
            config, school=school, kiosk=kiosk, reader=reader, data_dir=data_dir, mqtt_url=mqtt_url, secret=secret,
            central_key=central_key, locale=explicit,
        )
    except ValidationError as exc:
        _fail("cli.kiosk_settings", said, problem=str(exc))
    if not no_ui:
        _run_console(settings, said)
        return
    try:
        card_reader = connect(settings.reader)
    except ReaderError as exc:
        _fail("cli.reader_failed", said, problem=_problem(exc, said))
    gate = Kiosk(settings)
    _say("kiosk_started", said, school=settings.school, kiosk=settings.kiosk)
    if gate.store.secret_created:
        _say("secret_created", said, command=gate.register_command())
    gate.start()
    stop = threading.Event()
    if isinstance(card_reader, SimulatedReader):
        # The simulated reader taps what arrives on standard input, one "UID [TECH]" per line.
        threading.Thread(target=card_reader.feed, args=(sys.stdin,), name="sim-stdin", daemon=True).start()
    # SIGTERM (systemd's stop) and Ctrl-C end the loop between taps: the tap in hand is decided,
    # recorded and printed, then the reader closes, the offline status goes out, MQTT disconnects
    # and the store closes; the exit code is 0.
    _stop_on_signals(stop)
    try:
        gate.run(card_reader, sys.stdout, stop, alerts_every=5.0)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        card_reader.close()
        gate.close()
        _say("kiosk_stopped", said, school=settings.school, kiosk=settings.kiosk)


@kiosk_app.command("status")
def kiosk_status(
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder of the kiosk's SQLite store.")] = None,
    school: Annotated[Optional[str], typer.Option(help="School id, when the folder holds stores of several kiosks.")] = None,
    kiosk: Annotated[Optional[str], typer.Option(help="Kiosk id, when the folder holds stores of several kiosks.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
    lang: LangOpt = None,
    config: ConfigOpt = None,
) -> None:
    """For an installer: the kiosk's outbox depth, last seq written and acknowledged, roster version
    and age, read from its store without writing (the kiosk may be running)."""
    from kiosk.config import KioskSettings
    from kiosk.store import StoreError, read_status

    from pydantic import ValidationError

    said = _lang(lang)
    folder = data_dir
    if folder is None:
        try:  # the kiosk's own settings (its config file, SCHOOLGATE_KIOSK_*) say where its store is
            folder = KioskSettings.load(config, school=school, kiosk=kiosk).data_dir
        except ValidationError:  # no school or kiosk configured here: the default folder
            folder = KioskSettings.model_fields["data_dir"].default
    if school and kiosk:
        path = folder / f"{school}-{kiosk}.sqlite3"
    else:
        found = sorted(folder.glob("*.sqlite3")) if folder.is_dir() else []
        if not found:
            _fail("cli.kiosk_no_store", said, folder=str(folder))
        if len(found) > 1:
            _fail("cli.kiosk_many_stores", said, folder=str(folder), names=", ".join(p.name for p in found))
        path = found[0]
    try:
        status = read_status(path, _now())
    except StoreError as exc:
        _fail("cli.kiosk_store_unreadable", said, problem=str(exc))
    if as_json:
        shown = dataclasses.asdict(status)
        shown["roster_generated_at"] = status.roster_generated_at.isoformat() if status.roster_generated_at else None
        typer.echo(json.dumps(shown, ensure_ascii=False))
        return
    typer.echo(t("cli.kiosk_status", said, school=status.school, kiosk=status.kiosk, queue=status.queue,
                 last_seq=status.last_seq, acked=status.acked))
    if status.roster_age_s is None:
        typer.echo(t("cli.kiosk_status_no_roster", said))
    else:
        hours, minutes = divmod(max(status.roster_age_s, 0) // 60, 60)
        typer.echo(t("cli.kiosk_status_roster", said, version=status.roster_version, hours=hours, minutes=minutes))


@kiosk_app.command("backup")
def kiosk_backup(
    out: Annotated[Path, typer.Option("--out", help="The backup file to write.")],
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder of the kiosk's SQLite store.")] = None,
    school: Annotated[Optional[str], typer.Option(help="School id, when the folder holds stores of several kiosks.")] = None,
    kiosk: Annotated[Optional[str], typer.Option(help="Kiosk id, when the folder holds stores of several kiosks.")] = None,
    lang: LangOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Back up the kiosk's store (SQLite's online backup API: safe while the kiosk runs)."""
    from kiosk.config import KioskSettings
    from kiosk.store import StoreError, backup_store

    from pydantic import ValidationError

    said = _lang(lang)
    folder = data_dir
    if folder is None:
        try:
            folder = KioskSettings.load(config, school=school, kiosk=kiosk).data_dir
        except ValidationError:
            folder = KioskSettings.model_fields["data_dir"].default
    found = [folder / f"{school}-{kiosk}.sqlite3"] if school and kiosk else (sorted(folder.glob("*.sqlite3")) if folder.is_dir() else [])
    if not found:
        _fail("cli.kiosk_no_store", said, folder=str(folder))
    if len(found) > 1:
        _fail("cli.kiosk_many_stores", said, folder=str(folder), names=", ".join(p.name for p in found))
    try:
        got_school, got_kiosk, last_seq = backup_store(found[0], out)
    except (StoreError, OSError) as exc:
        _fail("cli.kiosk_store_unreadable", said, problem=str(exc))
    _say("cli.kiosk_backup_written", said, school=got_school, kiosk=got_kiosk, out=str(out), last_seq=last_seq)


@kiosk_app.command("restore")
def kiosk_restore(
    source: Annotated[Path, typer.Option("--from", help="A backup written by `kiosk backup`.")],
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder of the kiosk's SQLite store.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the kiosk's store (stop the kiosk first).")] = False,
    lang: LangOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Restore the kiosk's store from a backup; on its next connection central says where to go on from."""
    from kiosk.config import KioskSettings
    from kiosk.store import StoreError, restore_store

    from pydantic import ValidationError

    said = _lang(lang)
    folder = data_dir
    if folder is None:
        try:
            folder = KioskSettings.load(config).data_dir
        except ValidationError:
            folder = KioskSettings.model_fields["data_dir"].default
    try:
        path, school, kiosk, last_seq = restore_store(source, folder, force=force)
    except (StoreError, OSError, sqlite3.DatabaseError) as exc:
        _fail("cli.kiosk_store_unreadable", said, problem=str(exc))
    _say("cli.kiosk_restored", said, school=school, kiosk=kiosk, path=str(path), last_seq=last_seq)


def _now():
    """The wall clock of the commands that show an age (a test replaces it)."""
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _stop_on_signals(stop: threading.Event) -> None:
    import signal

    def handler(signum, frame) -> None:
        logging.getLogger(__name__).info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def _exit_on_sigterm(console) -> None:
    """SIGTERM quits the console as its quit key does: the app exits, then the same ``finally`` closes
    the reader and the kiosk. ``call_from_thread`` must come from another thread than the app's, and
    the handler runs on the app's (the main thread), so a short-lived thread carries it."""
    import signal

    def quit_console() -> None:
        try:
            console.call_from_thread(console.exit)
        except RuntimeError as exc:  # the app is not running (yet, or any more): nothing to quit
            logging.getLogger(__name__).warning("SIGTERM: the console was not running: %s", exc)

    def handler(signum, frame) -> None:
        threading.Thread(target=quit_console, name="sigterm", daemon=True).start()

    signal.signal(signal.SIGTERM, handler)


def _run_console(settings, lang: str) -> None:
    from hardware import ReaderError
    from kiosk.console import GateConsole, open_reader
    from kiosk.runtime import Kiosk

    try:
        card_reader, wedge = open_reader(settings.reader)
    except ReaderError as exc:
        _fail("cli.reader_failed", lang, problem=_problem(exc, lang))
    gate = Kiosk(settings)
    if gate.store.secret_created:
        _say("secret_created", lang, command=gate.register_command())
    gate.start()
    console = GateConsole(gate, reader=card_reader, **wedge)
    _exit_on_sigterm(console)
    try:
        console.run()
    finally:
        if card_reader:
            card_reader.close()
        gate.close()


@central_app.command("serve")
def central_serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="HTTP port."),
    with_broker: bool = typer.Option(False, "--with-broker", help="Also run the embedded broker at SCHOOLGATE_MQTT_URL."),
    config: ConfigOpt = None,
    log_format: LogFormatOpt = LogFormat.text,
    verbose: bool = typer.Option(False, "--verbose", help="Log at DEBUG too: a line for each event stored."),
) -> None:
    """Run the central server: API, MQTT ingest, roster publication."""
    import secrets

    import uvicorn

    from central.admin import broker_logins
    from central.core.config import Settings
    from central.main import create_app
    from gateway.broker import EmbeddedBroker
    from gateway.mqtt import CENTRAL_USER, BrokerAddress, MqttError

    lang = _lang()
    _logging(verbose, log_format)
    settings = Settings.load(config)
    try:
        settings.check_bind(host)
    except LocalizedError as exc:
        _fail_with(exc, lang)
    embedded = None
    if with_broker:
        address = BrokerAddress.parse(settings.mqtt_url)
        if not address.username:
            # The broker runs in this process: central's login to it can be made here and now.
            address = dataclasses.replace(address, username=CENTRAL_USER, password=secrets.token_urlsafe(24))
            settings = settings.model_copy(update={"mqtt_url": address.url_with_login()})
        try:
            embedded = EmbeddedBroker(address.host, address.port, logins=broker_logins(settings)).start()
        except MqttError as exc:
            _fail("cli.broker_failed", lang, problem=_problem(exc, lang))
    try:
        # log_config=None: uvicorn's own lines go through the masked root handler, in the format asked.
        # The pages' live streams never end on their own: a stop cuts them after 3 s (browsers reconnect).
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info", log_config=None,
                    timeout_graceful_shutdown=3)
    finally:
        if embedded:
            embedded.stop()


@central_app.command("ingest")
def central_ingest(
    config: ConfigOpt = None,
    log_format: LogFormatOpt = LogFormat.text,
    verbose: bool = typer.Option(False, "--verbose", help="Log at DEBUG too: a line for each event stored."),
) -> None:
    """Run only the MQTT ingest (no HTTP): one of several workers when SCHOOLGATE_INGEST_SHARED_GROUP is set."""
    from central.core.config import Settings
    from central.core import clock
    from central.core.db import make_engine, migrate
    from central.kiosks import partitions
    from central.main import ingest_worker

    _logging(verbose, log_format)
    settings = Settings.load(config)
    engine = make_engine(settings.sqlalchemy_url)
    migrate(engine)
    partitions.ensure(engine, now=clock.utcnow())
    bus = ingest_worker(engine, settings).start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        bus.stop()
        engine.dispose()


@central_app.command("backup")
def central_backup(
    out: Annotated[Path, typer.Option("--out", help="The backup file to write (SQLite; for PostgreSQL use pg_dump).")],
    config: ConfigOpt = None,
) -> None:
    """Back up central's SQLite database with SQLite's online backup API: safe while central runs."""
    from central.admin import backup_database
    from central.core.config import Settings

    lang = _lang()
    try:
        done = backup_database(Settings.load(config), out=out)
    except LocalizedError as exc:
        _fail_with(exc, lang)
    _say("cli.backup_written", lang, **done)


@central_app.command("restore")
def central_restore(
    source: Annotated[Path, typer.Option("--from", help="A backup written by `central backup`.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite a database that already holds data (stop central first).")] = False,
    config: ConfigOpt = None,
) -> None:
    """Restore central's SQLite database from a backup, then migrate it to the newest schema."""
    from central.admin import restore_database
    from central.core.config import Settings

    lang = _lang()
    try:
        done = restore_database(Settings.load(config), source=source, force=force)
    except LocalizedError as exc:
        _fail_with(exc, lang)
    _say("cli.restored", lang, database=done["database"], source=done["from"])


@central_app.command("partitions")
def central_partitions(
    ahead: int = typer.Option(3, min=0, max=120, help="Months to make ahead of the current one."),
    archive: bool = typer.Option(True, help="Detach months older than SCHOOLGATE_EVENT_RETENTION_YEARS into archive_ tables."),
    config: ConfigOpt = None,
) -> None:
    """Make the event store's monthly partitions ahead and archive the months past retention (PostgreSQL; SQLite has none)."""
    from central.admin import open_db
    from central.core import clock
    from central.core.config import Settings
    from central.kiosks import partitions

    settings = Settings.load(config)
    engine = open_db(settings)
    try:
        now = clock.utcnow()
        made = partitions.ensure(engine, ahead=ahead, now=now)
        archived = partitions.archive_old(engine, years=settings.event_retention_years, now=now, actor="cli") if archive else []
    finally:
        engine.dispose()
    typer.echo(json.dumps({"made": made, "archived": [dataclasses.asdict(a) for a in archived]}))


@central_app.command("migrate")
def central_migrate(config: ConfigOpt = None) -> None:
    """Create or upgrade the central database schema."""
    from central.admin import open_db
    from central.core.config import Settings

    lang = _lang()
    open_db(Settings.load(config)).dispose()
    _say("cli.migrated", lang)


@central_app.command("import")
def central_import(
    students: Annotated[Optional[Path], typer.Argument(help="Students file (CSV, XLSX or XLS).", exists=True, dir_okay=False)] = None,
    guardians: Annotated[Optional[Path], typer.Argument(help="Guardians file (CSV, XLSX or XLS).", exists=True, dir_okay=False)] = None,
    guardians_file: Annotated[Optional[Path], typer.Option(
        "--guardians", help="A guardians file, alone or with STUDENTS: links to students already stored in the school.",
        exists=True, dir_okay=False)] = None,
    school: str = typer.Option(..., help="School id: 1-64 letters, digits, - or _. It must exist, unless --create-school."),
    create_school: bool = typer.Option(False, "--create-school", help="Create the school if it does not exist yet."),
    school_name: Optional[str] = typer.Option(None, help="The school's name, for a school --create-school makes."),
    zone: str = typer.Option("Asia/Shanghai", help="The school's time zone, for a school --create-school makes."),
    card_format: Annotated[list[str], typer.Option(
        help="How the files write card numbers: hex (default), decimal, decimal-reversed, wiegand26, wiegand34, "
             "em4100; FORMAT for both files, or students=FORMAT / guardians=FORMAT (repeat the option) for one.",
    )] = [],
    config: ConfigOpt = None,
) -> None:
    """Import students and guardians; a file with any bad row imports nothing and lists every bad row.

    `import STUDENTS [GUARDIANS]`, or `import --guardians FILE` for guardians alone (the school must exist)."""
    from central.admin import card_formats, import_files
    from central.core.config import Settings
    from central.core.i18n import LocalizedError
    from central.imports.importer import ImportRejected

    lang = _lang()
    _logging(False)
    if guardians_file and guardians:
        _fail("cli.import_two_guardians", lang)
    guardians = guardians or guardians_file
    if students is None and guardians is None:
        _fail("cli.import_no_files", lang)
    try:
        result, change = import_files(
            Settings.load(config), school=school, students=students, guardians=guardians, school_name=school_name,
            card_format=card_formats(card_format), create_school=create_school, timezone=zone,
        )
    except ImportRejected as exc:
        _fail("cli.import_refused", lang, count=len(exc.errors), rows="\n".join(f"  - {e.text(lang)}" for e in exc.errors))
    except (LocalizedError, ValueError) as exc:
        _fail_with(exc, lang)
    summary = {"imported": vars(result), "roster_version": change.version if change else None}
    typer.echo(json.dumps(summary, ensure_ascii=False))


@central_app.command("create-school")
def central_create_school(
    code: Annotated[str, typer.Argument(help="School id: 1-64 letters, digits, - or _ (kiosks use it in MQTT topics).")],
    name: str = typer.Option(..., help="The school's name, e.g. 示范小学."),
    zone: str = typer.Option("Asia/Shanghai", help="The school's time zone: its school days and times are local to it."),
    config: ConfigOpt = None,
) -> None:
    """Create a school; schools are made only here (or by `import --create-school`), never by naming one."""
    from central.admin import create_school
    from central.core.config import Settings
    from central.core.i18n import LocalizedError

    lang = _lang()
    try:
        made = create_school(Settings.load(config), code=code, name=name, timezone=zone)
    except LocalizedError as exc:
        _fail_with(exc, lang)
    typer.echo(json.dumps(made, ensure_ascii=False))


@central_app.command("reconcile")
def central_reconcile(
    school: str = typer.Option(..., help="School id."),
    day: str = typer.Option(..., help="The school's date, YYYY-MM-DD."),
    config: ConfigOpt = None,
) -> None:
    """One day's sessions: expected, checked in, absent, gone, unresolved (a safety item), unexpected (JSON)."""
    from datetime import date

    from central.admin import reconcile
    from central.core.config import Settings
    from central.core.i18n import LocalizedError

    lang = _lang()
    try:
        when = date.fromisoformat(day)
    except ValueError:
        _fail("cli.bad_day", lang, day=day)
    try:
        result = reconcile(Settings.load(config), school=school, day=when)
    except LocalizedError as exc:
        _fail_with(exc, lang)
    typer.echo(json.dumps(result, ensure_ascii=False))


@central_app.command("bill")
def central_bill(
    school: str = typer.Option(..., help="School id."),
    month: str = typer.Option(..., help="The month, YYYY-MM (the school's calendar)."),
    issue: bool = typer.Option(False, "--issue", help="Issue the drafts: their references go to families."),
    as_json: bool = typer.Option(False, "--json", help="Print the statements as JSON instead of the summary."),
    config: ConfigOpt = None,
) -> None:
    """The month's statements, one per child in the service: made as drafts, redone on a second run
    (issued ones are kept); prints a summary, or the statements with --json."""
    from central.admin import bill
    from central.core.config import Settings
    from central.core.i18n import LocalizedError

    lang = _lang()
    try:
        run = bill(Settings.load(config), school=school, month=month, issue=issue)
    except LocalizedError as exc:
        _fail_with(exc, lang)
    if as_json:
        typer.echo(json.dumps([s.model_dump(mode="json") for s in run.statements], ensure_ascii=False))
        return
    yuan = lambda fen: f"{fen // 100}.{fen % 100:02d}"  # noqa: E731 - money shown exactly
    typer.echo(t("cli.billed", lang, school=run.school, month=run.month, children=run.children, created=run.created,
                 updated=run.updated, unchanged=run.unchanged, removed=run.removed, issued=run.issued,
                 charge=yuan(run.charge_fen), forgone=yuan(run.forgone_fen), exempt=run.exempt,
                 subsidy=yuan(run.subsidy_fen), refund=yuan(run.refund_fen)))
    if run.kept:
        typer.echo(t("cli.billed_kept", lang, references=", ".join(run.kept)))


@central_app.command("pay-staff")
def central_pay_staff(
    school: str = typer.Option(..., help="School id."),
    month: Optional[str] = typer.Option(None, help="The month, YYYY-MM (or --term)."),
    term: Optional[int] = typer.Option(None, help="The term's id, to pay for a term instead of a month."),
    fee_income_fen: Optional[int] = typer.Option(None, help="Fee income in fen, if more than the month's issued statements hold."),
    subsidy_fen: Optional[int] = typer.Option(None, help="Subsidy in fen, if more than the month's issued statements hold."),
    as_json: bool = typer.Option(False, "--json", help="Print the run as JSON."),
    config: ConfigOpt = None,
) -> None:
    """The staff pay (P8.1) of a month or a term: the school's share of fees + subsidy split by periods
    served, volunteers' allowances apart; replaces the draft, refused once confirmed, and refused where a
    confirmed run of another period shares a month with it."""
    from central.admin import pay_staff
    from central.core.config import Settings
    from central.core.i18n import LocalizedError

    lang = _lang()
    try:
        run = pay_staff(Settings.load(config), school=school, month=month, term_id=term, fee_income_fen=fee_income_fen, subsidy_fen=subsidy_fen)
    except LocalizedError as exc:
        _fail_with(exc, lang)
    if as_json:
        typer.echo(json.dumps(run.model_dump(mode="json"), ensure_ascii=False))
        return
    typer.echo(t("cli.staffpay_head", lang, school=run.school, month=run.month or run.term, state=run.state, pool=run.pool_fen,
                 share=run.share_percent, fees=run.fee_income_fen, subsidy=run.subsidy_fen, periods=run.periods,
                 allowance=run.allowance_fen))
    for line in run.lines:
        typer.echo(t("cli.staffpay_line", lang, name=line.name, kind=line.kind, periods=line.periods, tapped=line.periods_tapped,
                     confirmed=line.periods_confirmed, share_fen=line.share_fen, allowance_fen=line.allowance_fen))


@central_app.command("report")
def central_report(
    school: str = typer.Option(..., help="School id."),
    year: int = typer.Option(..., help="The calendar year reported (P7.6: due before February of the next)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the report to FILE.xlsx or FILE.pdf."),
    config: ConfigOpt = None,
) -> None:
    """The school's annual report (P7.6): service days, groups, children, attendance, fees, subsidy,
    refunds, staff pay and its share, periods per staff member, safety incidents (JSON; --out writes a file)."""
    from central.admin import annual_report
    from central.reconciliation.annual import figures
    from central.core.config import Settings
    from central.core.i18n import LocalizedError

    lang = _lang()
    if out is not None and out.suffix not in (".xlsx", ".pdf"):
        _fail("cli.report_format", lang, path=str(out))
    try:
        report = annual_report(Settings.load(config), school=school, year=year, out=str(out) if out else None, lang=lang)
    except LocalizedError as exc:
        _fail_with(exc, lang)
    if out is not None:
        typer.echo(t("cli.report_written", lang, path=str(out)))
        return
    typer.echo(json.dumps(figures(report), ensure_ascii=False))


@central_app.command("register-kiosk")
def central_register_kiosk(
    school: str = typer.Option(..., help="School id (an existing school: `central create-school` makes one)."),
    kiosk: str = typer.Option(..., help="Kiosk id."),
    secret: Optional[str] = typer.Option(None, help="The kiosk's hex secret (printed by the kiosk on first start); made here if absent."),
    config: ConfigOpt = None,
) -> None:
    """Register a kiosk and its secret at central (again, to change the secret)."""
    from central.admin import central_key, register_kiosk
    from central.core.config import Settings
    from central.core.i18n import LocalizedError
    from central.core.keys import SigningKeyError
    from gateway.protocol import ProtocolError

    lang = _lang()
    settings = Settings.load(config)
    try:
        made = register_kiosk(settings, school=school, kiosk=kiosk, secret=secret)
        # The kiosk verifies everything central publishes with this key (--central-key).
        public = central_key(settings)
    except (LocalizedError, ValueError, ProtocolError, SigningKeyError) as exc:
        _fail("cli.kiosk_refused", lang, problem=_problem(exc, lang))
    typer.echo(json.dumps({"school": school, "kiosk": kiosk, "secret": made, "central_key": public}))


@central_app.command("create-user")
def central_create_user(
    username: str = typer.Option(..., help="Login name: 3–64 letters, digits or . _ @ -."),
    role: str = typer.Option(..., help="district, school_admin, teacher, guard, finance or guardian."),
    school: Optional[str] = typer.Option(None, help="School id (every role but district)."),
    guardian_id: Optional[int] = typer.Option(None, help="The guardian a guardian account belongs to."),
    staff_id: Optional[int] = typer.Option(None, help="The staff member a teacher account belongs to."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
    config: ConfigOpt = None,
) -> None:
    """Create an account, e.g. the first district or school admin; the password is asked for, never an argument."""
    from central.admin import create_user
    from central.core.config import Settings

    lang = _lang()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt(
            t("cli.password", lang), hide_input=True,
            confirmation_prompt=t("cli.password_again", lang), prompt_suffix=t("cli.prompt_suffix", lang),
        )
    try:
        made = create_user(
            Settings.load(config), username=username, password=password, role=role, school=school,
            guardian_id=guardian_id, staff_id=staff_id,
        )
    except LocalizedError as exc:
        _fail_with(exc, lang)
    typer.echo(json.dumps(made, ensure_ascii=False))


@central_app.command("verify-audit")
def central_verify_audit(config: ConfigOpt = None) -> None:
    """Check the audit log's hash chain; exits 1 and names the first bad row if it was changed."""
    from central.admin import verify_audit
    from central.core.config import Settings

    verdict = verify_audit(Settings.load(config))
    typer.echo(json.dumps(verdict.as_dict()))
    if not verdict.ok:
        raise typer.Exit(1)


ledger_app = typer.Typer(help="The school service fund's earmarked ledger (P7.5).", no_args_is_help=True)
central_app.add_typer(ledger_app, name="ledger")


@ledger_app.command("verify")
def central_ledger_verify(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Check every school's ledger chain: exits 0 when intact, 1 naming each chain's first broken entry."""
    from central.admin import verify_ledger
    from central.core.config import Settings

    lang = _lang()
    verdict = verify_ledger(Settings.load(config))
    if as_json:
        typer.echo(json.dumps(verdict.as_dict(lang), ensure_ascii=False))
    elif verdict.ok:
        typer.echo(t("cli.ledger_intact", lang, entries=verdict.entries, schools=len(verdict.heads)))
        for head in verdict.heads:
            typer.echo(t("cli.ledger_head", lang, school=head.school, entries=head.entries, hash=head.hash))
    else:
        for bad in verdict.breaks:
            if bad.seq is None:
                typer.echo(t("cli.ledger_orphan", lang, reason=bad.text(lang)))
            else:
                typer.echo(t("cli.ledger_broken", lang, school=bad.school, seq=bad.seq, id=bad.entry_id, reason=bad.text(lang)))
    if not verdict.ok:
        raise typer.Exit(1)


# --locale is the older spelling of --lang, kept for the installers' notes that use it.
LocaleOpt = Annotated[Optional[str], typer.Option("--lang", "--locale", help="Language of the output: zh_CN or en.")]


@hardware_app.command("list")
def hardware_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
    locale: LocaleOpt = None,
) -> None:
    """List the NFC readers (USB, through nfcpy) and the serial ports of this machine, with their reader specs."""
    from hardware.tools import nfc_devices, serial_ports

    locale = _lang(locale)

    nfc, problem = nfc_devices()
    ports = serial_ports()
    if as_json:
        typer.echo(json.dumps({"nfc": nfc, "nfc_problem": problem, "serial": ports}, ensure_ascii=False))
        return
    for heading, found in (("nfc_heading", nfc), ("serial_heading", ports)):
        typer.echo(t(heading, locale))
        for device in found:
            typer.echo(t("device", locale, name=device["name"], description=device["description"],
                         specs=" | ".join(device["specs"])))
        if heading == "nfc_heading" and problem:
            typer.echo(t("nfc_problem", locale, problem=problem))
        elif not found:
            typer.echo(t("none_found", locale))


@hardware_app.command("read")
def hardware_read(
    reader: Annotated[str, typer.Option(help="Reader spec, e.g. nfc:usb, serial:/dev/ttyUSB0?protocol=rdm6300, keyboard.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line per tap instead of text.")] = False,
    locale: LocaleOpt = None,
    verbose: bool = False,
) -> None:
    """Print each tap with its card number in every form and the read time, until Ctrl-C."""
    from hardware import ReaderError, connect
    from hardware.tools import describe

    locale = _lang(locale)

    _logging(verbose)
    if not verbose:
        logging.getLogger("hardware").setLevel(logging.ERROR)  # state changes are printed below instead
        logging.getLogger("nfc").setLevel(logging.WARNING)
    try:
        card_reader = connect(reader)
    except ReaderError as exc:
        _fail("cli.reader_failed", locale, problem=_problem(exc, locale))
    typer.echo(t("reading", locale, spec=card_reader.spec), err=True)
    state, count = card_reader.state, 0
    try:
        while True:
            tap = card_reader.read(timeout=0.5)
            if card_reader.state != state:
                state = card_reader.state
                typer.echo(t("state", locale, state=state), err=True)
            if tap is None:
                continue
            count += 1
            shown = describe(tap)
            # A 7-byte UID has no 10-digit or Wiegand form: a dash says so where a blank would look lost.
            printed = {name: "—" if value is None else value for name, value in shown.items()}
            typer.echo(json.dumps(shown, ensure_ascii=False) if as_json else t("tap", locale, **printed))
    except KeyboardInterrupt:
        pass
    except ReaderError as exc:
        card_reader.close()
        _fail("cli.reader_failed", locale, problem=_problem(exc, locale))
    card_reader.close()
    typer.echo(t("stopped", locale, count=count), err=True)


@gateway_app.command("mosquitto-config")
def gateway_mosquitto_config(
    out: Annotated[Path, typer.Option(help="Folder to write mosquitto.conf, passwd, acl and data/ into.")],
    port: int = typer.Option(1883, help="The kiosks' plain MQTT listener port."),
    bind: str = typer.Option("0.0.0.0", help="Address of the kiosks' plain listener."),
    central_port: int = typer.Option(1884, help="Central's own listener port (central's login only; ingest workers share it)."),
    central_bind: str = typer.Option("127.0.0.1", help="Address of central's listener; widen it only for workers on other hosts."),
    central_password: Optional[str] = typer.Option(
        None, help="Central's broker password; else the one kept in OUT/central-password, else a new one (then kept)."),
    tls_cert: Optional[Path] = typer.Option(None, help="Certificate for a TLS listener on 8883."),
    tls_key: Optional[Path] = typer.Option(None, help="Key for the TLS listener."),
    tls_ca: Optional[Path] = typer.Option(None, help="CA file for the TLS listener."),
    bridge: Optional[str] = typer.Option(None, help="host:port of a district broker to bridge to."),
    bridge_user: Optional[str] = typer.Option(None),
    bridge_password: Optional[str] = typer.Option(None),
    user: str = typer.Option(
        "mosquitto", help="Account mosquitto drops root for; run as root, the files are given to it (it must exist)."),
    reload: bool = typer.Option(False, "--reload", help="Then send SIGHUP to the running mosquitto (its pid_file) to reread the logins."),
    config: ConfigOpt = None,
) -> None:
    """Write a Mosquitto configuration with a login and ACL for every kiosk registered at central.

    Run again after registering a kiosk, with --reload: the running broker rereads the logins
    without a restart, and central's password stays the one made the first time."""
    import pwd

    from central.admin import kiosk_logins
    from central.core.config import Settings
    from gateway import mosquitto

    lang = _lang()
    settings = Settings.load(config)
    if bool(tls_cert) != bool(tls_key):
        _fail("cli.tls_pair", lang)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(user)
        except KeyError:
            _fail("cli.mosquitto_user_missing", lang, user=user)
    logins = [mosquitto.KioskLogin(*row) for row in kiosk_logins(settings)]
    password = mosquitto.central_password(out, central_password)
    conf = mosquitto.write(
        out,
        kiosks=logins,
        central_password=password,
        port=port,
        bind=bind,
        tls=mosquitto.Tls(tls_cert, tls_key, tls_ca) if tls_cert and tls_key else None,
        bridge=mosquitto.Bridge(bridge, bridge_user, bridge_password) if bridge else None,
        prefix=settings.topic_prefix,
        user=user,
        central_port=central_port,
        central_bind=central_bind,
    )
    reloaded = None
    if reload:
        try:
            reloaded = mosquitto.reload(out)
        except mosquitto.NotRunning as exc:
            _fail("cli.mosquitto_not_running", lang, pid_file=str(exc))
        except PermissionError:
            _fail("cli.mosquitto_reload_denied", lang, pid_file=str(out / mosquitto.PID_FILE))
    central_host = "127.0.0.1" if central_bind in ("0.0.0.0", "::", "") else central_bind
    typer.echo(
        json.dumps(
            {
                "config": str(conf),
                "kiosks": len(logins),
                "run": f"mosquitto -c {conf}",
                **({"reloaded_pid": reloaded} if reload else {}),
                "central_mqtt_url": f"mqtt://central:{password}@{central_host}:{central_port}",
            }
        )
    )


@app.command()
def demo(
    headless: bool = typer.Option(False, "--headless", help="Run the scripted afternoon and print a JSON summary."),
    lang: LangOpt = None,
    verbose: bool = False,
) -> None:
    """Run broker, central and a kiosk on this machine with a generated demo school.

    Without --headless the guard's console opens: d signs the guard in (needed to confirm a pickup),
    keys 1-9 tap demo children, g a guardian of the last child, b the barred guardian, t a teacher,
    u an unknown card; ? lists every key.
    """
    from schoolgate.demo import run_demo

    lang = _lang(lang)
    _logging(verbose)
    if not headless and not sys.stdout.isatty():
        _fail("cli.demo_needs_terminal", lang)
    summary = run_demo(headless=headless, locale=lang)
    typer.echo(json.dumps(summary, ensure_ascii=False))
    if not summary["ok"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
