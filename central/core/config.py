"""Central settings: environment ``SCHOOLGATE_*`` (and an optional TOML file), built once at start."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.protocol import DEFAULT_PREFIX

DEV_API_TOKEN = "dev-token-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCHOOLGATE_", extra="ignore")

    environment: str = "development"
    """``development`` allows the default API token; anything else refuses it."""
    database_url: str = "sqlite:///var/central/schoolgate.sqlite3"
    """SQLAlchemy URL; ``postgresql+psycopg://…`` for PostgreSQL."""
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    """Broker central subscribes to and publishes rosters and acks on."""
    topic_prefix: str = DEFAULT_PREFIX
    api_token: SecretStr = SecretStr(DEV_API_TOKEN)
    """Bearer token for /api/v1 until users and roles exist."""
    timezone: str = "Asia/Shanghai"
    """Default zone of a new school: times are stored in UTC and shown in the school's zone."""
    ingest_batch: int = 500
    """Most events stored in one transaction."""

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> Settings:
        if self.environment != "development" and self.api_token.get_secret_value() == DEV_API_TOKEN:
            raise ValueError("SCHOOLGATE_API_TOKEN must be set outside development")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url
        # Accept the plain form people copy from PostgreSQL docs; psycopg 3 is the driver we ship.
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        elif url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url[len("postgres://") :]
        return url

    @classmethod
    def load(cls, config: Path | None = None, **overrides: object) -> Settings:
        values: dict[str, object] = {}
        if config:
            values.update(tomllib.loads(config.read_text(encoding="utf-8")).get("central", {}))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
