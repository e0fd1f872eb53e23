"""Mosquitto as deployed: configuration, password file and ACL generated from the kiosk list.

What it sets and why (ARCHITECTURE.md, "Delivery"; measured: with the defaults a subscriber lost
73-78 % of a 50,000-message flood while the publisher got every PUBACK):
- ``max_queued_messages 0`` and ``max_queued_bytes 0``: no silent drop of queued messages;
- ``persistence true`` with a 1 s autosave: retained rosters and sessions survive a restart;
- no anonymous clients; each kiosk logs in with its own name and a password derived from its
  secret, and the ACL lets it write only its own events and status and read only its own acks and
  its school's roster;
- the kiosks' listener replaces each client id with the login (``use_username_as_clientid``): a
  kiosk cannot take over another's session by connecting with its client id (MQTT 3.1.1 §3.1.4:
  the broker disconnects the existing client of a reused id). Central's ingest workers all log in
  as ``central`` and need ids of their own, so central has a listener of its own (loopback by
  default) whose password file holds central alone: a kiosk cannot log in there to pick an id.
  ``per_listener_settings true`` gives each listener its own password file and ACL. (Mosquitto
  2.0.12 and later lose messages queued for an offline *persistent* session under that setting,
  eclipse-mosquitto#2618; every client here uses a clean session and retained rosters are kept.)
- every file is written 0600 from its first byte (a temporary file beside it, then an atomic
  rename): the config may hold the bridge's ``remote_password``, the others the logins;
- ``set_tcp_nodelay true``: a tap reaches central in milliseconds, not after a delayed ACK;
- optional TLS listener and an optional bridge to a district broker;
- ``pid_file`` in the output folder: ``reload`` sends the running broker SIGHUP, which rereads the
  password files and ACLs, so a kiosk registered after the broker started logs in without a restart;
- central's password is kept beside the files (``central-password``, 0600): writing the files again
  keeps it, so central's ``SCHOOLGATE_MQTT_URL`` stays valid.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import tempfile
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
    """Forward this school's events and status to a district broker; take acks, rosters and the feed back."""

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


CENTRAL_PORT = 1884  # central's own listener, beside the kiosks' 1883
PID_FILE = "data/mosquitto.pid"  # in data/, which mosquitto owns: it writes the file after dropping root
CENTRAL_PASSWORD_FILE = "central-password"


def central_password(out: Path, given: str | None = None) -> str:
    """Central's broker password: ``given``, else the one kept in ``out``, else a new one; kept in
    ``out`` (0600) so writing the files again does not change it."""
    kept = out / CENTRAL_PASSWORD_FILE
    if given is None and kept.exists():
        stored = kept.read_text(encoding="utf-8").strip()
        if stored:
            return stored
    password = given or secrets.token_urlsafe(24)
    out.mkdir(parents=True, exist_ok=True)
    write_private(kept, password + "\n")
    return password


class NotRunning(Exception):
    """No Mosquitto to reload: no pid file, or no process with its pid."""


def reload(out: Path) -> int:
    """Send SIGHUP to the Mosquitto started with ``out``'s configuration; returns its pid.

    Mosquitto rereads its configuration, password files and ACLs on SIGHUP, keeping every
    connection: a kiosk registered since it started can log in afterwards."""
    pid_path = out / PID_FILE
    try:
        pid = int(pid_path.read_text().strip())
    except (FileNotFoundError, ValueError) as exc:
        raise NotRunning(str(pid_path)) from exc
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError as exc:
        raise NotRunning(str(pid_path)) from exc
    return pid


