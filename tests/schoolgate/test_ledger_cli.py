"""`schoolgate central ledger verify` as an operator runs it: its own process, on a real database file."""

from __future__ import annotations

import json
import subprocess
import sys

import sqlalchemy as sa
from sqlmodel import Session
from typer.testing import CliRunner

from central.billing import ledger
from central.billing.ledger import Line
from central.core.db import make_engine, migrate
from central.schools import registry
from schoolgate.cli import app

from .test_cli import clean_env


def verify(url: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = clean_env(SCHOOLGATE_DATABASE_URL=url, SCHOOLGATE_SIGNING_KEY_FILE=str(tmp_path / "k.pem"))
    return subprocess.run([sys.executable, "-m", "schoolgate", *args[:2], "central", "ledger", "verify", *args[2:]],
                          capture_output=True, text=True, env=env, timeout=60)


def test_verify_says_how_many_entries_are_intact_and_names_the_broken_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as session:
        s1 = registry.ensure_school(session, code="s1")
        s2 = registry.ensure_school(session, code="s2")
        for school in (s1, s1, s2):
            ledger.post(session, school=school, kind="statement", ref="SG203009-000001", actor="t",
                        lines=[Line("receivable", 8_000), Line("fee_income", credit_fen=8_000)])
        session.commit()
        second = session.execute(sa.text("SELECT id, hash FROM ledger_entry WHERE seq = 2")).one()
    done = verify(url, tmp_path, "--lang", "en")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["the ledger is intact: 3 entries in 2 schools", f"  s1: 2 entries, head {second.hash}",
                                        done.stdout.splitlines()[2]]
    assert done.stdout.splitlines()[2].startswith("  s2: 1 entries, head ")

    with engine.begin() as conn:  # past the triggers, as someone editing the file would be
        conn.execute(sa.text("DROP TRIGGER ledger_line_no_update"))
        conn.execute(sa.text("UPDATE ledger_line SET debit_fen = 800 WHERE entry_id = :id AND debit_fen > 0"), {"id": second.id})
        conn.execute(sa.text("UPDATE ledger_line SET credit_fen = 800 WHERE entry_id = :id AND credit_fen > 0"), {"id": second.id})
    engine.dispose()
    broken = verify(url, tmp_path, "--lang", "en")
    assert broken.returncode == 1
    assert broken.stdout == (f"the ledger is broken at school s1, entry 2 (id {second.id}): entry 2 does not match its hash "
                             "(an amount, an account or a field was edited, or a line removed or added)\n")
    # --json, for programs (in this process: the command's wiring is the same); the reason in the chosen language.
    run = CliRunner().invoke(app, ["--lang", "zh_CN", "central", "ledger", "verify", "--json"],
                             env=clean_env(SCHOOLGATE_DATABASE_URL=url, SCHOOLGATE_SIGNING_KEY_FILE=str(tmp_path / "k.pem")))
    assert run.exit_code == 1
    as_json = json.loads(run.stdout)
    assert (as_json["ok"], as_json["entries"], [(b["school"], b["seq"], b["entry_id"]) for b in as_json["breaks"]]) == (
        False, 2, [("s1", 2, second.id)])
    assert as_json["breaks"][0]["reason"].startswith("第 2 笔分录与其哈希不符")
