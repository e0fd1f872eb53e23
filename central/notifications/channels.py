"""The channels a notification goes out on: a signed webhook, an SMS HTTP gateway, a WeCom group robot and a
DingTalk robot (httpx, their JSON as their documentation gives it), email (SMTP).

Each ``send`` raises on any failure (the outbox tries again) and passes the notification's id on as
its idempotency key where the channel can carry one: the webhook's ``X-Schoolgate-Id`` header, the SMS
gateway's ``{id}`` placeholder, the email's Message-ID.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import ssl
from collections.abc import Callable
from functools import lru_cache
from datetime import datetime
from email.message import EmailMessage
from urllib.parse import quote

import httpx

from central.core import clock
from central.core.i18n import has, t
from central.notifications.models import Notification

TIMEOUT = 5.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 (hex) over ``timestamp``, a dot and the body: what ``X-Schoolgate-Signature`` carries.
    A receiver recomputes it and refuses a timestamp too far from its own clock (a replay)."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def payload(notification: Notification) -> bytes:
    return json.dumps(
        {"id": notification.id, "event": notification.event_ref, "kind": notification.kind,
         "language": notification.language, "text": notification.body},
        ensure_ascii=False, sort_keys=True, separators=(",", ":"),
    ).encode()


def subject(notification: Notification) -> str:
    """An email's subject: what the message is about, in its language."""
    key = f"notify.subject.{notification.kind}"
    return t(key if has(key) else "notify.subject", notification.language)


class Webhook:
    """POST the notification as JSON to the subscription's URL, signed with its secret."""

    def __init__(self, client: httpx.Client | None = None, *, now: Callable[[], datetime] = clock.utcnow) -> None:
        self.client = client or httpx.Client(timeout=TIMEOUT)
        self.now = now

    def send(self, notification: Notification, *, secret: str) -> str:
        if not secret:
            raise ValueError("the webhook subscription has no secret")
        # An integrator's delivery (recipient w<id>) carries its JSON payload as stored; a guardian's is made here.
        body = notification.body.encode() if notification.recipient.startswith("w") else payload(notification)
        timestamp = str(int(self.now().timestamp()))
        response = self.client.post(notification.address, content=body, headers={
            "Content-Type": "application/json; charset=utf-8",
            "X-Schoolgate-Id": str(notification.id),
            "X-Schoolgate-Timestamp": timestamp,
            "X-Schoolgate-Signature": signature(secret, timestamp, body),
        })
        response.raise_for_status()
        return f"{response.status_code} {response.text[:200]}".strip()


class SmsGateway:
    """An SMS HTTP gateway: GET ``template`` with ``{to}``, ``{text}`` and ``{id}`` filled in (URL-quoted),
    e.g. ``https://sms.example/send?to={to}&text={text}&ref={id}``. Any 2xx is taken as accepted."""

    def __init__(self, template: str, client: httpx.Client | None = None) -> None:
        self.template = template
        self.client = client or httpx.Client(timeout=TIMEOUT)

    def send(self, notification: Notification, *, secret: str) -> None:
        url = self.template.format(to=quote(notification.address, safe=""), text=quote(notification.body, safe=""),
                                   id=notification.id)
        self.client.get(url).raise_for_status()


class Email:
    """Email over SMTP (stdlib): one message per notification, its Message-ID made of the notification id;
    STARTTLS and a login when the server asks for them."""

    def __init__(self, host: str, port: int, *, sender: str, timeout: float = TIMEOUT, starttls: bool = False,
                 user: str = "", password: str = "") -> None:
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout
        self.starttls, self.user, self.password = starttls, user, password

    def send(self, notification: Notification, *, secret: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = notification.address
        message["Subject"] = subject(notification)
        message["Message-ID"] = f"<notification-{notification.id}@{self.sender.rpartition('@')[2] or 'schoolgate'}>"
        message.set_content(notification.body)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                smtp.login(self.user, self.password)
            smtp.send_message(message)


def _robot_answer(response: httpx.Response) -> None:
    """WeCom and DingTalk answer 200 with ``{"errcode": 0, ...}``; any other errcode is a failure."""
    response.raise_for_status()
    try:
        answer = response.json()
    except ValueError as exc:
        raise RuntimeError(f"not JSON: {response.text[:200]}") from exc
    if answer.get("errcode", 0) != 0:
        raise RuntimeError(f"errcode {answer.get('errcode')}: {answer.get('errmsg', '')}"[:300])


def robot_text(notification: Notification) -> bytes:
    """The text message both robots take: ``{"msgtype": "text", "text": {"content": ...}}``."""
    return json.dumps({"msgtype": "text", "text": {"content": notification.body}}, ensure_ascii=False).encode()


class WeCom:
    """A WeCom (企业微信) group robot: POST the text message to its webhook URL (``…/cgi-bin/webhook/send?key=…``)."""

    def __init__(self, client: httpx.Client | None = None) -> None:
        self.client = client or httpx.Client(timeout=TIMEOUT)

    def send(self, notification: Notification, *, secret: str) -> None:
        _robot_answer(self.client.post(notification.address, content=robot_text(notification),
                                       headers={"Content-Type": "application/json; charset=utf-8"}))


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's robot signature: base64 of HMAC-SHA256 keyed by the secret over ``timestamp + "\\n" + secret``."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class DingTalk:
    """A DingTalk robot: POST the text message to its webhook URL (``…/robot/send?access_token=…``), with
    ``timestamp`` (ms) and ``sign`` added when the robot has a signing secret."""

    def __init__(self, client: httpx.Client | None = None, *, now: Callable[[], datetime] = clock.utcnow) -> None:
        self.client = client or httpx.Client(timeout=TIMEOUT)
        self.now = now

    def send(self, notification: Notification, *, secret: str) -> None:
        url = notification.address
        if secret:
            timestamp = int(self.now().timestamp() * 1000)
            joiner = "&" if "?" in url else "?"
            url = f"{url}{joiner}timestamp={timestamp}&sign={quote(dingtalk_sign(secret, timestamp), safe='')}"
        _robot_answer(self.client.post(url, content=robot_text(notification),
                                       headers={"Content-Type": "application/json; charset=utf-8"}))


@lru_cache(maxsize=256)
def school_sms(template: str) -> SmsGateway:
    """A school's own SMS gateway (``SchoolNotifySettings.sms_url``): one per template, its connections kept."""
    return SmsGateway(template)


@lru_cache(maxsize=256)
def school_email(host: str, port: int, sender: str, starttls: bool, user: str, password: str) -> Email:
    """A school's own mail server (``SchoolNotifySettings.smtp_*``)."""
    return Email(host, port, sender=sender, starttls=starttls, user=user, password=password)
