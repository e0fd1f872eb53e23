"""Kiosk settings: environment ``SCHOOLGATE_KIOSK_*``, an optional TOML file, then the command line."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.protocol import DEFAULT_PREFIX
from kiosk.engine import Rules


class KioskSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCHOOLGATE_KIOSK_", extra="forbid")

    school: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """The school id, as central knows it."""
    kiosk: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """This kiosk's id within the school."""
    reader: str = "sim"
    """Reader spec (``hardware.SPEC_FORMS``): ``sim``, ``nfc:usb``, ``nfc:tty:USB0:pn532``,
    ``nfc:udp:localhost:54321``, ``serial:/dev/ttyUSB0?protocol=rdm6300``, ``keyboard``, …"""
    data_dir: Path = Path("var/kiosk")
    """Where the kiosk keeps its SQLite store (roster copy, state, outbox)."""
    secret: str | None = None
    """Hex HMAC secret shared with central; created on first start when absent."""
    central_key: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    """Central's Ed25519 public key (64 hex digits, from ``register-kiosk``): acks and rosters that
    it does not verify are refused. Kept in the store once given."""
    mqtt_url: str | None = "mqtt://127.0.0.1:1883"
    """Broker URL; empty runs the kiosk offline."""
    topic_prefix: str = DEFAULT_PREFIX
    central_url: str | None = None
    """Central's HTTP address (``http://host:8000``), for the photos on the pickup screen; empty: no photos."""
    photo_sync_minutes: float = Field(10.0, gt=0)
    timezone: str = "Asia/Shanghai"
    """The school's zone: decides what "today" is at the gate."""
    locale: str = Field("zh_CN", pattern=r"^(zh_CN|en)$")
    """Console and message language: zh_CN (default) or en."""
    resend_after: float = 5.0
    """Seconds without ack progress before unacknowledged events are sent again."""
    operator: str | None = Field(None, max_length=64)
    """Who is on duty at this console (a guard's staff id or name): recorded as each event's ``operator``."""
    checkin_before_start_minutes: int = Field(30, ge=0, le=240)
    """Check-in opens this many minutes before a session starts."""
    pair_seconds: int = Field(30, ge=5, le=300)
    """A guardian's card and a child's card within this many seconds, either order, form a pickup request."""
    offline_alert_minutes: int = Field(2, ge=1)
    unacked_alert_minutes: int = Field(5, ge=1)
    roster_max_age_hours: int = Field(24, ge=1)

    def rules(self) -> Rules:
        return Rules(
            before_start=timedelta(minutes=self.checkin_before_start_minutes),
            pair_window=timedelta(seconds=self.pair_seconds),
            offline_after=timedelta(minutes=self.offline_alert_minutes),
            unacked_after=timedelta(minutes=self.unacked_alert_minutes),
            roster_max_age=timedelta(hours=self.roster_max_age_hours),
        )

    @property
    def db_path(self) -> Path:
        return self.data_dir / f"{self.school}-{self.kiosk}.sqlite3"

    @classmethod
    def load(cls, config: Path | None = None, **overrides: object) -> KioskSettings:
        values: dict[str, object] = {}
        if config:
            values.update(tomllib.loads(config.read_text(encoding="utf-8")).get("kiosk", {}))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
