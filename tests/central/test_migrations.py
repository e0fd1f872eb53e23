"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.script import ScriptDirectory
from alembic.migration import MigrationContext
from sgtest import fresh_postgres_database
from sqlmodel import SQLModel

import central.accounts  # noqa: F401 - tables outside central.models
import central.models  # noqa: F401
import central.pickup  # noqa: F401
from central.core.db import alembic_config, make_engine, migrate


def drift(url: str) -> list:
    engine = make_engine(url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()


def test_sqlite_schema_matches_the_models(tmp_path):
    assert drift(f"sqlite:///{tmp_path / 'm.sqlite3'}") == []


def test_postgres_schema_matches_the_models():
    with fresh_postgres_database() as url:
        assert drift(url) == []


def test_there_is_exactly_one_migration_head(tmp_path):
    """Parallel branches of migrations are merged before they land: `upgrade head` has one target."""
    engine = make_engine(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    try:
        heads = ScriptDirectory.from_config(alembic_config(engine)).get_heads()
    finally:
        engine.dispose()
    assert len(heads) == 1, heads
