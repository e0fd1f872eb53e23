"""Backing up and restoring central's SQLite database with SQLite's online backup API.

The backup API copies the database page by page under SQLite's own locks, so it is safe while
central runs: the copy is one committed state (a transaction still open is not in it), and central's
writers wait at most for one step of the copy. Copying the file with ``cp`` is not safe: with WAL the
newest commits live in ``-wal`` until a checkpoint, and a copy taken mid-write can be torn.

A restore writes into the target through the same API, so a process that still has the target open
sees the restored content rather than a replaced file under its feet; central should still be
stopped for it (docs/operations.md). PostgreSQL has its own tools for both (``pg_dump``/``pg_restore``,
documented there); these functions refuse its URLs.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from central.core.errors import Conflict, Invalid

PAGES_PER_STEP = 1024  # pages copied between the moments other connections may write (4 MiB at 4 KiB pages)


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///…`` URL; ``Invalid`` for any other database (PostgreSQL: pg_dump)."""
    if not url.startswith("sqlite"):
        raise Invalid("backup_sqlite_only")
    path = url.split("///", 1)[-1]
    if not path or path == ":memory:":
        raise Invalid("backup_sqlite_only")
    return Path(path)


def backup(url: str, out: Path) -> dict:
    """Copy the database at ``url`` into ``out`` (a new file, mode 0600), checked before it is
    given its name: a failed backup never leaves a file that looks like one."""
    source_path = sqlite_path(url)
    if not source_path.is_file():
        raise Invalid("backup_no_database", path=str(source_path))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    # Children's names, phones and cards: readable by the owner alone, as the database itself.
    os.close(os.open(partial, os.O_CREAT | os.O_WRONLY, 0o600))
    source = sqlite3.connect(source_path, timeout=30)
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target, pages=PAGES_PER_STEP)
            # A backup read in rollback-journal mode needs no -wal beside it to be whole.
            target.execute("PRAGMA journal_mode=DELETE")
            tables = _check(target, partial)
        finally:
            target.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    with open(partial, "rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, out)
    return {"database": str(source_path), "out": str(out), "bytes": out.stat().st_size, "tables": tables}


def restore(url: str, source: Path, *, force: bool = False) -> dict:
    """Write a backup into the database at ``url``. One that already holds tables is overwritten only
    with ``force`` (``Conflict`` otherwise): a restore over the live database is a choice, not a slip."""
    target_path = sqlite_path(url)
    if not source.is_file():
        raise Invalid("backup_no_database", path=str(source))
    backup_db = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = _check(backup_db, source)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        if not target_path.exists():
            os.close(os.open(target_path, os.O_CREAT | os.O_WRONLY, 0o600))
        target = sqlite3.connect(target_path, timeout=30)
        try:
            held = target.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            if held and not force:
                raise Conflict("restore_target_not_empty", path=str(target_path))
            backup_db.backup(target, pages=PAGES_PER_STEP)
            target.execute("PRAGMA journal_mode=WAL")  # as central opens it (central/core/db.py)
        finally:
            target.close()
    finally:
        backup_db.close()
    return {"database": str(target_path), "from": str(source), "tables": tables}


def _check(db: sqlite3.Connection, path: Path) -> int:
    """The number of tables of a whole central database; ``Invalid`` for a damaged file or another database."""
    try:
        verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise Invalid("backup_unreadable", path=str(path), problem=str(exc)) from None
    if verdict != "ok":
        raise Invalid("backup_unreadable", path=str(path), problem=verdict)
    if "alembic_version" not in names:
        raise Invalid("backup_unreadable", path=str(path), problem="no alembic_version table: not a schoolgate central database")
    return len(names)
