"""Broker addresses and paho clients, shared by the kiosk's sync client and central's ingest."""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import paho.mqtt.client as mqtt


log = logging.getLogger(__name__)

CENTRAL_USER = "central"


def kiosk_credentials(school: str, kiosk: str, secret_hex: str) -> tuple[str, str]:
    """A kiosk's broker login, derived from its secret so there is nothing more to distribute.

    Ids are ``[A-Za-z0-9_-]``, so the dots keep the name unambiguous; the password is an HMAC of
    the secret, which the broker never sees.
    """
    password = hmac.new(bytes.fromhex(secret_hex), b"schoolgate mqtt password v1", hashlib.sha256).hexdigest()[:40]
    return f"k.{school}.{kiosk}", password


class Logins:
    """Who may connect to the embedded broker: named accounts (central, a bench's publisher) with
    their passwords, and each registered kiosk with the login derived from its secret
    (``gateway.mqtt.kiosk_credentials``), looked up when it connects, so a kiosk registered after
    the broker started gets in. Nobody connects without a login (no anonymous clients)."""

    def __init__(
        self, users: Mapping[str, str], kiosk_secret: Callable[[str, str], str | None] | None = None
    ) -> None:
        self.users = dict(users)
        #: (school, kiosk) -> the kiosk's hex secret, or None when it is not registered
        self.kiosk_secret = kiosk_secret

    def check(self, username: str | None, password: str | None) -> bool:
        if not username or password is None:
            return False
        if username in self.users:
            return hmac.compare_digest(self.users[username].encode(), password.encode())
        parts = username.split(".")
        if self.kiosk_secret is None or len(parts) != 3 or parts[0] != "k":
            return False
        try:
            secret = self.kiosk_secret(parts[1], parts[2])
            if not secret:
                return False
            _, expected = kiosk_credentials(parts[1], parts[2], secret)
        except Exception:  # noqa: BLE001 - a lookup that fails refuses the login, never the broker
            log.exception("looking up the broker login of %s failed", username)
            return False
        return hmac.compare_digest(expected.encode(), password.encode())


class MqttError(Exception):
    """The broker refused us or could not be reached; the message says which and why."""


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """``mqtt://user:pass@host:port`` (1883 by default) or ``mqtts://…`` (8883)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise MqttError(f"broker URL {url!r} is not of the form mqtt://[user:pass@]host[:port] or mqtts://…")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise MqttError(f"broker URL {url!r} has a bad port: {exc}") from None
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def url_with_login(self) -> str:
        """The URL with its login (``BrokerAddress.parse`` reads it back); str() leaves the login out."""
        login = f"{quote(self.username, safe='')}:{quote(self.password or '', safe='')}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{login}{self.host}:{self.port}"


def make_client(client_id: str, address: BrokerAddress, *, clean_session: bool = True, mqtt5: bool = False) -> mqtt.Client:
    """A paho client speaking MQTT 3.1.1, which both amqtt and Mosquitto accept, or MQTT 5 for
    what only Mosquitto and EMQX offer (shared subscriptions); amqtt 0.12 refuses MQTT 5."""
    if mqtt5:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    else:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=clean_session
        )
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()
    # 0 means unlimited in paho 2.x; a large finite limit makes paho scan every outstanding
    # message on each PUBACK (ARCHITECTURE.md, measured facts). The sync client bounds its own window.
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(min_delay=1, max_delay=5)
    client.on_socket_open = _no_delay
    return client


def _no_delay(client: mqtt.Client, userdata, sock) -> None:
    # paho leaves Nagle's algorithm on: a small PUBLISH sent while an earlier segment is unacked
    # waits for the peer's delayed ACK (~40 ms). Events and acks are small and urgent.
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def check(rc: mqtt.MQTTErrorCode | int, what: str) -> None:
    """Turn a paho return code into MqttError."""
    if rc != mqtt.MQTT_ERR_SUCCESS:
        raise MqttError(f"{what}: {mqtt.error_string(rc)}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
