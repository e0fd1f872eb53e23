"""The central FastAPI application."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from central.api.deps import require_token
from central.api.routes import events
from central.bus import Bus
from central.core.config import Settings
from central.core.db import make_engine, migrate
from gateway import protocol
from gateway.mqtt import BrokerAddress


def create_app(settings: Settings, *, with_bus: bool = True) -> FastAPI:
    engine = make_engine(settings.sqlalchemy_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        migrate(engine)
        bus = None
        if with_bus:
            bus = Bus(
                engine,
                broker=BrokerAddress.parse(settings.mqtt_url),
                topics=protocol.Topics(settings.topic_prefix),
                batch=settings.ingest_batch,
            ).start()
        app.state.bus = bus
        try:
            yield
        finally:
            if bus:
                bus.stop()
            engine.dispose()

    app = FastAPI(title="schoolgate central", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        bus = getattr(app.state, "bus", None)
        return {"ok": True, "mqtt": bool(bus and bus.connected.is_set())}

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)])
    api.include_router(events.router)
    app.include_router(api)
    return app
