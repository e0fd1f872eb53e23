"""One small school at the gate, for the engine tables and the console tests.

Monday 2026-11-30 in Asia/Shanghai. Session "10" (课后托管, group 1) runs 16:00–17:20 local
(08:00–09:20 UTC); session "11" (机器人, group 2) 16:30–17:30 local.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from gateway import pickup, protocol
from kiosk.roster import Roster

DAY = date(2026, 11, 30)
KEY = bytes(range(32))  # the kiosk's secret
KIOSK = "k1"
CODE = "123456"
GUARD_CARD = "6B6B6B6B"  # 刘师傅 (st2), the school's guard: signs in at the gate's console


def local(hhmm: str, day: date = DAY) -> datetime:
    """A school-local wall time on DAY, as the UTC instant the engine works with."""
    hours, minutes = (int(x) for x in hhmm.split(":")[:2])
    seconds = int(hhmm.split(":")[2]) if hhmm.count(":") == 2 else 0
    return datetime(day.year, day.month, day.day, hours, minutes, seconds, tzinfo=UTC) - timedelta(hours=8)


NOW = local("16:30")


def snapshot(*, generated_at: str = "2026-11-30T00:00:00+00:00", version: int = 3) -> dict:
    return {
        "v": 1,
        "school": "s1",
        "version": version,
        "generated_at": generated_at,
        "students": [
            {"id": "S1", "name": "王子涵", "class": "三年级1班", "cards": ["04A1B2C3"], "groups": ["1"]},
            {"id": "S2", "name": "李欣怡", "class": "三年级2班", "cards": ["04112233445566"], "groups": ["1"], "may_leave_alone": True},
            {"id": "S3", "name": "张浩然", "class": "三年级2班", "cards": ["AABBCCDD"], "enrolled": False},
            {"id": "S4", "name": "赵一诺", "class": "四年级1班", "cards": ["0000000A"], "groups": ["2"]},
            {"id": "S5", "name": "陈宇航", "class": "四年级1班", "cards": ["0000000B"], "groups": ["9"]},
        ],
        "guardians": [
            {"id": "g1", "name": "王建国", "relation": "父亲", "phone_masked": "138****1234", "cards": ["DEADBEEF"],
             "links": [{"student": "S1"}]},
            {"id": "g2", "name": "李丽", "relation": "母亲", "phone_masked": "139****5678", "cards": ["CAFEBABE"],
             "links": [{"student": "S2"}]},
            {"id": "g3", "name": "赵外婆", "relation": "外婆", "phone_masked": "137****0000", "cards": ["11223344"],
             "links": [{"student": "S4", "may_pick_up": False}]},
            {"id": "g4", "name": "陈叔叔", "relation": "叔叔", "phone_masked": "136****1111", "cards": ["55667788"],
             "links": [{"student": "S5", "valid_until": "2026-11-01"}]},
            {"id": "g5", "name": "王某", "relation": "父亲", "phone_masked": "135****2222", "cards": ["99AABBCC"],
             "links": [{"student": "S1", "may_pick_up": False, "barred": True}]},
        ],
        "staff": [{"id": "st1", "name": "李老师", "kind": "teacher", "cards": ["5A5A5A5A"]},
                  {"id": "st2", "name": "刘师傅", "kind": "guard", "cards": [GUARD_CARD], "guard": True}],
        "sessions": [
            {"id": "10", "group": "1", "group_name": "课后托管", "place": "教学楼201", "date": DAY.isoformat(),
             "start": "2026-11-30T08:00:00Z", "end": "2026-11-30T09:20:00Z",
             "absent_after": "2026-11-30T08:10:00Z", "overdue_after": "2026-11-30T09:35:00Z", "staff": ["st1"]},
            {"id": "11", "group": "2", "group_name": "机器人", "place": "科技楼", "date": DAY.isoformat(),
             "start": "2026-11-30T08:30:00Z", "end": "2026-11-30T09:30:00Z"},
        ],
        "codes": [
            {"id": "7", "student": "S1", "day": DAY.isoformat(), "person": "王舅舅",
             "digests": {KIOSK: pickup.code_digest(KEY, school="s1", verifier=KIOSK, student="S1", day=DAY, code=CODE)}},
        ],
    }


def sign_in(gate) -> None:
    """The guard taps their staff card at this gate: signed in, so pickups can be confirmed."""
    from hardware import CardTap

    assert gate.handle(CardTap(GUARD_CARD, "sim", "sim", gate.clock())).outcome == "guard_signed_in"


def roster(**kwargs) -> Roster:
    return Roster.from_snapshot(protocol.RosterSnapshot.model_validate(snapshot(**kwargs)))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
