"""The school's feed (issue 13): every stored event gets the next place in its school's feed, is
published on ``{school}/feed`` once committed, and a gate catches up from its last place over HTTP."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sgtest import fresh_postgres_database
from sqlmodel import Session

from central.core import keys
from central.core.db import make_engine, migrate
from central.kiosks import feed, services
from central.kiosks.ingest import Ingest
from central.schools import registry
from gateway import photos, protocol

from .conftest import KIOSK_SECRET

TOPICS = protocol.Topics("sg/v1")
AT = datetime(2030, 9, 2, 8, 0, tzinfo=UTC)
SECRETS = {("s1", "k1"): "71" * 32, ("s1", "k2"): "72" * 32, ("s2", "k3"): "73" * 32}


class Gate:
    """One kiosk's signed, chained events."""

    def __init__(self, school: str, kiosk: str, secret: str | None = None) -> None:
        self.school, self.kiosk = school, kiosk
        self.secret = bytes.fromhex(secret or SECRETS[school, kiosk])
        self.seq, self.prev = 0, ""

    def event(self, **fields) -> bytes:
        self.seq += 1
        event = protocol.new_event(
            school=self.school, kiosk=self.kiosk, seq=self.seq, prev=self.prev, at=AT + timedelta(seconds=self.seq),
            kind=fields.pop("kind", "checkin"), secret=self.secret, **fields,
        )
        self.prev = protocol.event_hash(event)
        return protocol.canonical_json(event)

    @property
    def topic(self) -> str:
        return TOPICS.events(self.school, self.kiosk)


def send(ingest: Ingest, *messages: tuple[Gate, bytes]) -> None:
    """One batch, as the bus hands it over."""
    ingest.process([(gate.topic, payload, False) for gate, payload in messages])


def register(engine) -> None:
    with Session(engine) as session:
        for school, kiosk in SECRETS:
            found = registry.ensure_school(session, code=school)
            services.register_kiosk(session, school=found, kiosk=kiosk, secret=SECRETS[school, kiosk])


