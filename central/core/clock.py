"""Central's clock and its time helpers, once: the current time, stored times read back, a school's day.

Every stored time is UTC; a school's day (a session's date, a code's day, a link's dates) is the
school's own local date in its zone (``School.timezone``, e.g. ``Asia/Shanghai``), which from 16:00Z
on is already tomorrow in Shanghai.

Call these through the module (``from central.core import clock``, then ``clock.utcnow()``), never
imported by name: a test then fixes the time for all of central with one
``monkeypatch.setattr(clock, "utcnow", ...)`` (or ``clock.local_today`` for a fixed school date), and
``local_now``/``local_today`` follow ``utcnow``. The tables' ``default_factory=utcnow`` are bound at
import and do not follow a patch.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Protocol, overload
from zoneinfo import ZoneInfo


class Zoned(Protocol):
    """Anything with a zone name, in practice a ``School`` (core's tables import this module)."""

    @property
    def timezone(self) -> str: ...


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC: the one place central reads the wall clock."""
    return datetime.now(UTC)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime; ``None`` stays ``None``.

    SQLite keeps no zone and hands a ``DateTime(timezone=True)`` column back naive (a raw table
    read, outside ``UTCDateTime``); such a value is UTC, because every stored time is. An aware
    value (PostgreSQL's, in the connection's zone) is converted to UTC.
    """
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def zone(school: Zoned) -> ZoneInfo:
    """The school's zone (its ``timezone`` is checked when the school is created)."""
    return ZoneInfo(school.timezone)


def to_local(value: datetime, school: Zoned) -> datetime:
    """A stored time (naive from SQLite counts as UTC) in the school's zone, for showing or for its date."""
    return as_utc(value).astimezone(zone(school))


def local_now(school: Zoned) -> datetime:
    """The current time in the school's zone."""
    return to_local(utcnow(), school)


def local_today(school: Zoned) -> date:
    """The school's date now: the day codes, links, sessions and the kiosks' roster count in."""
    return local_now(school).date()
