"""The safety log through the API (central/api/routes/events.py): incidents, and the events list's
filter and paging."""

from __future__ import annotations

from datetime import UTC, datetime

from central.models import SafetyIncident


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
