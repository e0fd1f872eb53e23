"""The domain-event dispatcher (central/core/events.py): delivered once committed, never after a rollback,
each event once per transaction, and one failing handler stops neither the others nor the commit."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from central.core import events
from central.core.events import DomainEvents, RosterChanged


@pytest.fixture
def engine(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'events.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE note (x INTEGER UNIQUE)"))
    yield engine
    engine.dispose()


def _session(engine, dispatcher: DomainEvents | None) -> Session:
    session = Session(engine)
    if dispatcher is not None:
        events.attach(session, dispatcher)
    return session


def _insert(session: Session, x: int) -> None:
    session.execute(sa.text("INSERT INTO note (x) VALUES (:x)"), {"x": x})


def test_an_event_is_delivered_after_the_commit_and_its_handler_sees_the_committed_change(engine):
    seen = []

    def handler(event):
        # The committing session may emit no SQL now: the handler reads in a session of its own.
        with Session(engine) as own:
            seen.append((event, own.execute(sa.text("SELECT x FROM note")).scalars().all()))

    dispatcher = DomainEvents()
    dispatcher.subscribe(RosterChanged, handler)
    with _session(engine, dispatcher) as session:
        _insert(session, 7)
        events.record(session, RosterChanged(1))
        session.flush()
        assert seen == []  # recorded and flushed, not committed: nobody is told yet
        session.commit()
    assert seen == [(RosterChanged(1), [7])]


def test_a_rollback_drops_the_events_and_the_next_commit_does_not_deliver_them(engine):
    seen = []
    dispatcher = DomainEvents()
    dispatcher.subscribe(RosterChanged, seen.append)
    with _session(engine, dispatcher) as session:
        _insert(session, 1)
        events.record(session, RosterChanged(1))
        session.rollback()
        assert events.pending(session) == []
        _insert(session, 2)
        session.commit()
    assert seen == []


def test_a_failed_transaction_delivers_nothing(engine):
    seen = []
    dispatcher = DomainEvents()
    dispatcher.subscribe(RosterChanged, seen.append)
    with _session(engine, dispatcher) as session:
        _insert(session, 1)
        session.commit()
        events.record(session, RosterChanged(1))
        with pytest.raises(sa.exc.IntegrityError):
            _insert(session, 1)  # UNIQUE: the transaction fails
        session.rollback()
        session.commit()
    assert seen == []


def test_the_same_event_recorded_twice_in_one_transaction_is_delivered_once_in_recorded_order(engine):
    seen = []
    dispatcher = DomainEvents()
    dispatcher.subscribe(RosterChanged, seen.append)
    with _session(engine, dispatcher) as session:
        events.record(session, RosterChanged(2))
        events.record(session, RosterChanged(1))
        events.record(session, RosterChanged(2))
        _insert(session, 1)
        session.commit()
        assert seen == [RosterChanged(2), RosterChanged(1)]
        # A later transaction of the same session delivers its own events again.
        events.record(session, RosterChanged(2))
        _insert(session, 2)
        session.commit()
    assert seen == [RosterChanged(2), RosterChanged(1), RosterChanged(2)]


def test_a_failing_handler_is_logged_and_stops_neither_the_commit_nor_the_other_handlers(engine, caplog):
    seen = []

    def broken(event):
        raise RuntimeError("broker away")

    dispatcher = DomainEvents()
    dispatcher.subscribe(RosterChanged, broken)
    dispatcher.subscribe(RosterChanged, seen.append)
    with caplog.at_level(logging.ERROR, logger="central.core.events"), _session(engine, dispatcher) as session:
        _insert(session, 5)
        events.record(session, RosterChanged(3))
        session.commit()  # does not raise
    assert seen == [RosterChanged(3)]
    assert "broker away" in caplog.text
    with Session(engine) as check:
        assert check.execute(sa.text("SELECT x FROM note")).scalars().all() == [5]


def test_handlers_get_only_the_events_of_the_type_they_subscribed_to(engine):
    class Other:  # any hashable value may be an event
        pass

    seen = []
    dispatcher = DomainEvents()
    dispatcher.subscribe(RosterChanged, seen.append)
    other = Other()
    with _session(engine, dispatcher) as session:
        events.record(session, other)
        events.record(session, RosterChanged(4))
        _insert(session, 1)
        session.commit()
    assert seen == [RosterChanged(4)]


def test_without_a_dispatcher_the_commit_drops_the_events(engine):
    with _session(engine, None) as session:
        events.record(session, RosterChanged(1))
        _insert(session, 1)
        session.commit()
        assert events.pending(session) == []
