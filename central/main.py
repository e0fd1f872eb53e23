"""The central FastAPI application."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import APIRouter, Depends, FastAPI
from sqlmodel import Session

from central.api.deps import ERROR_RESPONSES, authorize, localized_error_handler
from central.api.limits import RequestLimits
from central.api.metrics import HttpTimer, StateCollector
from central.api.metrics import router as metrics_router
from central.api.roster_sync import on_roster_changed
from central.api.routes import (
    absences,
    auth,
    billing,
    calendar,
    duty,
    enrollments,
    events,
    gates,
    groups,
    guardian_links,
    kiosks,
    ledger,
    notices,
    notifications,
    notify_settings,
    payments,
    pickup,
    public,
    reconciliation,
    reports,
    safety,
    sessions,
    staff,
    staff_pay,
    statements,
    students,
    users,
    vendors,
    webhooks,
)
from central.api.routes import roster as roster_routes
from central.core import clock
from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.core.events import DomainEvents, IncidentStored, RosterChanged
from central.core.i18n import LocalizedError
from central.core.metrics import Metrics
from central.kiosks import health, partitions, roster
from central.kiosks.bus import Bus
from central.notifications import channels as notify_channels
from central.notifications import ladder, outbox
from central.web import admin_kiosks, admin_setup, charts, district, family, finance, pages, safety_list
from central.web import admin_people, admin_programme
from gateway import protocol

log = logging.getLogger(__name__)


def _keep_rosters(engine, settings: Settings, bus: Bus, stop: threading.Event) -> None:
    topics = protocol.Topics(settings.topic_prefix)
    while not stop.wait(settings.roster_refresh_minutes * 60):
        try:
            roster.refresh_all(engine, settings=settings, publisher=bus, topics=topics)
        except Exception:  # noqa: BLE001 - the next round tries again; kiosks keep their copy
            log.exception("roster refresh failed")


def _watch_gates(engine, settings: Settings, dispatcher: DomainEvents, stop: threading.Event) -> None:
    """Every ``gate_check_seconds``: a gate silent while its school's session runs is a safety incident."""
    limit = timedelta(minutes=settings.gate_silent_minutes)
    while not stop.wait(settings.gate_check_seconds):
        try:
            with Session(engine) as session:
                for incident in health.report_silent(session, now=clock.utcnow(), limit=limit):
                    dispatcher.publish(IncidentStored(incident.kind, incident.detail, incident.school_id, incident.kiosk, None))
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("checking the gates failed")


def notification_channels(settings: Settings) -> dict[str, outbox.Channel]:
    """The channels configured: the webhook and the WeCom and DingTalk robots always (their URLs are each
    school's, ``SchoolChannel``), SMS and email when their settings are given (a school's own SMS gateway and
    mail server, ``SchoolNotifySettings``, are taken by the outbox for that school's notifications)."""
    found: dict[str, outbox.Channel] = {"webhook": notify_channels.Webhook(), "wecom": notify_channels.WeCom(),
                                        "dingtalk": notify_channels.DingTalk()}
    if settings.notify_sms_url:
        found["sms"] = notify_channels.SmsGateway(settings.notify_sms_url)
    if settings.notify_smtp_host:
        found["email"] = notify_channels.Email(settings.notify_smtp_host, settings.notify_smtp_port, sender=settings.notify_email_from,
                                               starttls=settings.notify_smtp_starttls, user=settings.notify_smtp_user,
                                               password=settings.notify_smtp_password)
    return found


def _send_notifications(engine, settings: Settings, stop: threading.Event, wake: threading.Event) -> None:
    """Every ``notify_check_seconds``: take the late-pickup ladder's steps due, send the notifications due
    (at least once, retried, parked)."""
    channels = notification_channels(settings)
    try:
        with Session(engine) as session:
            outbox.recover(session, now=clock.utcnow())  # what a crash left: stored, and due again
    except Exception:  # noqa: BLE001 - sending goes on; the next start tries again
        log.exception("recovering the outbox failed")
    while not stop.is_set():
        # Woken as soon as the outbox stores something (no wait for the next round), else every round.
        wake.wait(settings.notify_check_seconds)
        wake.clear()
        if stop.is_set():
            break
        try:
            with Session(engine) as session:
                ladder.escalate(session, now=clock.utcnow(), grace=timedelta(minutes=settings.pickup_grace_minutes))
                while outbox.dispatch_due(session, now=clock.utcnow(), channels=channels) >= outbox.ROUND:
                    pass
        except Exception:  # noqa: BLE001 - the next round tries again; the outbox keeps them
            log.exception("sending notifications failed")


def ingest_worker(engine, settings: Settings) -> Bus:
    """The bus of an ingest worker without HTTP (``schoolgate central ingest``), not yet started: what it
    stores reaches the guardians' notification outbox as ``central serve``'s own ingest does (its
    sender sends them at its next round), so no event waits for a restart to be told."""
    events = DomainEvents()
    outbox.subscribe(events, engine)
    return Bus.from_settings(engine, settings, events=events)