@pytest.fixture
def central(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    migrate(engine)
    register(engine)
    published: list[tuple[str, dict]] = []
    ingest = Ingest(engine, topics=TOPICS, publish=lambda topic, payload: published.append((topic, json.loads(payload))))
    yield engine, ingest, published
    engine.dispose()


def places(engine) -> dict[str, list[tuple[int, str, int]]]:
    """Each school's events as (feed place, kiosk, seq), in place order."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT s.code, e.feed_pos, k.code, e.seq FROM event e JOIN kiosk k ON k.id = e.kiosk_id "
            "JOIN school s ON s.id = e.school_id ORDER BY s.code, e.feed_pos"
        )).all()
    found: dict[str, list[tuple[int, str, int]]] = {}
    for school, pos, kiosk, seq in rows:
        found.setdefault(school, []).append((pos, kiosk, seq))
    return found


def feeds(published) -> list[tuple[str, dict]]:
    return [(topic, message) for topic, message in published if topic.endswith("/feed")]


def test_each_schools_events_get_places_in_the_order_stored_and_are_published_on_its_feed(central):
    engine, ingest, published = central
    k1, k2, k3 = Gate("s1", "k1"), Gate("s1", "k2"), Gate("s2", "k3")
    send(ingest, (k1, k1.event(student="S1", card="04A1B2C3")), (k3, k3.event(student="T1")))
    send(ingest, (k2, k2.event(student="S2")), (k1, k1.event(kind="pickup", student="S1", guardian="G1", note="code:7")))

    assert places(engine) == {
        "s1": [(1, "k1", 1), (2, "k2", 1), (3, "k1", 2)],
        "s2": [(1, "k3", 1)],
    }
    sent = feeds(published)
    assert [topic for topic, _ in sent] == ["sg/v1/s1/feed", "sg/v1/s2/feed", "sg/v1/s1/feed"]
    first, other, second = (message for _, message in sent)
    assert (first["school"], first["head"], [e["pos"] for e in first["events"]]) == ("s1", 1, [1])
    assert (other["school"], other["head"], [e["pos"] for e in other["events"]]) == ("s2", 1, [1])
    assert (second["head"], [(e["pos"], e["kiosk"], e["kind"]) for e in second["events"]]) == (
        3, [(2, "k2", "checkin"), (3, "k1", "pickup")]
    )
    # What a gate needs of another gate's event, and no more: no card number, no chain or signature.
    assert second["events"][1] == {
        "pos": 3, "id": second["events"][1]["id"], "kiosk": "k1", "seq": 2, "kind": "pickup",
        "at": "2030-09-02T08:00:02.000+00:00", "student": "S1", "guardian": "G1", "note": "code:7",
    }
    assert all("card" not in e and "sig" not in e and "prev" not in e for _, m in sent for e in m["events"])
    for _, message in sent:  # every message reads as the protocol's Feed
        assert protocol.Feed.model_validate(message).head == message["head"]


def test_a_resent_event_gets_no_second_place_and_nothing_goes_on_the_feed(central):
    engine, ingest, published = central
    k1 = Gate("s1", "k1")
    first = k1.event()
    send(ingest, (k1, first))
    send(ingest, (k1, first))  # the ack was lost: the kiosk sends it again
    assert places(engine) == {"s1": [(1, "k1", 1)]}
    assert len(feeds(published)) == 1


def test_a_feed_that_cannot_be_published_loses_no_event_and_the_ack_still_goes(central):
    engine, _, _ = central
    acks = []

    def publish(topic, payload):
        if topic.endswith("/feed"):
            raise ConnectionError("the broker went away")
        acks.append(json.loads(payload))

    ingest = Ingest(engine, topics=TOPICS, publish=publish)
    k1 = Gate("s1", "k1")
    send(ingest, (k1, k1.event()))
    assert places(engine) == {"s1": [(1, "k1", 1)]}
    assert acks[-1]["upto"] == 1
    with Session(engine) as session:  # and a gate that missed it finds it by asking
        message = feed.after(session, school=registry.get_school(session, "s1"), after=0)
    assert [e["pos"] for e in message["events"]] == [1] and message["head"] == 1


def test_a_gate_catches_up_after_its_last_place_a_page_at_a_time(central):
    engine, ingest, _ = central
    k1, k2 = Gate("s1", "k1"), Gate("s1", "k2")
    send(ingest, *[(k1, k1.event()) for _ in range(3)], *[(k2, k2.event()) for _ in range(2)])
    with Session(engine) as session:
        school = registry.get_school(session, "s1")
        page = feed.after(session, school=school, after=1, limit=2)
        rest = feed.after(session, school=school, after=3)
        done = feed.after(session, school=school, after=5)
    assert ([e["pos"] for e in page["events"]], page["head"]) == ([2, 3], 5)
    assert ([(e["pos"], e["kiosk"], e["seq"]) for e in rest["events"]], rest["head"]) == ([(4, "k2", 1), (5, "k2", 2)], 5)
    assert (done["events"], done["head"]) == ([], 5)


def _kiosk_get(world, path: str, query: str = "", secret: str = KIOSK_SECRET):
    headers = photos.signed_headers(secret, method="GET", path=path, query=query)
    return world.client.get(f"{path}?{query}" if query else path, headers=headers)


def test_the_catch_up_route_answers_the_gate_signed_by_central_and_no_one_else(world):
    """The API's world (tests/central/conftest.py): school s1 and its gate-1."""
    ingest = Ingest(world.engine, topics=TOPICS, publish=lambda topic, payload: None)
    gate = Gate("s1", "gate-1", KIOSK_SECRET)
    send(ingest, (gate, gate.event(student="A1")), (gate, gate.event(kind="checkout", student="A1")))

    answer = _kiosk_get(world, "/api/v1/kiosks/s1/gate-1/feed", "after=1")
    assert answer.status_code == 200, answer.text
    central = protocol.parse_public_key(keys.public_hex(world.settings.signing_key_file))
    message = protocol.unseal(answer.content, central)  # a forged answer would not verify
    assert (message["head"], [(e["pos"], e["kind"]) for e in message["events"]]) == (2, [(2, "checkout")])

    assert _kiosk_get(world, "/api/v1/kiosks/s1/gate-1/feed", "after=0", secret="cd" * 32).status_code == 401
    assert world.client.get("/api/v1/kiosks/s1/gate-1/feed").status_code == 401  # unsigned
    assert _kiosk_get(world, "/api/v1/kiosks/s1/gate-1/feed", "after=-1").status_code == 422
    assert _kiosk_get(world, "/api/v1/kiosks/s1/gate-1/feed", "limit=501").status_code == 422



def test_two_ingest_workers_give_one_schools_events_places_in_commit_order_without_a_gap():
    """PostgreSQL, two workers sharing the stream (MQTT 5 shared subscription): the school's row lock
    orders the places, so they are 1..n with no gap or repeat, and each kiosk's events keep their order."""
    with fresh_postgres_database() as url:
        engine = make_engine(url)
        try:
            migrate(engine)
            register(engine)
            workers = [Ingest(engine, topics=TOPICS, publish=lambda topic, payload: None, shared=True) for _ in range(2)]
            gates = [Gate("s1", "k1"), Gate("s1", "k2")]
            batches = {gate.kiosk: [[(gate, gate.event()) for _ in range(5)] for _ in range(8)] for gate in gates}

            def run(worker, gate):
                for batch in batches[gate.kiosk]:
                    send(worker, *batch)

            threads = [threading.Thread(target=run, args=(w, g)) for w, g in zip(workers, gates, strict=True)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            found = places(engine)["s1"]
            assert [pos for pos, _, _ in found] == list(range(1, 81))
            for kiosk in ("k1", "k2"):
                assert [seq for _, k, seq in found if k == kiosk] == list(range(1, 41))
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT feed_head FROM school WHERE code = 's1'")).scalar_one() == 80
        finally:
            engine.dispose()
