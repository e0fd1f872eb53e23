"""Central's clock (``central.core.clock``): stored times read back as UTC, and a school's own day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from central.core import audit, clock
from central.core.audit import AuditLog
from central.schools.models import School

SHANGHAI = School(code="s1", name="示范小学", timezone="Asia/Shanghai")
URUMQI = School(code="s2", name="乌鲁木齐一小", timezone="Asia/Urumqi")  # UTC+6, no summer time
LOS_ANGELES = School(code="s3", name="LA", timezone="America/Los_Angeles")  # UTC-8 in December


def _fix_clock(monkeypatch, at: datetime) -> None:
    monkeypatch.setattr(clock, "utcnow", lambda: at)


def test_a_naive_time_read_back_from_sqlite_is_utc():
    engine = sa.create_engine("sqlite://")
    table = sa.Table("t", sa.MetaData(), sa.Column("at", sa.DateTime(timezone=True)))
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"at": datetime(2026, 12, 1, 8, 30)}])  # stored as UTC, no zone kept
        raw = conn.execute(sa.select(table.c.at)).scalar_one()
    assert raw.tzinfo is None  # what SQLite hands back
    assert clock.as_utc(raw) == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    assert clock.as_utc(raw).utcoffset() == timedelta(0)
    assert clock.to_local(raw, SHANGHAI) == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)  # the same instant
    assert clock.to_local(raw, SHANGHAI).isoformat() == "2026-12-01T16:30:00+08:00"


def test_an_aware_time_is_converted_to_utc_and_none_stays_none():
    eight = timezone(timedelta(hours=8))
    assert clock.as_utc(datetime(2026, 12, 2, 0, 15, tzinfo=eight)).isoformat() == "2026-12-01T16:15:00+00:00"
    assert clock.as_utc(datetime(2026, 12, 1, 16, 15, tzinfo=UTC)).isoformat() == "2026-12-01T16:15:00+00:00"
    assert clock.as_utc(None) is None


@pytest.mark.parametrize(
    ("school", "now", "today"),
    [
        (SHANGHAI, datetime(2026, 12, 1, 15, 59, 59, tzinfo=UTC), date(2026, 12, 1)),
        (SHANGHAI, datetime(2026, 12, 1, 16, 0, 0, tzinfo=UTC), date(2026, 12, 2)),  # midnight in Shanghai
        (URUMQI, datetime(2026, 12, 1, 16, 0, 0, tzinfo=UTC), date(2026, 12, 1)),  # 22:00 there
        (URUMQI, datetime(2026, 12, 1, 18, 0, 0, tzinfo=UTC), date(2026, 12, 2)),
        (LOS_ANGELES, datetime(2026, 12, 1, 7, 59, 59, tzinfo=UTC), date(2026, 11, 30)),
        (LOS_ANGELES, datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC), date(2026, 12, 1)),
    ],
    ids=["shanghai-15:59:59Z", "shanghai-16:00Z", "urumqi-16:00Z", "urumqi-18:00Z", "la-07:59:59Z", "la-08:00Z"],
)
def test_a_schools_today_is_its_own_local_date(monkeypatch, school, now, today):
    _fix_clock(monkeypatch, now)
    assert clock.local_today(school) == today


def test_local_now_is_the_clock_in_the_schools_zone(monkeypatch):
    _fix_clock(monkeypatch, datetime(2026, 12, 1, 16, 0, 0, tzinfo=UTC))
    assert clock.zone(SHANGHAI).key == "Asia/Shanghai"
    assert clock.local_now(SHANGHAI).isoformat() == "2026-12-02T00:00:00+08:00"
    assert clock.local_now(URUMQI).isoformat() == "2026-12-01T22:00:00+06:00"
    assert clock.local_now(LOS_ANGELES).isoformat() == "2026-12-01T08:00:00-08:00"


def test_utcnow_is_aware_utc():
    assert clock.utcnow().utcoffset() == timedelta(0)


def test_one_patch_of_clock_utcnow_sets_the_time_central_records(monkeypatch):
    # The audit log takes its time from central.core.clock, so a test fixes it in one place.
    _fix_clock(monkeypatch, datetime(2030, 9, 3, 1, 2, 3, tzinfo=UTC))
    engine = sa.create_engine("sqlite://")
    AuditLog.__table__.create(engine)
    with Session(engine) as session:
        audit.record(session, actor="test", action="school.create", entity="school:s1", after={"code": "s1"})
        session.commit()
        row = session.exec(select(AuditLog)).one()
    assert row.at == datetime(2030, 9, 3, 1, 2, 3, tzinfo=UTC)