def create_app(settings: Settings, *, with_bus: bool = True) -> FastAPI:
    engine = make_engine(settings.sqlalchemy_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        migrate(engine)
        partitions.ensure(engine, now=clock.utcnow())  # PostgreSQL: this month's and the next ones'
        bus = None
        if with_bus:
            # In the background: HTTP answers at once even with the broker down (/healthz: mqtt false).
            bus = Bus.from_settings(
                engine, settings, events=app.state.events, metrics=app.state.metrics, ingest=settings.serve_ingest,
                follow_feeds=bool(settings.partition or settings.ingest_shared_group or not settings.serve_ingest),
            ).start(
                background=True
            )
        app.state.bus = bus
        stop = threading.Event()
        if bus:
            threading.Thread(target=_keep_rosters, args=(engine, settings, bus, stop), name="roster-refresh", daemon=True).start()
        threading.Thread(target=_watch_gates, args=(engine, settings, app.state.events, stop), name="gate-watch", daemon=True).start()
        if settings.notify_send:
            threading.Thread(target=_send_notifications, args=(engine, settings, stop, app.state.notify_wake),
                             name="notify", daemon=True).start()
        try:
            yield
        finally:
            stop.set()
            app.state.notify_wake.set()
            if bus:
                bus.stop()
            engine.dispose()

    app = FastAPI(title="schoolgate central", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    # /metrics (central/api/metrics.py): the ingest's and the HTTP layer's counters, and state read at each scrape.
    app.state.metrics = Metrics()
    app.state.metrics.registry.register(StateCollector(engine, settings))
    # Domain events (central/core/events.py): services record them, subscribers get them after the commit.
    app.state.events = DomainEvents()
    app.state.events.subscribe(RosterChanged, on_roster_changed(app))
    # What the gates stored, absences, one-time codes: the guardians' notifications stored in the outbox (issue 16).
    app.state.notify_wake = threading.Event()  # set when the outbox stored something: the sender goes at once
    outbox.subscribe(app.state.events, engine, wake=app.state.notify_wake.set)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        bus = getattr(app.state, "bus", None)
        return {"ok": True, "mqtt": bool(bus and bus.connected.is_set())}

    app.add_exception_handler(LocalizedError, localized_error_handler)
    # Bodies are bounded and text is NUL-free before any route or parser reads them (issue 11).
    app.add_middleware(RequestLimits, settings=settings)
    # Outermost: a request refused by the limits is timed too.
    app.add_middleware(HttpTimer, metrics=app.state.metrics)
    # Every /api/v1 route needs a login and a role (central/api/deps.py), except logging in itself and
    # the kiosks' routes, which are signed with the kiosk's secret instead; the public page needs neither.
    api = APIRouter(dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)
    api.include_router(events.router)
    api.include_router(events.district_router)
    # Users and roles, children's records, pickup codes and photos, the public profile (issue 3, part B).
    for module in (auth, users, students, pickup, public, gates, billing, staff_pay, duty, ledger, statements, payments,
                   reconciliation, safety):
        api.include_router(module.router)
    api.include_router(gates.alerts_router)
    api.include_router(reports.router)
    api.include_router(reports.district_router)
    # The service (issue 3): calendar, groups, sessions, staff, vendors, the notice, enrollment, links, roster.
    for module in (calendar, groups, sessions, staff, vendors, notices, enrollments, guardian_links, roster_routes, notifications,
                   notify_settings, webhooks):
        api.include_router(module.router)
    # Excused absences (请假, issue 14): the teacher's, shown on the live roster.
    api.include_router(absences.router)
    # The prefix given here, not on ``api``: an include without a prefix makes FastAPI build every nested
    # route's dependencies up front, and again at the first request (seconds per central on the loaded
    # 2-core test machine; the tests make hundreds of centrals). Same paths and OpenAPI document either way.
    app.include_router(api, prefix="/api/v1")
    webhooks.document(app)
    app.include_router(auth.public_router, prefix="/api/v1")
    app.include_router(kiosks.router, prefix="/api/v1")
    app.include_router(public.page_router)
    app.include_router(metrics_router)
    # The pages for people (issue 14): /login, /teacher, ... on the same services and roles (central/web).
    pages.install(app)
    app.include_router(family.router)  # /guardian (on pages' helpers)
    app.include_router(admin_kiosks.router)  # /admin/kiosks
    app.include_router(admin_programme.router)  # /admin/groups, /admin/calendar
    app.include_router(admin_setup.router)  # /admin/import, /admin/enrollments
    app.include_router(admin_people.router)  # /admin/staff, /admin/vendors, /admin/accounts
    app.include_router(charts.router)  # /charts/attendance
    app.include_router(district.router)  # /district
    app.include_router(safety_list.router)  # /admin/safety
    app.include_router(finance.router)  # /finance
    return app
