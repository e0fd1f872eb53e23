"""Kiosk settings: environment ``SCHOOLGATE_KIOSK_*``, an optional TOML file, then the command line."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.protocol import DEFAULT_PREFIX


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
    mqtt_url: str | None = "mqtt://127.0.0.1:1883"
    """Broker URL; empty runs the kiosk offline."""
    topic_prefix: str = DEFAULT_PREFIX
    timezone: str = "Asia/Shanghai"
    """The school's zone: decides what "today" is at the gate."""
    locale: str = "zh_CN"
    resend_after: float = 5.0
    """Seconds without ack progress before unacknowledged events are sent again."""

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
