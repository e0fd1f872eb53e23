"""/metrics: scraped after the ingest stored events, every figure checked against what was put in by hand."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlmodel import select

from central.core import clock
from central.kiosks.ingest import Ingest
from central.kiosks.models import SafetyIncident
from central.notifications.models import Notification
from central.schools.models import Kiosk
from gateway import protocol

from .conftest import KIOSK_SECRET

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
METRICS_TOKEN = "metrics-token-for-tests-0123456789abcdef"
TOPICS = protocol.Topics("sg/v1")


def scrape(client: TestClient, token: str = METRICS_TOKEN) -> dict[str, dict[tuple, float]]:
    """/metrics as {sample name: {sorted labels: value}}."""
    r = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def events(seqs_ages: list[tuple[int, float]]) -> list[dict]:
    """gate-1's signed, chained events, each ``age`` seconds before NOW."""
    out, prev = [], ""
    for seq, age in seqs_ages:
        event = protocol.new_event(
            school="s1", kiosk="gate-1", seq=seq, prev=prev, at=NOW - timedelta(seconds=age), kind="unknown_card",
            secret=bytes.fromhex(KIOSK_SECRET), card="04A1B2C3",
        )
        prev = protocol.event_hash(event)
        out.append(event)
    return out


@pytest.fixture
def scraped(world, monkeypatch):
    """The ingest stored three events of gate-1; the gates, incidents and notifications are set by hand."""
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    world.settings.metrics_token = SecretStr(METRICS_TOKEN)
    ingest = Ingest(world.engine, topics=TOPICS, publish=lambda *a, **k: None, clock=lambda: NOW,
                    metrics=world.client.app.state.metrics)
    # Two messages, three events: 0.3 s, 4 s and two hours (a backlog drained) before their commit at NOW.
    first, second, third = events([(1, 0.3), (2, 4.0), (3, 7200.0)])
    for payload in (protocol.canonical_json(first), protocol.canonical_json({"v": 1, "batch": [second, third]})):
        ingest.submit(TOPICS.events("s1", "gate-1"), payload)
    ingest.process([ingest.queue.get_nowait() for _ in range(2)])
    assert ingest.stored == 3
    with world.session() as session:
        gate1 = session.exec(select(Kiosk).where(Kiosk.code == "gate-1")).one()
        gate1.online, gate1.last_seen, gate1.status = True, NOW - timedelta(seconds=30), {"queue": 7, "last_seq": 10}
        session.add(gate1)
        # Online by its last status, but silent for 10 minutes (gate_silent_minutes is 2): not online.
        session.add(Kiosk(school_id=world.ids["s1"], code="gate-2", secret="cd" * 32, online=True,
                          last_seen=NOW - timedelta(minutes=10), status={"queue": 0}))
        # Never sent a status: registered, no queue series.
        session.add(Kiosk(school_id=world.ids["s2"], code="gate-9", secret="ef" * 32))
        for kind, count in (("clock_skew", 1), ("unknown_kiosk", 5), ("clock_skew", 2)):
            session.add(SafetyIncident(school_id=world.ids["s1"], kind=kind, detail="test", count=count))
        for n, state in enumerate(("pending", "pending", "parked", "sent")):
            session.add(Notification(school_id=world.ids["s1"], event_ref=f"event:{n}", recipient="g1", channel="sms",
                                     address="13812345678", body="x", language="zh_CN", state=state, next_try_at=NOW))
        session.commit()
    return world


