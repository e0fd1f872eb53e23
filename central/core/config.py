"""Central settings: environment ``SCHOOLGATE_*`` (and an optional TOML file), built once at start."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

from pydantic import field_validator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from central.core.errors import Invalid
from gateway.protocol import DEFAULT_PREFIX

DEV_API_TOKEN = "dev-token-change-me"
# A service token acts as the district: off the loopback it must be a real secret, not a word.
MIN_OPEN_TOKEN_BYTES = 32

def is_loopback(host: str) -> bool:
    """Whether a listen address is reachable from this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything: treat it as open


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCHOOLGATE_", extra="ignore")

    environment: str = "development"
    """``development`` allows the default API token; anything else refuses it."""
    database_url: str = "sqlite:///var/central/schoolgate.sqlite3"
    """SQLAlchemy URL; ``postgresql+psycopg://…`` for PostgreSQL."""
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    """Broker central subscribes to and publishes rosters and acks on."""
    topic_prefix: str = DEFAULT_PREFIX
    signing_key_file: Path = Path("var/central/signing.key")
    """Central's Ed25519 key (PEM), made on first start and kept: it signs acks and rosters, and
    kiosks are given its public half at registration (``register-kiosk`` prints it)."""
    api_token: SecretStr = SecretStr(DEV_API_TOKEN)
    """Service token for machines (scripts, the demo): a bearer token acting with the district role.
    Empty turns it off; people log in as users (``POST /api/v1/auth/login``)."""
    metrics_token: SecretStr = SecretStr("")
    """Bearer token a Prometheus scraper presents at ``/metrics``; empty: ``/metrics`` answers only
    clients on this machine (loopback), anyone else gets 403."""
    token_ttl_minutes: int = Field(720, ge=5, le=7 * 24 * 60)
    """Lifetime of a login token; 12 hours covers one school day."""
    login_max_failures: int = Field(10, ge=3)
    """Consecutive wrong passwords from one source (address) that lock the account for that source."""
    login_lock_minutes: int = Field(15, ge=1)
    """The first lock's length; each further lock in a row from the same source lasts twice as long."""
    pickup_code_digits: int = Field(6, ge=6, le=10)
    """Length of a one-time pickup code (digits a guardian reads out at the gate)."""
    photo_max_bytes: int = Field(5_000_000, ge=10_000)
    """Largest photo upload accepted; only the thumbnail is kept."""
    request_max_bytes: int = Field(262_144, ge=4_096)
    """Largest request body (JSON, forms), refused with a 413 before it is read: 256 KiB is far above
    any form or API call here, and a login needs a few hundred bytes."""
    upload_max_bytes: int = Field(6_000_000, ge=4_096)
    """Largest ``multipart/form-data`` body (photo uploads): the photo plus the form around it, so
    above ``photo_max_bytes``."""
    photo_max_pixels: int = Field(16_000_000, ge=100_000, le=40_000_000)
    """Most pixels (width × height) of an uploaded photo, read from its header before decoding: a
    face photo from a phone fits; a small file that would unpack to gigabytes (a decompression bomb) not."""
    thumbnail_px: int = Field(160, ge=32, le=640)
    """Longest side of a stored thumbnail, in pixels: enough to recognise a face on the kiosk."""
    kiosk_request_skew_s: int = Field(300, ge=10)
    """How far a kiosk's signed HTTP request time may be from central's clock."""
    fee_cap_fen: int = Field(10_000, ge=0)
    """P7.2: the most a school may charge per student per month, in fen (district setting; 100 CNY)."""
    subsidy_per_child_month_fen: int = Field(0, ge=0)
    """P7.1: the government subsidy per enrolled child per month, in fen (district setting; 0: none).
    Each monthly statement carries it for its child (``rules.Subsidy``)."""
    subsidy_per_period_fen: int = Field(0, ge=0)
    """P7.1: the government subsidy per period served, in fen (district setting; 0: none)."""
    document_font: Path | None = None
    """A font file for PDFs (statements, reports) with Chinese glyphs (TrueType or OpenType, ``.ttc``
    too); unset, Noto Sans CJK SC from Debian's ``fonts-noto-cjk`` is found by fontconfig or at
    ``/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc``."""
    document_font_index: int | None = Field(None, ge=0)
    """The face inside a font collection (``.ttc``); unset, the Simplified Chinese one (``… SC``)."""
    timezone: str = "Asia/Shanghai"
    """Default zone of a new school: times are stored in UTC and shown in the school's zone."""
    ingest_batch: int = 500
    """Most events stored in one transaction."""
    period_minutes: int = Field(40, ge=10, le=120)
    """P3.2: one period (学时)."""
    max_periods: int = Field(2, ge=1, le=6)
    """P3.2: the most periods a session may last after dismissal."""
    summer_from: str = Field("05-01", pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
    """P3.2: month-day the summer timetable starts, where a term does not say (MM-DD)."""
    winter_from: str = Field("10-01", pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
    """P3.2: month-day the winter timetable starts, where a term does not say (MM-DD)."""
    ratio_max: int = Field(30, ge=1)
    """P9.2: most students per staff member on duty before a session is flagged."""
    checkin_grace_minutes: int = Field(10, ge=0)
    """Safety invariant 4: an enrolled child not checked in this long after the start is absent."""
    pickup_grace_minutes: int = Field(15, ge=0)
    """Safety invariant 3: a child still on site this long after the end raises an alert."""
    roster_days_ahead: int = Field(2, ge=0, le=14)
    """Sessions of today and this many following days go to kiosks, so a kiosk offline overnight still knows them."""
    roster_refresh_minutes: float = Field(10.0, gt=0)
    """How often every school's roster is rebuilt, so the sessions kiosks hold follow the days."""
    live_refresh_seconds: float = Field(20.0, gt=0, le=300)
    """How long an open live page (/teacher, /rollcall) waits for a change before it is sent its roster
    again anyway (the clock alone turns a child absent or overdue), and its login checked again; spread
    ±25 % so pages opened together do not refresh together. A reverse proxy's read timeout must exceed it."""
    gate_silent_minutes: float = Field(2.0, gt=0)
    """A gate central has heard nothing from for this long while a session of its school runs is a
    ``gate_silent`` safety incident (once per silence); checked every ``gate_check_seconds``."""
    gate_check_seconds: float = Field(30.0, gt=0)
    notify_check_seconds: float = Field(2.0, gt=0)
    """How often the outbox is looked at for notifications due (central/notifications/outbox.py); a new
    notification wakes the sender at once."""
    notify_send: bool = True
    """False: central stores notifications but never sends them (tests send with ``outbox.dispatch_due``)."""
    notify_sms_url: str = ""
    """The SMS gateway's URL template (``{to}``, ``{text}``, ``{id}``); empty: no SMS is sent (they wait)."""
    notify_smtp_host: str = ""
    """The SMTP server for email notifications; empty: no email is sent (they wait)."""
    notify_smtp_port: int = Field(25, gt=0, lt=65536)
    notify_smtp_starttls: bool = False
    notify_smtp_user: str = ""
    """A login at the SMTP server (with ``notify_smtp_password``); empty: none. A school may set its own
    SMS gateway and mail server (``PUT /schools/{s}/notification-settings``)."""
    notify_smtp_password: str = ""
    notify_email_from: str = "schoolgate@localhost"
    ingest_partition: str | None = Field(None, pattern=r"^\d+/[1-9]\d*$")
    """``I/N``: this ingest worker stores the kiosks whose key hashes to I of N (one writer per
    kiosk, in order); the alternative to a shared subscription for several workers."""
    ingest_shared_group: str | None = None
    """MQTT 5 shared subscription group (e.g. ``central``) for several ingest workers sharing the
    event stream; Mosquitto or EMQX with PostgreSQL only."""
    serve_ingest: bool = True
    """Whether ``central serve`` stores events itself. False: it only serves HTTP, publishes rosters and
    follows the schools' feeds for its live pages, and ``schoolgate central ingest`` workers (one, or
    several with ``ingest_partition``) store the events — the ingest then has a process, and an
    interpreter's lock, of its own."""
    event_retention_years: int = Field(2, ge=1, le=100)
    """School years of events and incidents kept in the live tables on PostgreSQL: the current one and
    the ones before it (2: the current and the previous; a school year starts on 1 September). Older
    months are detached into ``archive_`` tables by ``schoolgate central partitions`` (audited)."""
    clock_skew_limit_s: float = 5.0
    """A kiosk wall clock further than this from central's is a safety incident."""
    session_secret: SecretStr = SecretStr("")
    """Signs the pages' session cookie (central/web). Empty: a secret made on first use and kept in
    ``session_secret_file``, so logins survive a restart."""
    session_secret_file: Path = Path("var/central/session.secret")
    session_cookie_secure: bool = False
    """Send the pages' session cookie over HTTPS only: set it to true wherever central is served over HTTPS."""

    @model_validator(mode="after")
    def _one_way_to_share_ingest(self) -> Settings:
        # A shared subscription hands each message to one worker; a partition would drop those
        # that landed on the wrong one.
        if self.ingest_partition and self.ingest_shared_group:
            raise ValueError("SCHOOLGATE_INGEST_PARTITION and SCHOOLGATE_INGEST_SHARED_GROUP exclude each other")
        return self

    @model_validator(mode="after")
    def _uploads_hold_a_photo(self) -> Settings:
        if self.upload_max_bytes <= self.photo_max_bytes:
            raise ValueError(
                f"SCHOOLGATE_UPLOAD_MAX_BYTES ({self.upload_max_bytes}) must be above SCHOOLGATE_PHOTO_MAX_BYTES "
                f"({self.photo_max_bytes}): an upload holds the photo and the form around it"
            )
        return self

    @model_validator(mode="after")
    def _two_timetables(self) -> Settings:
        # P3.2: the year has a summer and a winter timetable; one date for both switches names neither.
        if self.summer_from == self.winter_from:
            raise ValueError(
                f"SCHOOLGATE_SUMMER_FROM and SCHOOLGATE_WINTER_FROM are both {self.summer_from}: "
                "the summer and the winter timetables must start on different days"
            )
        return self

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> Settings:
        if self.environment != "development" and self.api_token.get_secret_value() == DEV_API_TOKEN:
            raise ValueError("SCHOOLGATE_API_TOKEN must be set outside development")
        return self

    def check_bind(self, host: str) -> None:
        """Refuse to serve beyond this machine with a guessable service token, whatever ``environment`` says."""
        token = self.api_token.get_secret_value()
        if not token or is_loopback(host):
            return
        if token == DEV_API_TOKEN or len(token.encode()) < MIN_OPEN_TOKEN_BYTES:
            raise Invalid("open_bind_weak_token", host=host, min=MIN_OPEN_TOKEN_BYTES)

    @property
    def partition(self) -> tuple[int, int] | None:
        if not self.ingest_partition:
            return None
        index, count = (int(x) for x in self.ingest_partition.split("/"))
        return index, count

    @field_validator("ingest_partition")
    @classmethod
    def _partition_index_below_count(cls, value: str | None) -> str | None:
        if value:
            index, count = (int(x) for x in value.split("/"))
            if index >= count:
                raise ValueError(f"{value}: the worker index counts from 0 and must be below the count")
        return value

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
