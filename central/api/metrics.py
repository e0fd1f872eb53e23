"""``/metrics`` for Prometheus: the app's counters (``central.core.metrics``) and, read at each scrape,
the state of the gates, the safety incidents and the notification outbox.

Who may scrape: with ``SCHOOLGATE_METRICS_TOKEN`` set, whoever presents it as a bearer token (any
address: Prometheus often runs on another host); without it, clients on this machine only. Queue
depths, gate names and incident counts say which school is busy and which gate is down, so they are
not for everyone who can reach the port.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from datetime import timedelta

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from central.core import clock
from central.core.errors import Forbidden, Unauthenticated
from central.core.metrics import UNMATCHED, Metrics
from central.kiosks import health
from central.kiosks.models import SafetyIncident
from central.notifications.models import Notification
from central.schools.models import Kiosk, School

router = APIRouter()


class StateCollector(Collector):
    """Figures read from the database at each scrape (one short read transaction)."""

    def __init__(self, engine: sa.Engine, settings) -> None:
        self.engine = engine
        self.settings = settings

    def describe(self):
        return []  # read at collect time only: the registry must not query the database on register

    def collect(self):
        kiosk, school = Kiosk.__table__, School.__table__
        incident, notification = SafetyIncident.__table__, Notification.__table__
        queue = GaugeMetricFamily("schoolgate_kiosk_queue", "Events in a kiosk's outbox, as its last status reported.",
                                  labels=["school", "kiosk"])
        online = GaugeMetricFamily("schoolgate_gates_online", "Gates online (last status online and not silent), per school.",
                                   labels=["school"])
        gates = GaugeMetricFamily("schoolgate_gates", "Gates registered, per school.", labels=["school"])
        incidents = CounterMetricFamily("schoolgate_incidents", "Safety incidents stored, by kind (a counted row counts its count).",
                                        labels=["kind"])
        outbox = GaugeMetricFamily("schoolgate_notification_outbox", "Notifications in the outbox by state (pending: waiting to go out).",
                                   labels=["state"])
        now = clock.utcnow()
        limit = timedelta(minutes=self.settings.gate_silent_minutes)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(school.c.code.label("school"), kiosk.c.code.label("kiosk"), kiosk.c.online, kiosk.c.last_seen, kiosk.c.status)
                .join(school, school.c.id == kiosk.c.school_id).order_by(school.c.code, kiosk.c.code)
            ).all()
            kinds = conn.execute(
                sa.select(incident.c.kind, sa.func.sum(incident.c.count)).group_by(incident.c.kind).order_by(incident.c.kind)
            ).all()
            states = dict(conn.execute(sa.select(notification.c.state, sa.func.count()).group_by(notification.c.state)).all())
        per_school: dict[str, list[int]] = {}
        for row in rows:
            counts = per_school.setdefault(row.school, [0, 0])
            counts[0] += 1
            if row.online and not health.is_silent(row.last_seen, now, limit):
                counts[1] += 1
            reported = (row.status or {}).get("queue")
            if isinstance(reported, int) and not isinstance(reported, bool):
                queue.add_metric([row.school, row.kiosk], reported)
        for code, (registered, up) in per_school.items():
            gates.add_metric([code], registered)
            online.add_metric([code], up)
        for kind, count in kinds:
            incidents.add_metric([kind], int(count or 0))
        for state in ("pending", "parked"):
            outbox.add_metric([state], states.get(state, 0))
        yield from (queue, online, gates, incidents, outbox)


class HttpTimer:
    """ASGI middleware: each HTTP request's duration by method, route template (``/api/v1/schools/{school}/…``)
    and status. The template is known only after routing, so it is read from the scope afterwards."""

    def __init__(self, app, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def timed_send(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = _template(scope)
            self.metrics.http_latency.labels(scope.get("method", ""), route, str(status["code"])).observe(
                time.perf_counter() - started
            )


def _template(scope) -> str:
    """The route template a request matched, with its routers' prefixes. Newer FastAPI (0.165 here) keeps the
    included router's route (its path without the prefixes) in ``scope["route"]`` and the whole
    template in its effective route context; before, ``scope["route"]`` had the whole template."""
    fastapi_scope = scope.get("fastapi")
    context = fastapi_scope.get("effective_route_context") if isinstance(fastapi_scope, dict) else None
    found = getattr(context, "path_format", None) or getattr(scope.get("route"), "path_format", None)
    return found if isinstance(found, str) else UNMATCHED


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token.get_secret_value()
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise Unauthenticated("token_required")
    elif not _loopback(request.client.host if request.client else None):
        raise Forbidden("metrics_loopback_only")
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
