"""The event store by month on PostgreSQL: months made ahead, rows in the default partition moved
into the month made for them, retention archiving old months (audited), and no seq stored twice
however the workers race (issue 17). SQLite keeps one table."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sgtest import fresh_postgres_database
from sqlmodel import Session

from central.core.db import make_engine, migrate
from central.kiosks import partitions, services
from central.kiosks.ingest import Ingest
from central.schools import registry
from gateway import protocol

NOW = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
SECRET = "7e" * 32
TOPICS = protocol.Topics("sg/v1")
TOPIC = TOPICS.events("s1", "k1")


@pytest.fixture
def pg():
    with fresh_postgres_database(migrated=True) as url:
        engine = make_engine(url)
        with Session(engine) as session:
            registry.ensure_school(session, code="s1")
            services.register_kiosk(session, school=registry.get_school(session, "s1"), kiosk="k1", secret=SECRET)
        try:
            yield engine
        finally:
            engine.dispose()


def _where(engine, table: str = "event") -> dict[str, int]:
    """Rows of ``table`` by the partition holding them."""
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1")).all())


def _event(kiosk_id: int, seq: int, at: str, **extra) -> dict:
    return {"id": f"e{seq}-{at[:7]}", "school_id": 1, "kiosk_id": kiosk_id, "seq": seq, "kind": "checkin", "at": at,
            "received_at": at, "prev": "", "hash": "", "sig": "", **extra}


def _insert(engine, *rows: dict) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO event (id, school_id, kiosk_id, seq, kind, at, received_at, prev, hash, sig, feed_pos) "
            "VALUES (:id, :school_id, :kiosk_id, :seq, :kind, :at, :received_at, :prev, :hash, :sig, :feed_pos)"
        ), [{"feed_pos": None, **r} for r in rows])


def test_both_tables_are_partitioned_by_month_on_postgresql_and_not_on_sqlite(pg, tmp_path):
    with pg.connect() as conn:
        assert partitions.partitioned(conn, "event") and partitions.partitioned(conn, "safety_incident")
    lite = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(lite)
    with lite.connect() as conn:
        assert not partitions.partitioned(conn)
    assert partitions.ensure(lite, ahead=5, now=NOW) == []
    assert partitions.archive_old(lite, years=1, now=NOW) == []
    lite.dispose()


def test_months_are_made_ahead_once_and_an_event_lands_in_its_month(pg):
    made = partitions.ensure(pg, ahead=2, now=NOW)
    # 2026-12 to 2027-02 of each table, less what the migration made already (its own clock's months)
    for table in ("event", "safety_incident"):
        with pg.connect() as conn:
            have = partitions.months(conn, table)
        assert {datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)} <= set(have)
    assert partitions.ensure(pg, ahead=2, now=NOW) == []  # again: nothing to make
    assert all(partitions.is_partition_name(name) for name in made)
    _insert(pg, _event(1, 1, "2027-01-15 08:00:00+00"), _event(1, 2, "2090-01-01 00:00:00+00"))
    assert _where(pg) == {"event_p202701": 1, "event_default": 1}


def test_a_month_made_after_its_rows_reached_the_default_takes_them_along(pg):
    _insert(pg, _event(1, 1, "2031-05-02 08:00:00+00"), _event(1, 2, "2031-05-30 23:59:59+00"),
            _event(1, 3, "2031-06-01 00:00:00+00"))
    assert _where(pg) == {"event_default": 3}
    with pg.begin() as conn:
        assert partitions.create_month(conn, "event", datetime(2031, 5, 1, tzinfo=UTC)) == "event_p203105"
    assert _where(pg) == {"event_p203105": 2, "event_default": 1}
    with pg.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM event")).scalar() == 3


def test_retention_detaches_months_before_the_previous_school_year_into_archive_tables_and_audits_it(pg):
    for month in (datetime(2025, 7, 1, tzinfo=UTC), datetime(2025, 8, 1, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC)):
        with pg.begin() as conn:
            partitions.create_month(conn, "event", month)
    _insert(pg, _event(1, 1, "2025-07-10 08:00:00+00"), _event(1, 2, "2025-08-31 23:00:00+00"),
            _event(1, 3, "2025-09-01 00:00:00+00"))
    assert partitions.retention_start(NOW, 2) == datetime(2025, 9, 1, tzinfo=UTC)
    assert partitions.retention_start(datetime(2026, 8, 31, tzinfo=UTC), 2) == datetime(2024, 9, 1, tzinfo=UTC)
    done = partitions.archive_old(pg, years=2, now=NOW, actor="cli")
    assert [(a.table, a.month, a.archive, a.rows) for a in done] == [
        ("event", "2025-07", "archive_event_p202507", 1), ("event", "2025-08", "archive_event_p202508", 1),
    ]
    with pg.connect() as conn:
        assert conn.execute(sa.text("SELECT seq FROM event ORDER BY seq")).scalars().all() == [3]
        assert conn.execute(sa.text("SELECT seq FROM archive_event_p202508")).scalars().all() == [2]
        logged = conn.execute(sa.text("SELECT actor, action, entity, before, after FROM audit_log WHERE action = 'partition.archive' ORDER BY seq")).all()
    assert [(a, act, ent, json.loads(b)["partition"], json.loads(af)["archive"]) for a, act, ent, b, af in logged] == [
        ("cli", "partition.archive", "table:event", "event_p202507", "archive_event_p202507"),
        ("cli", "partition.archive", "table:event", "event_p202508", "archive_event_p202508"),
    ]
    assert partitions.archive_old(pg, years=2, now=NOW) == []  # nothing more to move


def test_a_resent_event_collides_and_an_update_cannot_give_two_events_one_seq_or_one_feed_place(pg):
    _insert(pg, _event(1, 1, "2031-05-02 08:00:00+00", feed_pos=1), _event(1, 2, "2031-06-02 08:00:00+00", feed_pos=2))
    with pytest.raises(sa.exc.IntegrityError):  # the same event delivered twice: same at, same partition
        _insert(pg, {**_event(1, 1, "2031-05-02 08:00:00+00"), "id": "other"})
    with pytest.raises(sa.exc.IntegrityError, match="already has an event of seq 1"):
        with pg.begin() as conn:
            conn.execute(sa.text("UPDATE event SET seq = 1 WHERE seq = 2"))
    with pytest.raises(sa.exc.IntegrityError, match="already has an event at feed place 1"):
        with pg.begin() as conn:
            conn.execute(sa.text("UPDATE event SET feed_pos = 1 WHERE seq = 2"))


def _signed(seq: int, prev: str, at: datetime, kiosk: str = "k1", **fields) -> dict:
    return protocol.new_event(school="s1", kiosk=kiosk, seq=seq, prev=prev, at=at, kind="checkin",
                              secret=bytes.fromhex(SECRET), **fields)


def test_two_workers_racing_on_one_kiosk_store_every_seq_once_across_months(pg):
    """The unique key holds ``at``: a kiosk's seq 2 dated another month (its clock was set back)
    would not collide. The compare-and-set on acked_seq keeps it out all the same."""
    partitions.ensure(pg, ahead=1, now=NOW)
    acks: list[dict] = []
    publish = lambda topic, payload: acks.append(json.loads(payload)) if topic.endswith("/ack") else None  # noqa: E731
    first, second = (Ingest(pg, topics=TOPICS, publish=publish) for _ in range(2))
    one = _signed(1, "", NOW)
    two = _signed(2, protocol.event_hash(one), NOW)
    three = _signed(3, protocol.event_hash(two), NOW + timedelta(days=40))
    again = _signed(2, protocol.event_hash(one), NOW + timedelta(days=40))  # seq 2 again, another month
    for worker, event in ((second, one), (first, two), (first, three), (second, again)):
        worker.process([(TOPIC, protocol.canonical_json(event), False)])
    with pg.connect() as conn:
        rows = conn.execute(sa.text("SELECT seq, count(*) FROM event GROUP BY seq ORDER BY seq")).all()
        acked = conn.execute(sa.text("SELECT acked_seq FROM kiosk")).scalar()
        duplicated = conn.execute(sa.text("SELECT count(*) FROM (SELECT kiosk_id, seq FROM event GROUP BY 1, 2 HAVING count(*) > 1) d")).scalar()
    assert [tuple(r) for r in rows] == [(1, 1), (2, 1), (3, 1)] and duplicated == 0
    assert acked == 3 and acks[-1]["upto"] == 3
    assert set(_where(pg)) == {"event_p202612", "event_p202701"}


def test_a_batch_with_one_stale_kiosk_among_fresh_ones_is_stored_again_with_every_seq_once(pg):
    """The kiosks of a batch move on in one statement: one kiosk moved on by another worker fails the
    whole batch (not only that kiosk's row), which is read afresh and stored again."""
    partitions.ensure(pg, ahead=1, now=NOW)
    with Session(pg) as session:
        services.register_kiosk(session, school=registry.get_school(session, "s1"), kiosk="k2", secret=SECRET)
    acks: list[dict] = []
    publish = lambda topic, payload: acks.append(json.loads(payload)) if topic.endswith("/ack") else None  # noqa: E731
    first, second = (Ingest(pg, topics=TOPICS, publish=publish) for _ in range(2))
    one, other = _signed(1, "", NOW), _signed(1, "", NOW, kiosk="k2")
    first.process([(TOPIC, protocol.canonical_json(one), False), (TOPICS.events("s1", "k2"), protocol.canonical_json(other), False)])
    two = _signed(2, protocol.event_hash(one), NOW)
    second.process([(TOPIC, protocol.canonical_json(two), False)])  # first's view of k1 is stale now
    again = _signed(2, protocol.event_hash(one), NOW + timedelta(days=40))  # k1's seq 2 again, another month
    next_other = _signed(2, protocol.event_hash(other), NOW, kiosk="k2")
    first.process([(TOPIC, protocol.canonical_json(again), False), (TOPICS.events("s1", "k2"), protocol.canonical_json(next_other), False)])
    with pg.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT k.code, e.seq, count(*) FROM event e JOIN kiosk k ON k.id = e.kiosk_id GROUP BY 1, 2 ORDER BY 1, 2")).all()
        acked = dict(conn.execute(sa.text("SELECT code, acked_seq FROM kiosk")).all())
    assert [tuple(r) for r in rows] == [("k1", 1, 1), ("k1", 2, 1), ("k2", 1, 1), ("k2", 2, 1)]
    assert acked == {"k1": 2, "k2": 2}
    assert {(a["kiosk"], a["upto"]) for a in acks[-2:]} == {("k1", 2), ("k2", 2)}


def test_the_command_makes_months_ahead_and_archives_past_retention(pg, monkeypatch):
    from typer.testing import CliRunner

    from central.core import clock
    from schoolgate.cli import app

    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    with pg.begin() as conn:
        partitions.create_month(conn, "safety_incident", datetime(2024, 1, 1, tzinfo=UTC))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")},
           "SCHOOLGATE_DATABASE_URL": pg.url.render_as_string(hide_password=False), "SCHOOLGATE_EVENT_RETENTION_YEARS": "3"}
    run = CliRunner().invoke(app, ["central", "partitions", "--ahead", "8"], env=env, catch_exceptions=False)
    assert run.exit_code == 0, run.output
    out = json.loads(run.stdout)
    assert {"event_p202708", "safety_incident_p202708"} <= set(out["made"])
    # 3 school years: from 1 September 2024 on; January 2024 goes
    assert out["archived"] == [{"table": "safety_incident", "month": "2024-01", "archive": "archive_safety_incident_p202401", "rows": 0}]
