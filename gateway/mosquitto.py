"""Mosquitto as deployed: configuration, password file and ACL generated from the kiosk list.

What it sets and why (ARCHITECTURE.md, "Delivery"; measured: with the defaults a subscriber lost
73-78 % of a 50,000-message flood while the publisher got every PUBACK):
- ``max_queued_messages 0`` and ``max_queued_bytes 0``: no silent drop of queued messages;
- ``persistence true`` with a 1 s autosave: retained rosters and sessions survive a restart;
- no anonymous clients; each kiosk logs in with its own name and a password derived from its
  secret, and the ACL lets it write only its own events and status and read only its own acks and
  its school's roster;
- ``set_tcp_nodelay true``: a tap reaches central in milliseconds, not after a delayed ACK;
- optional TLS listener and an optional bridge to a district broker.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway import protocol
from gateway.mqtt import CENTRAL_USER, kiosk_credentials

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd writes for its "$7$" (PBKDF2-SHA512) hashes


def password_hash(password: str, *, salt: bytes | None = None) -> str:
    """A mosquitto 2 password-file hash, as ``mosquitto_passwd`` makes it."""
    salt = salt or os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


@dataclass(frozen=True)
class KioskLogin:
    school: str
    kiosk: str
    secret: str  # hex


@dataclass(frozen=True)
class Bridge:
    """Forward this school's events and status to a district broker; take acks and rosters back."""

    address: str  # host:port
    username: str | None = None
    password: str | None = None
    schools: tuple[str, ...] = ()
    tls_ca: Path | None = None


@dataclass(frozen=True)
class Tls:
    certfile: Path
    keyfile: Path
    cafile: Path | None = None
    port: int = 8883


def config_text(
    out: Path,
    *,
    port: int,
    bind: str,
    tls: Tls | None = None,
    bridge: Bridge | None = None,
    prefix: str = protocol.DEFAULT_PREFIX,
    user: str | None = None,
) -> str:
    out = out.resolve()
    lines = [
        "# Written by `schoolgate gateway mosquitto-config`; regenerate rather than edit.",
        *([f"user {user}"] if user else []),
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {out / 'passwd'}",
        f"acl_file {out / 'acl'}",
        "",
        "# Keep retained rosters and queued messages across a restart; save every second.",
        "persistence true",
        f"persistence_location {out / 'data'}/",
        "autosave_interval 1",
        "",
        "# Never drop queued QoS 1 messages silently (the default drops past 1000).",
        "max_queued_messages 0",
        "max_queued_bytes 0",
        "",
        "# Send each small message at once: with Nagle's algorithm an ack or an event can wait ~40 ms.",
        "set_tcp_nodelay true",
        "",
        f"listener {port} {bind}",
    ]
    if tls:
        lines += ["", f"listener {tls.port}", f"certfile {tls.certfile}", f"keyfile {tls.keyfile}"]
        if tls.cafile:
            lines.append(f"cafile {tls.cafile}")
    if bridge:
        lines += [
            "",
            "connection district",
            f"address {bridge.address}",
            "cleansession false",
            "bridge_protocol_version mqttv311",
            "restart_timeout 2 30",
        ]
        if bridge.username:
            lines.append(f"remote_username {bridge.username}")
        if bridge.password:
            lines.append(f"remote_password {bridge.password}")
        if bridge.tls_ca:
            lines.append(f"bridge_cafile {bridge.tls_ca}")
        for school in bridge.schools or ("+",):
            base = f"{prefix}/{school}"
            lines += [
                f"topic {base}/+/events out 1",
                f"topic {base}/+/status out 1",
                f"topic {base}/+/ack in 1",
                f"topic {base}/roster in 1",
                f"topic {base}/roster/delta in 1",
            ]
    return "\n".join(lines) + "\n"


def acl_text(kiosks: Iterable[KioskLogin], *, prefix: str = protocol.DEFAULT_PREFIX) -> str:
    lines = [f"user {CENTRAL_USER}", f"topic readwrite {prefix}/#", ""]
    for k in kiosks:
        user, _ = kiosk_credentials(k.school, k.kiosk, k.secret)
        base = f"{prefix}/{k.school}"
        lines += [
            f"user {user}",
            f"topic write {base}/{k.kiosk}/events",
            f"topic readwrite {base}/{k.kiosk}/status",
            f"topic read {base}/{k.kiosk}/ack",
            f"topic read {base}/roster",
            f"topic read {base}/roster/delta",
            "",
        ]
    return "\n".join(lines)


def passwd_text(kiosks: Iterable[KioskLogin], *, central_password: str) -> str:
    lines = [f"{CENTRAL_USER}:{password_hash(central_password)}"]
    for k in kiosks:
        user, password = kiosk_credentials(k.school, k.kiosk, k.secret)
        lines.append(f"{user}:{password_hash(password)}")
    return "\n".join(lines) + "\n"


def write(
    out: Path,
    *,
    kiosks: list[KioskLogin],
    central_password: str,
    port: int = 1883,
    bind: str = "0.0.0.0",
    tls: Tls | None = None,
    bridge: Bridge | None = None,
    prefix: str = protocol.DEFAULT_PREFIX,
    user: str | None = None,
) -> Path:
    """Write mosquitto.conf, passwd and acl into ``out``; returns the config file's path.

    ``user`` is the account mosquitto runs as (it drops root for it): the files and the
    persistence folder are given to it, since the password file must be readable by it alone.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    conf = out / "mosquitto.conf"
    text = config_text(out, port=port, bind=bind, tls=tls, bridge=bridge, prefix=prefix, user=user)
    conf.write_text(text, encoding="utf-8")
    for name, text in (("passwd", passwd_text(kiosks, central_password=central_password)), ("acl", acl_text(kiosks, prefix=prefix))):
        path = out / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)  # mosquitto 2.0 warns about, and later versions refuse, readable files
    if user and os.geteuid() == 0:
        for path in (out / "data", out / "passwd", out / "acl"):
            shutil.chown(path, user)
    return conf
