"""The audit log: every change appended and hash-chained; an edited row is found by ``verify-audit``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from sqlmodel import select

from central.core import audit
from central.core.audit import AuditLog


def _verify_cli(world) -> tuple[int, dict]:
    """The real command, in its own process, on the test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}
    env["SCHOOLGATE_DATABASE_URL"] = world.settings.database_url
    done = subprocess.run(
        [sys.executable, "-m", "schoolgate", "central", "verify-audit"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_changes_are_chained_with_who_before_and_after(world):
    r = world.client.post(
        "/api/v1/users",
        json={"username": "guard2", "password": "long enough password", "role": "guard", "school": "s1"},
        headers=world.as_("admin1"),
    )
    world.client.patch(f"/api/v1/users/{r.json()['id']}", json={"active": False}, headers=world.as_("admin1"))
    everything = world.client.get("/api/v1/audit", params={"limit": 1000}, headers=world.as_("admin1")).json()
    rows = [row for row in everything if row["actor"] == "user:admin1"]
    assert [(row["actor"], row["action"]) for row in rows] == [("user:admin1", "user.create"), ("user:admin1", "user.update")]
    assert rows[1]["before"]["active"] is True and rows[1]["after"]["active"] is False
    assert "password_hash" not in rows[0]["after"]
    assert rows[1]["prev"] == rows[0]["hash"]
    # Another school's admin sees only their school's rows (their own account's creation); the district all.
    theirs = world.client.get("/api/v1/audit", params={"limit": 1000}, headers=world.as_("admin2")).json()
    assert {row["school_id"] for row in theirs} == {world.ids["s2"]}
    assert [row["after"]["username"] for row in theirs if row["action"] == "user.create"] == ["admin2"]
    every = world.client.get("/api/v1/audit", params={"limit": 1000}, headers=world.as_("district")).json()
    assert len([row for row in every if row["action"].startswith("user.")]) == 12
    # The seeded service records were audited too, by the hook, in the name of whoever made them.
    assert {"student.create", "interest_group.create", "staff.create"} <= {row["action"] for row in every}
    with world.session() as session:
        assert audit.verify(session).ok


def test_a_row_rolls_back_with_the_change_it_records(world):
    with world.session() as session:
        before = audit.verify(session).rows
        audit.record(session, actor="test", action="x.change", entity="x:1", after={"a": 1})
        session.rollback()
        assert audit.verify(session).rows == before


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_the_database_refuses_edits(world):
    with world.session() as session, pytest.raises(sa.exc.DatabaseError, match="append-only"):
        session.execute(sa.update(AuditLog).where(AuditLog.seq == 1).values(actor="someone else"))


def _tamper(world, statement: str, **params: object) -> None:
    # Whoever edits the log must first drop the triggers; the chain still tells.
    with world.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("DROP TRIGGER audit_log_no_change ON audit_log"))
        else:
            conn.execute(sa.text("DROP TRIGGER audit_log_no_update"))
            conn.execute(sa.text("DROP TRIGGER audit_log_no_delete"))
        conn.execute(sa.text(statement), params)


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_verify_audit_finds_an_edited_row(world):
    with world.session() as session:
        rows = len(session.exec(select(AuditLog)).all())
        # A row in the middle of the chain that records what something became.
        row = session.exec(select(AuditLog).where(AuditLog.seq >= 3, AuditLog.after.is_not(None)).order_by(AuditLog.seq)).first()
    code, verdict = _verify_cli(world)
    assert code == 0 and verdict["ok"] and verdict["rows"] == rows >= 10
    edited = json.loads(row.after) | {"role": "district"}
    _tamper(world, "UPDATE audit_log SET after = :after WHERE seq = :seq", after=json.dumps(edited, ensure_ascii=False), seq=row.seq)
    code, verdict = _verify_cli(world)
    assert code == 1 and not verdict["ok"] and verdict["bad_seq"] == row.seq and "edited" in verdict["reason"]


def test_verify_audit_finds_a_deleted_row(world):
    _tamper(world, "DELETE FROM audit_log WHERE seq = 5")
    with world.session() as session:
        verdict = audit.verify(session)
    assert not verdict.ok and verdict.bad_seq == 6
