"""What the administrator's commands do: import a roster, register a kiosk, publish rosters."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, select

from central.core import keys
from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.core.errors import Missing
from central.imports import importer
from central.kiosks import roster, services
from central.kiosks.bus import publish_once
from central.schools import registry
from central.schools.models import Kiosk, School
from gateway import protocol
from gateway.mqtt import BrokerAddress, Logins, MqttError

log = logging.getLogger(__name__)


def open_db(settings: Settings):
    engine = make_engine(settings.sqlalchemy_url)
    migrate(engine)
    return engine


def publish_change(settings: Settings, change: roster.RosterChange | None) -> bool:
    """Publish a roster change now; False when no broker answered (central republishes on connect)."""
    if change is None:
        return True
    topics = protocol.Topics(settings.topic_prefix)
    messages = []
    if change.delta is not None:
        messages.append((topics.roster_delta(change.school), change.delta, False))
    messages.append((topics.roster(change.school), change.snapshot, True))
    try:
        publish_once(BrokerAddress.parse(settings.mqtt_url), messages, signing_key=keys.load_or_create(settings.signing_key_file))
    except (OSError, MqttError) as exc:
        log.warning("roster v%s not published now (%s); central publishes it when it connects", change.version, exc)
        return False
    return True


def card_formats(options: list[str]) -> dict[str, str]:
    """``--card-format`` values: ``FORMAT`` for both files, ``students=FORMAT`` or ``guardians=FORMAT`` for one."""
    formats: dict[str, str] = {}
    for option in options:
        file, _, name = option.rpartition("=")
        for one in (file,) if file else ("students", "guardians"):
            formats[one] = name
    return formats


def import_files(
    settings: Settings, *, school: str, students: Path | None, guardians: Path | None, school_name: str | None = None,
    card_format: str | dict[str, str] = "hex", create_school: bool = False, timezone: str = registry.DEFAULT_ZONE,
) -> tuple[importer.ImportResult, roster.RosterChange | None]:
    """Import the files and publish the new roster. The rows (and the school, when ``create_school``
    makes it) and the roster version commit in one transaction: any error stores nothing."""
    engine = open_db(settings)
    try:
        with Session(engine) as session:
            session.info["actor"] = "cli:import"
            try:
                result = importer.import_roster(
                    session, school=school, students=students, guardians=guardians, school_name=school_name,
                    card_format=card_format, create_school=create_school, timezone=timezone, commit=False,
                )
                change = roster.refresh(session, registry.get_school(session, school))  # commits
            except BaseException:
                session.rollback()
                raise
    finally:
        engine.dispose()
    publish_change(settings, change)
    return result, change


def central_key(settings: Settings) -> str:
    """Central's public key (64 hex digits), which every kiosk is given with its secret at registration."""
    return keys.public_hex(settings.signing_key_file)


def create_school(settings: Settings, *, code: str, name: str, timezone: str = registry.DEFAULT_ZONE) -> dict:
    """``central create-school``: with ``import --create-school``, the only way a school comes to be."""
    engine = open_db(settings)
    try:
        with Session(engine) as session:
            session.info["actor"] = "cli:create-school"
            school = registry.create_school(session, actor="cli:create-school", code=code, name=name, timezone=timezone)
            return {"school": school.code, "name": school.name, "timezone": school.timezone}
    finally:
        engine.dispose()


def register_kiosk(settings: Settings, *, school: str, kiosk: str, secret: str | None = None) -> str:
    """Register a kiosk of an existing school (``central.core.errors.Missing`` otherwise); audited."""
    engine = open_db(settings)
    try:
        with Session(engine) as session:
            session.info["actor"] = "cli:register-kiosk"
            try:
                found = registry.get_school(session, school)
            except Missing:
                raise Missing("school_unknown", school=school) from None  # says how to create it
            _, secret = services.register_kiosk(session, school=found, kiosk=kiosk, secret=secret)
    finally:
        engine.dispose()
    return secret


def create_user(
    settings: Settings,
    *,
    username: str,
    password: str,
    role: str,
    school: str | None = None,
    guardian_id: int | None = None,
    staff_id: int | None = None,
) -> dict:
    """Create an account from the command line (the first district or school admin, say); audited as ``cli``."""
    from central.accounts import access as accounts
    from central.accounts import users
    engine = open_db(settings)
    try:
        with Session(engine) as session:
            user = users.create_user(
                session,
                actor=accounts.CLI,
                username=username,
                password=password,
                role=role,
                school=school,
                guardian_id=guardian_id,
                staff_id=staff_id,
            )
            return {"id": user.id, "username": user.username, "role": user.role, "school": school}
    finally:
        engine.dispose()


def verify_audit(settings: Settings):
    """Walk the audit log's hash chain; the verdict names the first row that does not fit."""
    from central.core import audit

    engine = open_db(settings)
    try:
        with Session(engine) as session:
            return audit.verify(session)
    finally:
        engine.dispose()


