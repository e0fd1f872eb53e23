"""Central served by uvicorn in a background thread: for the demo and the integration tests."""

from __future__ import annotations

import threading
import time

import uvicorn

from central.core.config import Settings
from central.main import create_app


class CentralServer:
    def __init__(self, settings: Settings, *, host: str = "127.0.0.1", port: int = 8000) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.server = uvicorn.Server(uvicorn.Config(
            # The pages' live streams (central/web) never end on their own: cut after 1 s at a stop.
            self.app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=1,
        ))
        self.url = f"http://{host}:{port}"
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 20.0) -> CentralServer:
        self._thread = threading.Thread(target=self.server.run, name="central", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"central did not start at {self.url}")
            time.sleep(0.05)
        bus = self.app.state.bus
        if bus and not bus.connected.wait(timeout):
            raise RuntimeError(f"central has no broker at {self.settings.mqtt_url}")
        return self

    @property
    def bus(self):
        return self.app.state.bus

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread:
            self._thread.join(15)

    def __enter__(self) -> CentralServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
