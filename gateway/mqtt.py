"""Broker addresses and paho clients, shared by the kiosk's sync client and central's ingest."""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import socket
import threading
import time
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


# --- one connection, for the kiosk and central alike ------------------------------------------------

#: CONNACK reason codes that mean "this login will not do" (MQTT 5 §3.2.2.2; paho maps the 3.1.1
#: return codes 4 and 5 onto 0x86 and 0x87): retrying at once cannot help, so retries slow down.
#: Mosquitto 2.0 and amqtt answer a wrong password with "not authorised" (3.1.1 return code 5), so
#: the two are one problem here; the broker's own words stay in ``problem_detail``.
LOGIN_REFUSED = {0x86: "login_refused", 0x87: "login_refused", 0x8A: "login_refused", 0x8C: "login_refused"}


@dataclass(frozen=True)
class Will:
    """The message the broker publishes for us when the connection is lost without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class Inbound:
    """One message received, as the worker thread hands it on (paho's message object stays on paho's side)."""

    topic: str
    payload: bytes
    retain: bool


class Connection:
    """One MQTT connection: what the kiosk's sync client and central's bus both stand on.

    - Subscriptions are kept and made again on every connect (a clean session forgets them); each
      SUBACK is checked: a refused topic is logged as an error and shown in ``problem``, never silence.
    - A refused login (bad user name or password, not authorised) is told apart from a lost network:
      ``problem`` names it, the log says it once per refusal, and retries slow down to
      ``refused_retry`` seconds (from the first to the last, doubling) instead of hammering the broker.
    - Messages are handed to ``on_message`` on a worker thread of this class, in the order they came:
      nothing the handler does (SQLite writes, a database) runs on paho's network thread. A handler
      that only queues the message for a thread of its own (central's ingest) is called on paho's
      thread instead (``inline``): one thread hand-off less per message, which at a city's 2,000
      messages a second is CPU and GIL switches central does not spend.
    - ``on_connected`` runs on paho's thread after each accepted connect: keep it to flags and wake-ups.
    """

    def __init__(
        self,
        client_id: str,
        address: BrokerAddress,
        *,
        on_message: Callable[[Inbound], None] | None = None,
        on_connected: Callable[[], None] | None = None,
        on_disconnected: Callable[[], None] | None = None,
        will: Will | None = None,
        mqtt5: bool = False,
        retry: tuple[int, int] = (1, 5),
        refused_retry: tuple[int, int] = (30, 300),
        name: str = "mqtt",
        inline: bool = False,
        on_granted: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.address = address
        #: told (on paho's thread) the topics of each SUBACK that granted them, on every connect too
        self.on_granted = on_granted
        self.name = name
        self.inline = inline
        self.on_message = on_message
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self.retry, self.refused_retry = retry, refused_retry
        self.connected = threading.Event()
        #: why the broker will not have us, or None: "login_refused" (bad user name or password, not
        #: authorised), "refused" (another CONNACK failure) or "subscription_refused"
        self.problem: str | None = None
        #: the broker's own words for ``problem`` (a reason code's name, the topics refused)
        self.problem_detail: str | None = None
        #: set once every subscription of the current connection was granted
        self.subscribed = threading.Event()
        self._subscriptions: dict[str, int] = {}
        self._pending: dict[int, list[str]] = {}
        self._early: dict[int, list] = {}  # SUBACKs handled before their subscribe noted its mid
        self._lock = threading.Lock()
        self._inbox: queue.SimpleQueue[Inbound | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self.client = make_client(client_id, address, mqtt5=mqtt5)
        self.client.reconnect_delay_set(*retry)
        if will is not None:
            self.client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Connection:
        """Connect in the background (no broker yet is fine: paho keeps trying) and start the worker."""
        self._start_worker()
        self.client.connect_async(self.address.host, self.address.port, keepalive=30)
        self.client.loop_start()
        return self

    def open(self, timeout: float = 10.0) -> Connection:
        """Connect now and wait for the broker's answer, for a short-lived client (the command line):
        OSError when nothing listens, MqttError when the broker refuses or does not answer in time."""
        self._start_worker()
        try:
            self.client.connect(self.address.host, self.address.port, keepalive=30)
            self.client.loop_start()
            deadline = time.monotonic() + timeout
            while not self.connected.wait(0.05):
                if self.problem:
                    raise MqttError(f"broker {self.address} refused {self.name}: {self.problem_detail}")
                if time.monotonic() > deadline:
                    raise MqttError(f"broker {self.address} did not answer {self.name} within {timeout} s")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._work, name=f"{self.name}-in", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """DISCONNECT (so the broker does not send the will), end paho's thread, then the worker's."""
        self.client.disconnect()
        try:
            self.client.loop_stop()
        except AttributeError:
            # paho 2.x may clear its thread between loop_stop's check and its join: it is gone either way.
            pass
        self.connected.clear()
        self._end_worker()

    def drop(self) -> None:
        """Lose the connection as a power cut would: no DISCONNECT, so the broker sends the will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock:
            sock.close()
        self.connected.clear()
        self._end_worker()

    def _end_worker(self) -> None:
        if self._worker is not None:
            self._inbox.put(None)
            if self._worker is not threading.current_thread():
                self._worker.join(10)
            self._worker = None

    # --- subscribing and publishing --------------------------------------------------------------

    def subscribe(self, topics: list[tuple[str, int]]) -> None:
        """Subscribe now if connected, and again on every later connect."""
        with self._lock:
            for topic, qos in topics:
                self._subscriptions[topic] = qos
        if self.connected.is_set():
            self._subscribe(topics)

    def _subscribe(self, topics: list[tuple[str, int]]) -> None:
        if not topics:
            self.subscribed.set()
            return
        rc, mid = self.client.subscribe(topics)
        if rc == mqtt.MQTT_ERR_NO_CONN:
            return  # not connected after all: the next connect subscribes again
        if rc != mqtt.MQTT_ERR_SUCCESS:
            # paho refused it before the broker saw it (a malformed filter): as much an error as a SUBACK's
            self._refused([t for t, _ in topics], mqtt.error_string(rc))
            return
        with self._lock:
            self._pending[mid] = [t for t, _ in topics]
            # Called from a thread other than paho's, the SUBACK may have been handled on paho's thread
            # before client.subscribe returned here: it waits in _early, and is taken here.
            early = self._early.pop(mid, None)
        if early is not None:
            self._suback(mid, early)

    def subscriptions(self) -> set[str]:
        """The topics subscribed now and on every later connect."""
        with self._lock:
            return set(self._subscriptions)

    def unsubscribe(self, topics: list[str]) -> None:
        """Stop receiving ``topics``, now and on every later connect."""
        with self._lock:
            for topic in topics:
                self._subscriptions.pop(topic, None)
        if topics and self.connected.is_set():
            self.client.unsubscribe(topics)

    def wait_subscribed(self, timeout: float) -> None:
        """Wait until the broker granted every subscription; MqttError if it refused one or was silent."""
        if not self.subscribed.wait(timeout):
            raise MqttError(f"{self.name}: {self.problem_detail or 'no SUBACK'} from {self.address}")

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """Hand one message to paho; ``info.rc`` says whether it went out (MQTT_ERR_NO_CONN: not connected)."""
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    # --- paho's callbacks (its network thread: flags and hand-offs only) -------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.problem = LOGIN_REFUSED.get(reason_code.value, "refused")
            self.problem_detail = str(reason_code)
            if self.problem != "refused":
                # Retrying at once cannot mend a login: slow down until it is mended (paho doubles
                # the delay from the first number to the second on each refusal).
                client.reconnect_delay_set(*self.refused_retry)
            log.error("%s: broker %s refused the login as %s: %s (retrying slowly)",
                      self.name, self.address, self.address.username, reason_code)
            return
        if self.problem in LOGIN_REFUSED.values() or self.problem == "refused":
            client.reconnect_delay_set(*self.retry)
        self.problem = self.problem_detail = None
        self.subscribed.clear()
        with self._lock:
            self._pending.clear()
            self._early.clear()
            topics = list(self._subscriptions.items())
        self.connected.set()
        self._subscribe(topics)
        log.info("%s: connected to %s", self.name, self.address)
        if self.on_connected:
            self.on_connected()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        self.subscribed.clear()
        if was:
            log.info("%s: disconnected from %s: %s", self.name, self.address, reason_code)
        if self.on_disconnected:
            self.on_disconnected()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._suback(mid, reason_codes)

    def _suback(self, mid: int, reason_codes) -> None:
        with self._lock:
            topics = self._pending.pop(mid, None)
            left = bool(self._pending)
            if topics is None:
                self._early[mid] = reason_codes
                while len(self._early) > 100:  # a SUBACK of a connection before (its mid reused later)
                    del self._early[next(iter(self._early))]
                return
        # MQTT 3.1.1 §3.9.3: 0x80 is a refusal; MQTT 5 §3.9.3: any code ≥ 0x80 is.
        refused = [t for t, code in zip(topics, reason_codes) if code.is_failure]
        granted = [t for t in topics if t not in refused]
        if granted and self.on_granted is not None:
            try:
                self.on_granted(granted)
            except Exception:  # noqa: BLE001 - paho's thread must go on
                log.exception("%s: handling the SUBACK of %s failed", self.name, ", ".join(granted))
        if refused:
            self._refused(refused, str(next(c for c in reason_codes if c.is_failure)))
            return
        if not left and self.problem != "subscription_refused":
            self.subscribed.set()

    def _refused(self, topics: list[str], why: str) -> None:
        self.problem = "subscription_refused"
        self.problem_detail = f"subscription refused: {', '.join(topics)} ({why})"
        log.error("%s: broker %s refused the subscription to %s: %s", self.name, self.address, ", ".join(topics), why)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        item = Inbound(message.topic, message.payload, bool(message.retain))
        if self.inline:
            self._handle(item)
        else:
            self._inbox.put(item)

    # --- the worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            self._handle(item)

    def _handle(self, item: Inbound) -> None:
        if self.on_message is None:
            return
        try:
            self.on_message(item)
        except Exception:  # noqa: BLE001 - one bad message never stops the connection
            log.exception("%s: handling a message on %s failed", self.name, item.topic)
