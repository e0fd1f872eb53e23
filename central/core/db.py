"""The database engine, migrations and the request-scoped session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.compiler import compiles
from sqlmodel import Session

from central.core import clock

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> sa.Engine:
    import central.core.audit  # noqa: F401 - registers the hooks that audit every change made through a Session

    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            _private_file(Path(path))
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            dbapi_conn.create_function("sg_local_date", 2, _sqlite_local_date, deterministic=True)

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


class local_date(sa.sql.functions.FunctionElement):  # noqa: N801 - used like sa.func's functions
    """SQL: the date of a stored time in a zone, ``local_date("Asia/Shanghai", ChildAlert.at)``, as
    ``clock.to_local(at, school).date()`` gives it: a school's day worked out by the database. PostgreSQL
    reads its own copy of the IANA zones; SQLite has none, and calls the function ``make_engine`` gives it."""

    type = sa.Date()
    inherit_cache = True


@compiles(local_date)
def _local_date_sqlite(element, compiler, **kw) -> str:
    return f"sg_local_date({compiler.process(element.clauses, **kw)})"


@compiles(local_date, "postgresql")
def _local_date_postgresql(element, compiler, **kw) -> str:
    zone, at = element.clauses
    return f"CAST(timezone({compiler.process(zone, **kw)}, {compiler.process(at, **kw)}) AS DATE)"


def _sqlite_local_date(zone: str, at: str | None) -> str | None:
    """``local_date`` on SQLite: a stored time (naive UTC text) to its date in ``zone``, as SQLite stores a date."""
    if at is None:
        return None
    return clock.as_utc(datetime.fromisoformat(at)).astimezone(ZoneInfo(zone)).date().isoformat()


def _private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner alone (0600), or tighten one that is not.

    It holds names, phones, photos and card UIDs of children. SQLite gives its ``-wal`` and ``-shm``
    files the database file's mode, so they follow.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


def alembic_config(engine: sa.Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest migration (``alembic upgrade head``: there is exactly one)."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def sessions(engine: sa.Engine):
    def get_db() -> Iterator[Session]:
        with Session(engine) as session:
            yield session

    return get_db
