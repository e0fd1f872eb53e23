"""The safety log through the API (central/api/routes/events.py): incidents, and the events list's
filter and paging."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from central.kiosks.models import SafetyIncident


def _incidents(world) -> dict[str, int]:
    """One incident at s1, one at s2, one whose topic names no known school (as ingest stores it)."""
    rows = {
        "s1": SafetyIncident(school_id=world.ids["s1"], kiosk="gate-1", kind="bad_signature", detail="s1's",
                             topic="sg/v1/s1/gate-1/events"),
        "s2": SafetyIncident(school_id=world.ids["s2"], kiosk="gate-9", kind="broken_chain", detail="s2's",
                             topic="sg/v1/s2/gate-9/events"),
        "none": SafetyIncident(school_id=None, kiosk="gate-1", kind="unknown_kiosk",
                               detail="kiosk 'gate-1' is not registered at school 'nosuch'", topic="sg/v1/nosuch/gate-1/events"),
    }
    with world.session() as session:
        session.add_all(rows.values())
        session.commit()
        return {key: row.id for key, row in rows.items()}


def test_an_incident_naming_no_known_school_is_seen_by_the_district(world):
    ids = _incidents(world)
    for caller in ("district", "service"):
        listed = world.client.get("/api/v1/incidents", headers=world.as_(caller))
        assert listed.status_code == 200, listed.text
        assert [(i["id"], i["school"]) for i in listed.json()] == [(ids["none"], None), (ids["s2"], "s2"), (ids["s1"], "s1")]
        assert "payload" not in listed.json()[0]
    alone = world.client.get("/api/v1/incidents", params={"no_school": "true"}, headers=world.as_("district")).json()
    assert [(i["id"], i["kind"], i["topic"]) for i in alone] == [(ids["none"], "unknown_kiosk", "sg/v1/nosuch/gate-1/events")]


def test_school_staff_still_see_only_their_own_schools_incidents(world):
    ids = _incidents(world)
    for user in ("admin1", "guard1"):
        assert world.client.get("/api/v1/incidents", headers=world.as_(user)).status_code == 403
        own = world.client.get("/api/v1/schools/s1/incidents", headers=world.as_(user)).json()
        assert [i["id"] for i in own] == [ids["s1"]]
    assert world.client.get("/api/v1/schools/s1/incidents", headers=world.as_("admin2")).status_code == 403
    assert [i["id"] for i in world.client.get("/api/v1/schools/s2/incidents", headers=world.as_("admin2")).json()] == [ids["s2"]]


# --- the events list: kinds and pages -----------------------------------------------------

KINDS = ("checkin", "pickup", "checkin", "alert", "checkout")  # seq 1..5 of each kiosk


def _two_kiosks_interleaved(world) -> None:
    """gate-1 and gate-2 of s1 each record seq 1..5; they arrive interleaved, gate-2 first each time."""
    import uuid

    from central.kiosks.models import Event
    from central.schools.models import Kiosk

    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with world.session() as session:
        gate2 = Kiosk(school_id=world.ids["s1"], code="gate-2", secret="cd" * 32)
        session.add(gate2)
        session.flush()
        for seq, kind in enumerate(KINDS, start=1):
            for kiosk_id in (gate2.id, world.ids["gate-1"]):
                session.add(Event(id=str(uuid.uuid4()), school_id=world.ids["s1"], kiosk_id=kiosk_id, seq=seq, kind=kind,
                                  at=now, received_at=now, prev="", hash="0" * 64, sig="0" * 64))
        session.commit()


def _get(world, **params):
    return world.client.get("/api/v1/schools/s1/events", params=params, headers=world.as_("admin1"))


def _pages(world, limit: int, **params) -> list[tuple[str, int]]:
    seen, cursor = [], {}
    for _ in range(20):
        page = _get(world, limit=limit, **params, **cursor)
        assert page.status_code == 200, page.text
        rows = page.json()
        seen += [(e["kiosk"], e["seq"]) for e in rows]
        if len(rows) < limit:
            return seen
        cursor = {"after_kiosk": rows[-1]["kiosk"], "after_seq": rows[-1]["seq"]}
    raise AssertionError("paging never ended")


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)  # the order and the cursor share a collation
def test_paging_across_two_kiosks_gives_every_event_exactly_once(world):
    _two_kiosks_interleaved(world)
    every = [("gate-1", n) for n in range(1, 6)] + [("gate-2", n) for n in range(1, 6)]
    for limit in (1, 3, 4, 5, 10, 11):
        assert _pages(world, limit) == every, limit


def test_one_kiosks_events_after_a_seq_still_work_as_before(world):
    _two_kiosks_interleaved(world)
    rows = _get(world, kiosk="gate-2", after_seq=2).json()
    assert [(e["kiosk"], e["seq"]) for e in rows] == [("gate-2", 3), ("gate-2", 4), ("gate-2", 5)]


def test_after_seq_across_kiosks_without_a_kiosk_is_refused_not_misread(world):
    _two_kiosks_interleaved(world)
    refused = _get(world, after_seq=3)
    assert refused.status_code == 422
    assert "after_kiosk" in refused.json()["detail"][0]["msg"]


def test_kind_filters_the_list_and_pages_with_it(world):
    _two_kiosks_interleaved(world)
    assert [(e["kiosk"], e["seq"]) for e in _get(world, kind="pickup").json()] == [("gate-1", 2), ("gate-2", 2)]
    both = _get(world, kind=["pickup", "alert"]).json()
    assert [(e["kiosk"], e["seq"], e["kind"]) for e in both] == [
        ("gate-1", 2, "pickup"), ("gate-1", 4, "alert"), ("gate-2", 2, "pickup"), ("gate-2", 4, "alert")]
    assert _pages(world, 1, kind="checkin") == [("gate-1", 1), ("gate-1", 3), ("gate-2", 1), ("gate-2", 3)]
    assert [e["seq"] for e in _get(world, kiosk="gate-2", kind="checkout").json()] == [5]


def test_an_unknown_kind_or_kiosk_id_is_a_422(world):
    _two_kiosks_interleaved(world)
    for params in ({"kind": "checkn"}, {"kind": ["pickup", "nothing"]}, {"after_kiosk": "gate 1"}, {"kiosk": "门口"}):
        answer = _get(world, **params)
        assert answer.status_code == 422, params


def test_the_safety_log_of_a_school_that_does_not_exist_is_a_localized_404(world):
    # One error family: the safety log answers as every other route, in the reader's language.
    for path in ("/api/v1/schools/nosuch/events", "/api/v1/schools/nosuch/incidents"):
        zh = world.client.get(path, headers=world.as_("district"))
        assert (zh.status_code, zh.json()["detail"]) == (404, "没有学校 nosuch"), zh.text
        en = world.client.get(path, params={"lang": "en"}, headers=world.as_("district"))
        assert (en.status_code, en.json()["detail"]) == (404, "No school nosuch"), en.text