def verify_ledger(settings: Settings):
    """Walk each school's ledger chain (central/billing/ledger.py); the verdict names each chain's first bad entry."""
    from central.billing import ledger

    engine = open_db(settings)
    try:
        with Session(engine) as session:
            return ledger.verify(session)
    finally:
        engine.dispose()


def broker_logins(settings: Settings, **users: str) -> Logins:
    """Who may log in to the embedded broker: central, with the login in ``settings.mqtt_url``, any
    further ``users`` (name=password), and every kiosk registered in central's database.

    Raises MqttError when ``settings.mqtt_url`` names no login: the broker takes no anonymous clients.
    """
    address = BrokerAddress.parse(settings.mqtt_url)
    if not address.username or not address.password:
        raise MqttError(
            f"SCHOOLGATE_MQTT_URL {address} names no login: the embedded broker takes none but named ones "
            "(mqtt://central:PASSWORD@host:port)"
        )
    engine = None
    lock = threading.Lock()

    def kiosk_secret(school: str, kiosk: str) -> str | None:
        nonlocal engine
        with lock:
            if engine is None:
                engine = make_engine(settings.sqlalchemy_url)
        stmt = select(Kiosk.secret).join(School, Kiosk.school_id == School.id).where(School.code == school, Kiosk.code == kiosk)
        try:
            with Session(engine) as session:
                return session.exec(stmt).first()
        except sa.exc.OperationalError:  # central has not made its tables yet: nobody is registered
            return None

    return Logins({address.username: address.password, **users}, kiosk_secret)


def kiosk_logins(settings: Settings) -> list[tuple[str, str, str]]:
    """(school, kiosk, secret) of every registered kiosk, for the broker's password file and ACL."""
    engine = open_db(settings)
    try:
        with Session(engine) as session:
            rows = session.exec(select(School.code, Kiosk.code, Kiosk.secret).join(School, Kiosk.school_id == School.id))
            return sorted(tuple(r) for r in rows)
    finally:
        engine.dispose()


def reconcile(settings: Settings, *, school: str, day) -> dict:
    """``schoolgate central reconcile``: one school day, every session (central/reconciliation/daily.py)."""
    from central.reconciliation import daily

    engine = open_db(settings)
    try:
        with Session(engine) as session:
            return daily.reconcile_day(session, school=registry.get_school(session, school), day=day)
    finally:
        engine.dispose()


def bill(settings: Settings, *, school: str, month: str, issue: bool = False):
    """``schoolgate central bill``: the month's statements of one school (central/billing/statements.py)."""
    from central.accounts.access import CLI
    from central.billing import rules, statements

    engine = open_db(settings)
    try:
        with Session(engine) as session:
            session.info["actor"] = CLI
            subsidy = rules.Subsidy(per_child_month_fen=settings.subsidy_per_child_month_fen,
                                    per_period_fen=settings.subsidy_per_period_fen)
            return statements.bill_month(session, school=registry.get_school(session, school),
                                         month=statements.Month.parse(month), cap_fen=settings.fee_cap_fen,
                                         subsidy=subsidy, actor=CLI, issue=issue)
    finally:
        engine.dispose()


def annual_report(settings: Settings, *, school: str, year: int, out: str | None = None, lang: str = "zh_CN"):
    """``schoolgate central report``: the school's annual report (P7.6), and its XLSX or PDF at ``out``."""
    from central.billing import documents
    from central.reconciliation import annual

    engine = open_db(settings)
    try:
        with Session(engine) as session:
            report = annual.annual_report(session, school=registry.get_school(session, school), year=year)
    finally:
        engine.dispose()
    if out is not None:
        title, header, rows = annual.report_rows(report)
        if out.endswith(".pdf"):
            data = documents.table_pdf(title, header, rows, locale=lang, font=documents.settings_font(settings))
        else:
            data = documents.table_xlsx(title, header, rows, locale=lang)
        with open(out, "wb") as f:
            f.write(data)
    return report


def pay_staff(settings: Settings, *, school: str, month: str, fee_income_fen: int | None = None,
              subsidy_fen: int | None = None):
    """``schoolgate central pay-staff``: the month's staff pay run (central/billing/staffpay.py), stored."""
    from central.billing import staffpay

    engine = open_db(settings)
    try:
        with Session(engine) as session:
            return staffpay.run_pay(
                session, school=registry.get_school(session, school), month=month, fee_income_fen=fee_income_fen,
                subsidy_fen=subsidy_fen, actor="cli:pay-staff", period_minutes=settings.period_minutes,
            )
    finally:
        engine.dispose()


def backup_database(settings: Settings, *, out: Path) -> dict:
    """An online backup of central's SQLite database into ``out`` (central/core/backup.py), safe while central runs."""
    from central.core import backup

    return backup.backup(settings.sqlalchemy_url, out)


def restore_database(settings: Settings, *, source: Path, force: bool = False) -> dict:
    """Write a backup into central's SQLite database, then bring its schema to the newest migration
    (a backup made by an older release is upgraded as an old database would be)."""
    from central.core import backup

    done = backup.restore(settings.sqlalchemy_url, source, force=force)
    open_db(settings).dispose()
    return done
