"""Backup and restore: a backup taken while central runs, restored into a new central database, keeps
the audit chain and every school's ledger chain intact (SQLite's online backup API; pg_dump/pg_restore
for PostgreSQL, as docs/operations.md says)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa
from sgtest import fresh_postgres_database, require
from sqlmodel import Session, select

from central.billing import ledger
from central.billing.ledger import Line
from central.billing.models import LedgerEntry
from central.core import audit, backup
from central.core.db import make_engine, migrate
from central.core.errors import Conflict, Invalid
from central.schools import registry

BILLED = [Line("receivable", debit_fen=8_000), Line("fee_income", credit_fen=8_000)]
PAID = [Line("bank", debit_fen=8_000), Line("receivable", credit_fen=8_000)]


def with_history(engine) -> None:
    """Audited changes (schools, a kiosk) and a ledger of two schools, as central would have made them."""
    with Session(engine) as session:
        for code in ("s1", "s2"):
            registry.ensure_school(session, code=code, name=f"学校{code}")
        session.commit()
        for code, ref in (("s1", "SG203009-000001"), ("s2", "SG203009-000002"), ("s1", "SG203009-000003")):
            school = registry.get_school(session, code)
            ledger.post(session, school=school, kind="statement", ref=ref, lines=BILLED, actor="finance1")
            ledger.post(session, school=school, kind="payment", ref=ref, lines=PAID, actor="finance1")
        session.commit()


def chains(engine) -> tuple[audit.Verdict, ledger.Verdict, int]:
    with Session(engine) as session:
        return audit.verify(session), ledger.verify(session), len(session.exec(select(LedgerEntry)).all())


@pytest.fixture
def central_db(tmp_path, migrated_db):
    shutil.copy(migrated_db, tmp_path / "central.sqlite3")
    url = f"sqlite:///{tmp_path / 'central.sqlite3'}"
    engine = make_engine(url)
    with_history(engine)
    yield url, engine
    engine.dispose()


def test_a_backup_taken_while_central_writes_restores_into_a_new_central_with_both_chains_intact(tmp_path, central_db):
    url, engine = central_db
    before_audit, before_ledger, entries = chains(engine)
    assert before_audit.ok and before_ledger.ok and entries == 6
    assert before_audit.rows > 0
    # Central is running: another connection holds a write transaction open. The backup waits for
    # nobody and holds only what was committed.
    with engine.connect() as busy:
        busy.execute(sa.text("BEGIN IMMEDIATE"))
        busy.execute(sa.text("UPDATE school SET name = 'uncommitted' WHERE code = 's1'"))
        done = backup.backup(url, tmp_path / "out" / "central-backup.sqlite3")
        busy.execute(sa.text("ROLLBACK"))
    out = tmp_path / "out" / "central-backup.sqlite3"
    assert done["out"] == str(out) and out.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "out" / "central-backup.sqlite3.partial").exists()

    new_url = f"sqlite:///{tmp_path / 'new' / 'central.sqlite3'}"
    backup.restore(new_url, out)
    restored = make_engine(new_url)
    try:
        migrate(restored)  # as `central restore` does: nothing to do at the same schema
        after_audit, after_ledger, restored_entries = chains(restored)
        assert after_audit.ok and after_ledger.ok
        assert (after_audit.rows, after_audit.head) == (before_audit.rows, before_audit.head)
        assert [vars(h) for h in after_ledger.heads] == [vars(h) for h in before_ledger.heads]
        assert restored_entries == 6
        with Session(restored) as session:
            assert session.exec(sa.text("SELECT name FROM school WHERE code = 's1'")).one()[0] == "学校s1"
            # The chains are checked for real: one changed row in the restored copy is found.
            session.exec(sa.text("DROP TRIGGER audit_log_no_update"))
            session.exec(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1"))
            session.commit()
        assert not chains(restored)[0].ok
    finally:
        restored.dispose()


def test_restore_refuses_a_database_with_data_unless_forced_and_a_file_that_is_not_a_backup(tmp_path, central_db):
    url, _engine = central_db
    out = tmp_path / "b.sqlite3"
    backup.backup(url, out)
    with pytest.raises(Conflict):
        backup.restore(url, out)
    backup.restore(url, out, force=True)
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(Invalid):
        backup.restore(f"sqlite:///{tmp_path / 'x.sqlite3'}", junk)
    with closing(sqlite3.connect(tmp_path / "other.sqlite3")) as other:
        other.execute("CREATE TABLE t (x)")
    with pytest.raises(Invalid) as refused:
        backup.restore(f"sqlite:///{tmp_path / 'y.sqlite3'}", tmp_path / "other.sqlite3")
    assert "alembic_version" in refused.value.text("en")
    with pytest.raises(Invalid) as pg:
        backup.backup("postgresql+psycopg://postgres@127.0.0.1/test", out)
    assert "pg_dump" in pg.value.text("en")


def test_the_commands_back_up_and_restore_and_the_restored_central_verifies(tmp_path, central_db):
    url, _engine = central_db
    env = {"PATH": "/usr/bin:/bin", "SCHOOLGATE_DATABASE_URL": url, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def sg(*args: str, database: str = url) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "schoolgate", "--lang", "en", *args], capture_output=True, text=True,
                              timeout=120, env={**env, "SCHOOLGATE_DATABASE_URL": database})

    made = sg("central", "backup", "--out", str(tmp_path / "nightly.sqlite3"))
    assert made.returncode == 0, made.stderr
    assert f"Backed up {tmp_path / 'central.sqlite3'} to {tmp_path / 'nightly.sqlite3'}" in made.stderr
    new = f"sqlite:///{tmp_path / 'restored.sqlite3'}"
    back = sg("central", "restore", "--from", str(tmp_path / "nightly.sqlite3"), database=new)
    assert back.returncode == 0, back.stderr
    again = sg("central", "restore", "--from", str(tmp_path / "nightly.sqlite3"), database=new)
    assert again.returncode == 2 and "--force" in again.stderr
    audit_ok = sg("central", "verify-audit", database=new)
    assert audit_ok.returncode == 0 and '"ok": true' in audit_ok.stdout
    ledger_ok = sg("central", "ledger", "verify", "--json", database=new)
    assert ledger_ok.returncode == 0 and '"entries": 6' in ledger_ok.stdout
    refused = sg("central", "backup", "--out", str(tmp_path / "pg.dump"), database="postgresql://postgres@127.0.0.1/test")
    assert refused.returncode == 2 and "pg_dump" in refused.stderr


@pytest.mark.skipif(not (shutil.which("pg_dump") and shutil.which("pg_restore")), reason="needs pg_dump and pg_restore")
def test_pg_dump_and_pg_restore_into_a_new_database_keep_both_chains(tmp_path):
    """The documented PostgreSQL procedure (docs/operations.md), run as written."""
    require("postgres")
    with fresh_postgres_database(migrated=True) as source_url, fresh_postgres_database() as target_url:
        engine = make_engine(source_url)
        try:
            with_history(engine)
            before_audit, before_ledger, entries = chains(engine)
        finally:
            engine.dispose()
        dump = tmp_path / "central.dump"
        subprocess.run(["pg_dump", "--format=custom", "--no-owner", f"--file={dump}", source_url], check=True, timeout=120)
        subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={target_url}", str(dump)], check=True, timeout=120)
        restored = make_engine(target_url)
        try:
            migrate(restored)
            after_audit, after_ledger, restored_entries = chains(restored)
        finally:
            restored.dispose()
    assert before_audit.ok and before_ledger.ok and entries == 6
    assert after_audit.ok and after_ledger.ok and restored_entries == 6
    assert (after_audit.rows, after_audit.head) == (before_audit.rows, before_audit.head)
    assert [vars(h) for h in after_ledger.heads] == [vars(h) for h in before_ledger.heads]
