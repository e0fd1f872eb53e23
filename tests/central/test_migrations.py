"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sgtest import fresh_postgres_database
from sqlmodel import Session, SQLModel

import central.accounts.models  # noqa: F401 - every domain's tables
import central.core.audit  # noqa: F401
import central.kiosks.models  # noqa: F401
import central.pickup.models  # noqa: F401
import central.programme.models  # noqa: F401
import central.schools.models  # noqa: F401
from central.core.db import alembic_config, make_engine, migrate
from central.schools.models import Guardian, GuardianLink, School, SchoolClass, Student


def drift(url: str) -> list:
    engine = make_engine(url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()


def check_drift(url: str) -> dict:
    """Named CHECK constraints per table, where the models and the migrated database differ.
    (Alembic's comparison leaves CHECK constraints out.)"""
    engine = make_engine(url)
    try:
        migrate(engine)
        found = sa.inspect(engine)
        out = {}
        for table in SQLModel.metadata.sorted_tables:
            model = {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint) and c.name}
            stored = {c["name"] for c in found.get_check_constraints(table.name) if c["name"]}
            if model != stored:
                out[table.name] = {"models": sorted(model), "database": sorted(stored)}
        return out
    finally:
        engine.dispose()


def test_sqlite_schema_matches_the_models(tmp_path):
    assert drift(f"sqlite:///{tmp_path / 'm.sqlite3'}") == []
    assert check_drift(f"sqlite:///{tmp_path / 'c.sqlite3'}") == {}


def test_postgres_schema_matches_the_models():
    with fresh_postgres_database() as url:
        assert drift(url) == []
    with fresh_postgres_database() as url:
        assert check_drift(url) == {}


def test_there_is_exactly_one_migration_head(tmp_path):
    """Parallel branches of migrations are merged before they land: `upgrade head` has one target."""
    engine = make_engine(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    try:
        heads = ScriptDirectory.from_config(alembic_config(engine)).get_heads()
    finally:
        engine.dispose()
    assert len(heads) == 1, heads


@contextmanager
def _database(backend: str, tmp_path):
    if backend == "postgres":
        with fresh_postgres_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'link.sqlite3'}"


def _to(engine, revision: str, *, down: bool = False) -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_0007_clears_pickup_on_barred_links_and_then_the_database_refuses_both(backend, tmp_path):
    """P9.4: a link both barred and allowed to pick up is fixed by the migration, then impossible."""
    with _database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            _to(engine, "0006_custody")
            with Session(engine) as session:
                school = School(code="s1", name="示范小学")
                session.add(school)
                session.flush()
                klass = SchoolClass(school_id=school.id, grade="三年级", name="1班")
                session.add(klass)
                session.flush()
                child = Student(school_id=school.id, class_id=klass.id, student_no="S1", name="学生")
                people = [Guardian(school_id=school.id, name=f"家长{i}") for i in range(4)]
                session.add_all([child, *people])
                session.commit()
                child_id, g = child.id, [p.id for p in people]
            link = GuardianLink.__table__
            row = {"student_id": child_id, "relation": ""}
            with engine.begin() as conn:  # what an old version, or a hand-made edit, could leave behind
                conn.execute(sa.insert(link), [
                    {**row, "guardian_id": g[0], "barred": True, "may_pick_up": True},
                    {**row, "guardian_id": g[1], "barred": False, "may_pick_up": True},
                    {**row, "guardian_id": g[2], "barred": True, "may_pick_up": False},
                ])
            _to(engine, "head")
            with engine.connect() as conn:
                stored = {gid: (barred, may) for gid, barred, may in conn.execute(
                    sa.select(link.c.guardian_id, link.c.barred, link.c.may_pick_up))}
            assert stored == {g[0]: (True, False), g[1]: (False, True), g[2]: (True, False)}
            both = {**row, "guardian_id": g[3], "barred": True, "may_pick_up": True}
            with pytest.raises(sa.exc.IntegrityError, match="guardian_link_barred_no_pickup|CHECK constraint failed"):
                with engine.begin() as conn:
                    conn.execute(sa.insert(link), [both])
            with pytest.raises(sa.exc.IntegrityError):
                with engine.begin() as conn:
                    conn.execute(sa.update(link).where(link.c.guardian_id == g[1]).values(barred=True))
            # And back down: the constraint goes, the table stays.
            _to(engine, "0006_custody", down=True)
            with engine.begin() as conn:
                conn.execute(sa.insert(link), [both])
        finally:
            engine.dispose()
