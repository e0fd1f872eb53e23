"""The administrator's commands as functions (central/admin.py): what they store, and what they do not."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import sqlalchemy as sa

from central import admin
from central.core.config import Settings
from central.core.errors import Conflict, Invalid, Missing
from central.kiosks import roster
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
        admin.import_files(settings, school="示范 小学", students=students_file(tmp_path), guardians=None, create_school=True)
    assert "示范 小学" in str(refused.value) and "A-Za-z0-9" not in str(refused.value)
    assert "letters, digits, - or _" in refused.value.text("en")
    assert counts(settings) == NOTHING


def test_an_import_whose_roster_step_fails_stores_nothing_of_it(tmp_path, monkeypatch):
    settings = settings_for(tmp_path)

    def broken(*_args, **_kw):
        raise RuntimeError("the roster could not be built")

    monkeypatch.setattr(roster, "refresh", broken)
    with pytest.raises(RuntimeError):
        admin.import_files(settings, school="s1", students=students_file(tmp_path), guardians=None, create_school=True)
    assert counts(settings) == NOTHING  # school, students and card commit with the roster version or not at all


def test_an_import_into_a_school_nobody_created_is_refused_unless_it_says_to_create_it(tmp_path):
    settings = settings_for(tmp_path)
    with pytest.raises(Missing) as refused:
        admin.import_files(settings, school="s1", students=students_file(tmp_path), guardians=None)
    assert "--create-school" in refused.value.text("en")
    assert counts(settings) == NOTHING
    result, change = admin.import_files(settings, school="s1", students=students_file(tmp_path), guardians=None,
                                        create_school=True, school_name="示范小学", timezone="Asia/Urumqi")
    assert (result.students_created, change.version) == (2, 1)
    assert _schools(settings) == [("s1", "示范小学", "Asia/Urumqi")]


def test_a_kiosk_of_a_school_nobody_created_is_refused_and_creates_nothing(tmp_path):
    settings = settings_for(tmp_path)
    with pytest.raises(Missing) as refused:
        admin.register_kiosk(settings, school="nosuch", kiosk="gate-1")
    assert "create-school nosuch" in refused.value.text("en")
    assert counts(settings) == NOTHING


@pytest.mark.parametrize(
    ("code", "name", "zone", "error"),
    [
        ("示范 小学", "示范小学", "Asia/Shanghai", "school_code_invalid"),
        ("s1/x", "示范小学", "Asia/Shanghai", "school_code_invalid"),
        ("s" * 65, "示范小学", "Asia/Shanghai", "school_code_invalid"),
        ("s1", "  ", "Asia/Shanghai", "school_name_invalid"),
        ("s1", "名" * 201, "Asia/Shanghai", "school_name_invalid"),
        ("s1", "示范小学", "Mars/Olympus", "school_zone_invalid"),
        ("s1", "示范小学", "../etc/passwd", "school_zone_invalid"),
    ],
)
def test_create_school_refuses_what_kiosks_or_clocks_could_not_use(tmp_path, code, name, zone, error):
    settings = settings_for(tmp_path)
    with pytest.raises(Invalid) as refused:
        admin.create_school(settings, code=code, name=name, timezone=zone)
    assert refused.value.key == error
    assert counts(settings) == NOTHING


def test_create_school_makes_a_school_once(tmp_path):
    settings = settings_for(tmp_path)
    assert admin.create_school(settings, code="s1", name="示范小学") == {
        "school": "s1", "name": "示范小学", "timezone": "Asia/Shanghai"}
    with pytest.raises(Conflict):
        admin.create_school(settings, code="s1", name="别的名字")
    assert _schools(settings) == [("s1", "示范小学", "Asia/Shanghai")]


def _schools(settings: Settings) -> list[tuple]:
    engine = sa.create_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text("SELECT code, name, timezone FROM school ORDER BY code"))]
    finally:
        engine.dispose()
