"""What the domains' tables share: the UTC column type, row ids and local times as input.

Times are stored in UTC (timezone-aware columns); money in integer fen.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated

import sqlalchemy as sa
from pydantic import AfterValidator
from sqlmodel import Field

from central.core.clock import as_utc
from central.core.errors import Invalid


def _local_time(value: time | None) -> time | None:
    # A time of day is the school's local time; an offset would be dropped on SQLite and compared
    # against naive times later (a 500). Raised as the service error, so the answer is a localized 422.
    if value is not None and value.tzinfo is not None:
        raise Invalid("time_with_offset", value=value.isoformat())
    return value


# Row ids are 32-bit INTEGER columns on PostgreSQL; a bigger number names nothing, and SQLite
# cannot even compare one past 64 bits. An id given as input is bounded, so such input is a 422, not a 500.
MAX_ID = 2**31 - 1


RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
"""The id of a row, as input (a body field or a query parameter)."""


LocalTime = Annotated[time, AfterValidator(_local_time)]
"""A time of day in the school's zone, as input: one with an offset (``16:00:00+08:00``) is refused."""


class UTCDateTime(sa.TypeDecorator):
    """A point in time, always handed back timezone-aware in UTC.

    PostgreSQL keeps the zone (timestamptz); SQLite keeps none and hands back naive values, which
    every reader would otherwise have to remember are UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a stored time needs a zone: {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return as_utc(value)


def utc_column(**kw) -> sa.Column:
    return sa.Column(UTCDateTime(), **kw)
