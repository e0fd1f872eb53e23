"""A generated demo school, written as the roster files a school would import."""

from __future__ import annotations

import csv
import random
from pathlib import Path

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "子涵欣怡梓轩浩然雨桐一诺宇航思远佳琪博文嘉懿俊杰诗涵梦琪皓轩"
RELATIONS = ("父亲", "母亲", "祖父", "祖母", "外公", "外婆")


def write_demo_roster(folder: Path, *, classes: int = 2, students: int = 60, guardians: int = 80, seed: int = 7) -> tuple[Path, Path]:
    """Write 学生.csv and 家长.csv (Chinese headers, UTF-8) and return their paths."""
    rng = random.Random(seed)
    used_cards: set[str] = set()

    def card() -> str:
        while True:
            uid = "".join(rng.choice("0123456789ABCDEF") for _ in range(8))
            if uid not in used_cards:
                used_cards.add(uid)
                return uid

    def name(surname: str | None = None) -> str:
        given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        return (surname or rng.choice(SURNAMES)) + given

    folder.mkdir(parents=True, exist_ok=True)
    kids = []
    for i in range(students):
        kids.append(
            {
                "学号": f"2026{i + 1:04d}",
                "姓名": name(),
                "年级": "三年级",
                "班级": f"{i % classes + 1}班",
                "卡号": card(),
                "建档立卡": "是" if i % 20 == 0 else "否",
            }
        )
    students_path = folder / "学生.csv"
    with students_path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(kids[0]))
        writer.writeheader()
        writer.writerows(kids)

    rows = []
    for i in range(guardians):
        kid = kids[i % students]
        rows.append(
            {
                "姓名": name(kid["姓名"][0]),
                "关系": RELATIONS[(i // students) * 2 + i % 2],
                "手机": f"13{rng.randrange(8, 10)}{rng.randrange(10**8):08d}",
                "卡号": card(),
                "学生学号": kid["学号"],
                "可接送": "否" if i == guardians - 1 else "是",
                # One custody order, so the demo can show a refused pickup.
                "禁止接送": "是" if i == guardians - 1 else "否",
                "自行离校": "是" if i % 15 == 3 else "否",
            }
        )
    guardians_path = folder / "家长.csv"
    with guardians_path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return students_path, guardians_path
