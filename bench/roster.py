"""A generated roster of a large school, as central would send it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway import protocol

ZONE = ZoneInfo("Asia/Shanghai")


def session_now(group: str = "1") -> dict:
    """A care session open for check-in now, whenever the benchmark runs (the gate checks the window)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return {"id": "1", "group": group, "group_name": "课后托管", "place": "教学楼", "date": now.astimezone(ZONE).date().isoformat(),
            "start": (now - timedelta(minutes=10)).isoformat(), "end": (now + timedelta(hours=3)).isoformat()}


def snapshot(school: str, students: int = 3000, guardians: int = 7000, version: int = 1) -> protocol.RosterSnapshot:
    kids = [
        {
            "id": f"2026{i:05d}",
            "name": f"学生{i}",
            "class": f"{i % 6 + 1}年级{i % 10 + 1}班",
            "cards": [f"{0x04000000 + i:08X}"],
            "may_leave_alone": i % 7 == 0,
            "groups": ["1"],
        }
        for i in range(students)
    ]
    adults = [
        {
            "id": f"g{i}",
            "name": f"家长{i}",
            "relation": "母亲" if i % 2 else "父亲",
            "phone_masked": f"138****{i % 10000:04d}",
            "cards": [f"{0x08000000 + i:08X}"],
            "links": [{"student": kids[i % students]["id"], "may_pick_up": True, "barred": i % 97 == 0}],
        }
        for i in range(guardians)
    ]
    return protocol.RosterSnapshot.model_validate(
        {"v": 1, "school": school, "version": version, "generated_at": datetime.now(UTC).isoformat(), "students": kids,
         "guardians": adults, "sessions": [session_now()]}
    )