def test_metrics_after_ingest_are_the_figures_put_in(scraped):
    found = scrape(scraped.client)
    assert found["schoolgate_events_stored_total"] == {(): 3.0}
    lag = found["schoolgate_ingest_lag_seconds_bucket"]
    # 0.3 s is in the 0.5 bucket, 4 s in the 5 bucket, 7200 s only in the 4-hour bucket.
    assert lag[(("le", "0.25"),)] == 0
    assert lag[(("le", "0.5"),)] == 1
    assert lag[(("le", "2.5"),)] == 1
    assert lag[(("le", "5.0"),)] == 2
    assert lag[(("le", "3600.0"),)] == 2
    assert lag[(("le", "14400.0"),)] == 3
    assert found["schoolgate_ingest_lag_seconds_count"] == {(): 3.0}
    assert found["schoolgate_ingest_lag_seconds_sum"][()] == pytest.approx(7204.3)
    assert found["schoolgate_kiosk_queue"] == {
        (("kiosk", "gate-1"), ("school", "s1")): 7.0,
        (("kiosk", "gate-2"), ("school", "s1")): 0.0,
    }
    assert found["schoolgate_gates"] == {(("school", "s1"),): 2.0, (("school", "s2"),): 1.0}
    assert found["schoolgate_gates_online"] == {(("school", "s1"),): 1.0, (("school", "s2"),): 0.0}
    assert found["schoolgate_incidents_total"] == {(("kind", "clock_skew"),): 3.0, (("kind", "unknown_kiosk"),): 5.0}
    assert found["schoolgate_notification_outbox"] == {(("state", "parked"),): 1.0, (("state", "pending"),): 2.0}


def test_http_latency_is_by_route_template_not_raw_path(scraped):
    client = scraped.client
    assert client.get("/api/v1/schools/s1/kiosks", headers=scraped.as_("admin1")).status_code == 200
    assert client.get("/api/v1/schools/s2/kiosks", headers=scraped.as_("admin1")).status_code == 403
    assert client.get("/no/such/path/4711").status_code == 404
    counts = scrape(client)["schoolgate_http_request_duration_seconds_count"]
    template = "/api/v1/schools/{school}/kiosks"
    assert counts[(("method", "GET"), ("route", template), ("status", "200"))] == 1
    assert counts[(("method", "GET"), ("route", template), ("status", "403"))] == 1
    assert counts[(("method", "GET"), ("route", "<unmatched>"), ("status", "404"))] == 1
    routes = {dict(labels)["route"] for labels in counts}
    assert not any("s1" in route or "4711" in route for route in routes), routes


def test_metrics_token_is_required_when_set(scraped):
    client = scraped.client
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"}).status_code == 401
    # The service token is not the metrics token.
    assert client.get("/metrics", headers=scraped.as_("service")).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 200


def test_without_a_token_metrics_answer_loopback_only(world):
    assert not world.settings.metrics_token.get_secret_value()
    app = world.client.app
    refused = TestClient(app, client=("192.0.2.7", 40000)).get("/metrics")
    assert refused.status_code == 403
    assert "SCHOOLGATE_METRICS_TOKEN" in refused.json()["detail"]
    assert TestClient(app, client=("203.0.113.5", 40000)).get("/metrics", headers=world.as_("service")).status_code == 403
    for loopback in ("127.0.0.1", "::1"):
        answered = TestClient(app, client=(loopback, 40000)).get("/metrics")
        assert answered.status_code == 200
        assert "schoolgate_events_stored_total 0.0" in answered.text


def test_the_grafana_dashboard_names_only_exported_metrics(scraped):
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "deploy" / "grafana-schoolgate.json").read_text(encoding="utf-8"))
    exported = set(scrape(scraped.client))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) >= 7
    named = set()
    for expr in exprs:
        names = set(re.findall(r"\bschoolgate_[a-z_]+\b", expr))
        assert names, f"{expr!r} names no schoolgate metric"
        assert names <= exported, f"{expr!r} names {sorted(names - exported)}, not exported"
        named |= names
    # Every figure the issue asks for is on the dashboard.
    for wanted in ("schoolgate_events_stored_total", "schoolgate_ingest_lag_seconds_bucket", "schoolgate_kiosk_queue",
                   "schoolgate_gates_online", "schoolgate_incidents_total", "schoolgate_notification_outbox",
                   "schoolgate_http_request_duration_seconds_bucket"):
        assert wanted in named