def config_text(
    out: Path,
    *,
    port: int,
    bind: str,
    tls: Tls | None = None,
    bridge: Bridge | None = None,
    prefix: str = protocol.DEFAULT_PREFIX,
    user: str | None = None,
    central_port: int = CENTRAL_PORT,
    central_bind: str = "127.0.0.1",
) -> str:
    out = out.resolve()
    kiosk_auth = [
        "allow_anonymous false",
        # A kiosk's client id is its login: it cannot connect as another kiosk and push it off.
        "use_username_as_clientid true",
        f"password_file {out / 'passwd'}",
        f"acl_file {out / 'acl'}",
    ]
    lines = [
        "# Written by `schoolgate gateway mosquitto-config`; regenerate rather than edit.",
        *([f"user {user}"] if user else []),
        "# `schoolgate gateway mosquitto-config --reload` sends SIGHUP to this process to reread the logins.",
        f"pid_file {out / PID_FILE}",
        "# Each listener has its own logins: central's holds central alone, the kiosks' the kiosks alone.",
        "per_listener_settings true",
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
        "# Central's ingest workers share one login, each with a client id of its own.",
        f"listener {central_port} {central_bind}",
        "allow_anonymous false",
        f"password_file {out / 'central-passwd'}",
        f"acl_file {out / 'central-acl'}",
        "",
        "# The kiosks.",
        f"listener {port} {bind}",
        *kiosk_auth,
    ]
    if tls:
        lines += ["", f"listener {tls.port}", f"certfile {tls.certfile}", f"keyfile {tls.keyfile}"]
        if tls.cafile:
            lines.append(f"cafile {tls.cafile}")
        lines += kiosk_auth
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
                f"topic {base}/feed in 1",  # the school's feed: central publishes, the school's gates read
            ]
    return "\n".join(lines) + "\n"


def central_acl_text(*, prefix: str = protocol.DEFAULT_PREFIX) -> str:
    return f"user {CENTRAL_USER}\ntopic readwrite {prefix}/#\n"


def central_passwd_text(*, central_password: str) -> str:
    return f"{CENTRAL_USER}:{password_hash(central_password)}\n"


def acl_text(kiosks: Iterable[KioskLogin], *, prefix: str = protocol.DEFAULT_PREFIX) -> str:
    lines = []
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
            # The school's feed: every gate of the school reads it; only central writes it (a gate that
            # could would tell the others a child had gone).
            f"topic read {base}/feed",
            "",
        ]
    return "\n".join(lines)


def passwd_text(kiosks: Iterable[KioskLogin]) -> str:
    lines = []
    for k in kiosks:
        user, password = kiosk_credentials(k.school, k.kiosk, k.secret)
        lines.append(f"{user}:{password_hash(password)}\n")
    return "".join(lines)


def write_private(path: Path, text: str, *, owner: str | None = None) -> None:
    """Replace ``path`` with ``text``, readable by its owner alone from the first byte.

    ``mkstemp`` creates the file 0600 whatever the umask; it is filled, synced and given to
    ``owner`` before ``os.replace`` puts it in place in one step. A reader never sees a
    half-written file, and nobody who held the old file open reads the new secrets through it.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if owner:
            shutil.chown(tmp, owner)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
    central_port: int = CENTRAL_PORT,
    central_bind: str = "127.0.0.1",
) -> Path:
    """Write mosquitto.conf, the kiosks' passwd and acl, and central's central-passwd and
    central-acl into ``out``; returns the config file's path.

    ``user`` is the account mosquitto runs as (it drops root for it): the files and the
    persistence folder are given to it, since the password files must be readable by it alone
    (mosquitto 2.0 warns about, and later versions refuse, readable ones). Every file is 0600.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    owner = user if user and os.geteuid() == 0 else None
    conf = out / "mosquitto.conf"
    files = {
        conf: config_text(out, port=port, bind=bind, tls=tls, bridge=bridge, prefix=prefix, user=user,
                          central_port=central_port, central_bind=central_bind),
        out / "passwd": passwd_text(kiosks),
        out / "acl": acl_text(kiosks, prefix=prefix),
        out / "central-passwd": central_passwd_text(central_password=central_password),
        out / "central-acl": central_acl_text(prefix=prefix),
    }
    for path, text in files.items():
        write_private(path, text, owner=owner)
    if owner:
        # Mosquitto reads the files after dropping root: the folder (made 0700 under umask 077) is its too.
        shutil.chown(out, owner)
        shutil.chown(out / "data", owner)
    return conf
