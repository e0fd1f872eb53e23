"""The embedded broker (amqtt) for single-machine use: the demo, tests, a school's first trial.

amqtt 0.12 speaks MQTT 3.1.1 only, so shared subscriptions and MQTT 5 session expiry need
Mosquitto or EMQX (ARCHITECTURE.md, "Beyond one machine").
"""

from __future__ import annotations

import asyncio
import logging
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from amqtt.plugins.base import BaseAuthPlugin

from gateway.mqtt import Logins, MqttError, reachable

log = logging.getLogger(__name__)


class LoginPlugin(BaseAuthPlugin):
    """amqtt authentication by ``Logins``; the lookup runs off the broker's event loop (it may read
    central's database)."""

    @dataclass
    class Config:
        logins: Any = None

    async def authenticate(self, *, session) -> bool:
        logins: Logins | None = self.context.config.logins
        if logins is None or not session or not session.username:
            return False
        ok = await asyncio.get_running_loop().run_in_executor(None, logins.check, session.username, session.password)
        if not ok:
            log.warning("embedded broker refused a login as %r", session.username)
        return ok


def broker_config(host: str, port: int, logins: Logins, subscribe_acl: Mapping[str, list[str]] | None = None) -> dict:
    plugins: dict[str, Any] = {f"{__name__}.LoginPlugin": {"logins": logins}}
    if subscribe_acl is not None:
        # amqtt's own topic ACL: a subscription outside the login's filters gets 0x80 in its SUBACK.
        # amqtt 0.12 reads it as "acl" (its config class has no field for the newer "subscribe-acl"
        # it names in the warning it gives; the warning is silenced where the broker is made).
        plugins["amqtt.plugins.topic_checking.TopicAccessControlListPlugin"] = {"acl": dict(subscribe_acl)}
    return {"listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}}, "plugins": plugins}


class EmbeddedBroker:
    """amqtt on its own event loop in a daemon thread; loopback only, and every client logs in (``Logins``)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 1883, *, logins: Logins, subscribe_acl: Mapping[str, list[str]] | None = None
    ) -> None:
        """``subscribe_acl``: login -> the topic filters it may subscribe to (a login not named may
        subscribe to nothing); None, the default: every login subscribes to anything."""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise MqttError("the embedded broker listens on loopback only; use Mosquitto to serve a network")
        self.host, self.port = host, port
        self.logins = logins
        self.subscribe_acl = subscribe_acl
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) or self._error:
            raise MqttError(f"embedded broker did not start on {self.host}:{self.port}: {self._error}")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()

        async def main() -> None:
            from amqtt.broker import Broker

            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "The 'acl' option is deprecated", DeprecationWarning)
                broker = Broker(broker_config(self.host, self.port, self.logins, self.subscribe_acl))
            try:
                await broker.start()
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                self._error = exc
                self._started.set()
                return
            self._started.set()
            await self._stop.wait()
            await broker.shutdown()

        try:
            self._loop.run_until_complete(main())
        finally:
            self._loop.close()

    def stop(self) -> None:
        if self._loop and self._stop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until_reachable(host: str, port: int, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reachable(host, port):
            return
        time.sleep(0.05)
    raise MqttError(f"no broker answers on {host}:{port}")
