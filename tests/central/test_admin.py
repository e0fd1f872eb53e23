"""The administrator's commands as functions (central/admin.py): what they store, and what they do not."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import sqlalchemy as sa

from central import admin, roster
from central.core.config import Settings
from central.errors import Invalid
from gateway.mqtt import free_port

TABLES = ("school", "school_class", "student", "guardian", "guardian_link", "card", "audit_log")


def settings_for(tmp_path: Path) -> Settings:
    # No broker answers here: publishing is not what these tests look at.
    return Settings(database_url=f"sqlite:///{tmp_path / 'c.sqlite3'}", mqtt_url=f"mqtt://127.0.0.1:{free_port()}")


def students_file(tmp_path: Path) -> Path:
    path = tmp_path / "学生.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["学号", "姓名", "年级", "班级", "卡号", "建档立卡"],
                                 ["1001", "王一", "三年级", "1班", "04A1B2C3", "否"],
                                 ["1002", "李二", "三年级", "1班", "", "否"]])
    return path


def counts(settings: Settings) -> dict[str, int]:
    engine = sa.create_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            return {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in TABLES}
    finally:
        engine.dispose()


NOTHING = dict.fromkeys(TABLES, 0)


def test_an_import_into_a_school_id_kiosks_cannot_use_stores_nothing(tmp_path):
    settings = settings_for(tmp_path)
    with pytest.raises(Invalid) as refused:
        admin.import_files(settings, school="示范 小学", students=students_file(tmp_path), guardians=None)
    assert "示范 小学" in str(refused.value) and "A-Za-z0-9" not in str(refused.value)
    assert "letters, digits, - or _" in refused.value.text("en")
    assert counts(settings) == NOTHING


def test_an_import_whose_roster_step_fails_stores_nothing_of_it(tmp_path, monkeypatch):
    settings = settings_for(tmp_path)

    def broken(*_args, **_kw):
        raise RuntimeError("the roster could not be built")

    monkeypatch.setattr(roster, "refresh", broken)
    with pytest.raises(RuntimeError):
        admin.import_files(settings, school="s1", students=students_file(tmp_path), guardians=None)
    assert counts(settings) == NOTHING  # school, students and card commit with the roster version or not at all
