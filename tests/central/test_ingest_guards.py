"""Ingest rules a one-line slip could break without any other test noticing (issue 12's planted bugs):
the hash chain, the topic naming the kiosk, and a re-registered kiosk's new secret."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from central.kiosks import services
from central.schools import registry
from gateway import protocol

from .test_ingest import SECRET, Kiosk, incidents, send, stored, world  # noqa: F401  (world is a fixture)

AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def central_at_AT(world):
    """Central's clock stands where the events were made: a fixed AT must not age with the calendar."""
    world[1].clock = lambda: AT


def test_an_event_whose_prev_is_not_the_last_hash_is_not_stored(world):
    engine, ingest, acks = world
    k = Kiosk()
    send(ingest, protocol.canonical_json(k.event(at=AT)))
    k.prev = "0" * 64  # signed by the kiosk's own secret, but chained to nothing it sent
    send(ingest, protocol.canonical_json(k.event(at=AT)))
    assert [seq for seq, _ in stored(engine)] == [1]
    assert incidents(engine) == ["broken_chain"]
    assert acks[-1]["upto"] == 1


def test_an_event_naming_another_kiosk_than_its_topic_is_not_stored(world):
    engine, ingest, _ = world
    with Session(engine) as session:
        services.register_kiosk(session, school=registry.get_school(session, "s1"), kiosk="k2", secret=SECRET)  # same secret: only the topic tells
    event = protocol.new_event(school="s1", kiosk="k2", seq=1, prev="", at=AT, kind="unknown_card", secret=bytes.fromhex(SECRET))
    send(ingest, protocol.canonical_json(event))  # on k1's topic
    assert stored(engine) == []
    assert incidents(engine) == ["topic_mismatch"]


def test_a_running_ingest_takes_a_kiosks_new_secret_after_it_is_registered_again(world):
    engine, ingest, acks = world
    k = Kiosk()
    send(ingest, protocol.canonical_json(k.event(at=AT)))  # the old secret, now cached by ingest
    new = "5d" * 32
    with Session(engine) as session:
        services.register_kiosk(session, school=registry.get_school(session, "s1"), kiosk="k1", secret=new)
    k.secret = bytes.fromhex(new)
    send(ingest, protocol.canonical_json(k.event(at=AT)))
    assert [seq for seq, _ in stored(engine)] == [1, 2]
    assert incidents(engine) == []
    assert acks[-1]["upto"] == 2
