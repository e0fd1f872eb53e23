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
import central.billing.models  # noqa: F401
import central.core.audit  # noqa: F401
import central.kiosks.models  # noqa: F401
import central.notifications.models  # noqa: F401
import central.pickup.models  # noqa: F401
import central.programme.models  # noqa: F401
import central.reconciliation.models  # noqa: F401
import central.safety.models  # noqa: F401
import central.schools.models  # noqa: F401
from central.core.db import alembic_config, make_engine, migrate
from central.kiosks import partitions
from central.schools.models import Guardian, GuardianLink, School, SchoolClass, Student


def drift(url: str) -> list:
    engine = make_engine(url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": _not_a_partition})
            return [d for d in compare_metadata(context, SQLModel.metadata) if not _partition_key(d)]
    finally:
        engine.dispose()


def _not_a_partition(name, type_, _parents) -> bool:
    """The months of PostgreSQL's partitioned tables are tables of their own: the models describe the parent."""
    return not (type_ == "table" and partitions.is_partition_name(name))


def _partition_key(diff) -> bool:
    """A model's unique key held with the partition column added on a partitioned table (and only that)."""
    if not (isinstance(diff, tuple) and diff[0] in ("add_constraint", "remove_constraint")):
        return False
    constraint = diff[1]
    if not isinstance(constraint, sa.UniqueConstraint) or constraint.table.name not in partitions.PG_UNIQUE:
        return False
    keys = partitions.PG_UNIQUE[constraint.table.name]
    columns = tuple(c.name for c in constraint.columns)
    return columns in keys if diff[0] == "add_constraint" else columns in keys.values()


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


def _insert(conn, table: str, **values) -> int:
    """One row, into the table as it is at the revision the database is at; its id."""
    columns = ", ".join(values)
    marks = ", ".join(f":{name}" for name in values)
    conn.execute(sa.text(f"INSERT INTO {table} ({columns}) VALUES ({marks})"), values)
    return conn.execute(sa.text(f"SELECT max(id) FROM {table}")).scalar_one()


def _people_at_an_old_revision(conn, *, guardians: int, code: str = "s1") -> tuple[int, int, list[int]]:
    school = _insert(conn, "school", code=code, name="示范小学", timezone="Asia/Shanghai", roster_version=0, roster_body="")
    klass = _insert(conn, "school_class", school_id=school, grade="三年级", name="1班")
    child = _insert(conn, "student", school_id=school, class_id=klass, student_no="S1", name="学生",
                    poverty_registered=False, may_leave_alone=False)
    people = [_insert(conn, "guardian", school_id=school, name=f"家长{i}", phone="") for i in range(guardians)]
    return school, child, people


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
            # Rows written as the schema was then (the models describe the newest tables).
            with engine.begin() as conn:
                school_id, child_id, g = _people_at_an_old_revision(conn, guardians=4)
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


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_0009_places_the_events_already_stored_in_each_schools_feed_in_the_order_received(backend, tmp_path):
    with _database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            _to(engine, "0008_staff_gate_guard")
            with engine.begin() as conn:
                s1, _, _ = _people_at_an_old_revision(conn, guardians=0, code="s1")
                s2, _, _ = _people_at_an_old_revision(conn, guardians=0, code="s2")
                at = "2030-09-02 08:00:00"
                gates = {name: _insert(conn, "kiosk", school_id=school, code=name, secret="ab" * 32, acked_seq=0,
                                       last_hash="", created_at=at) for name, school in (("a", s1), ("b", s1), ("c", s2))}
                # (event id, kiosk, seq, received): gate b's first event reached central before gate a's.
                stored = [("e1", "a", 1, "08:00:05"), ("e2", "b", 1, "08:00:01"), ("e3", "a", 2, "08:00:09"),
                          ("e4", "c", 1, "08:00:02"), ("e5", "b", 2, "08:00:05")]
                for event_id, gate, seq, received in stored:
                    school = s2 if gate == "c" else s1
                    _insert_event(conn, event_id, school, gates[gate], seq, f"2030-09-02 {received}")
            _to(engine, "head")
            with engine.connect() as conn:
                places = dict(conn.execute(sa.text("SELECT id, feed_pos FROM event")).all())
                heads = dict(conn.execute(sa.text("SELECT code, feed_head FROM school")).all())
            # Same time (e1, e5 at 08:00:05): the kiosk's id, then seq, decide.
            assert places == {"e2": 1, "e1": 2, "e5": 3, "e3": 4, "e4": 1}
            assert heads == {"s1": 4, "s2": 1}
            with pytest.raises(sa.exc.IntegrityError):  # one place, one event
                with engine.begin() as conn:
                    conn.execute(sa.text("UPDATE event SET feed_pos = 1 WHERE id = 'e1'"))
            _to(engine, "0008_staff_gate_guard", down=True)
        finally:
            engine.dispose()


def _insert_event(conn, event_id: str, school: int, kiosk: int, seq: int, received: str) -> None:
    conn.execute(sa.text(
        "INSERT INTO event (id, school_id, kiosk_id, seq, kind, at, received_at, prev, hash, sig) "
        "VALUES (:id, :school, :kiosk, :seq, 'checkin', :at, :at, '', '', '')"
    ), {"id": event_id, "school": school, "kiosk": kiosk, "seq": seq, "at": received})
