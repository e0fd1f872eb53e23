"""A central app on SQLite with two schools, groups, children, guardians, a kiosk and one user per role."""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sgtest import fresh_postgres_database
from sqlmodel import Session

from central.accounts import access as accounts

from central.accounts import users
from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.main import create_app
from central.programme.models import Enrollment, InterestGroup, Staff
from central.schools.models import Guardian, GuardianLink, School, SchoolClass, Student
from central.schools.models import Kiosk

PASSWORD = "correct horse battery staple"
SERVICE_TOKEN = "service-token-for-tests-0123456789"
KIOSK_SECRET = "ab" * 32


@dataclass
class World:
    client: TestClient
    settings: Settings
    engine: object
    tokens: dict[str, str] = field(default_factory=dict)  # user name -> bearer token
    ids: dict[str, int] = field(default_factory=dict)

    def as_(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def session(self) -> Session:
        return Session(self.engine)


# user name -> (role, school, guardian key, staff key)
USERS = {
    "district": ("district", None, None, None),
    "admin1": ("school_admin", "s1", None, None),
    "admin2": ("school_admin", "s2", None, None),
    "teacherA": ("teacher", "s1", None, "staffA"),
    "teacherB": ("teacher", "s1", None, "staffB"),
    "guard1": ("guard", "s1", None, None),
    "finance1": ("finance", "s1", None, None),
    "parentA": ("guardian", "s1", "gA", None),
    "parentB": ("guardian", "s1", "gB", None),
    "parentBarred": ("guardian", "s1", "gBarred", None),
}


def _seed(session: Session) -> dict[str, int]:
    ids: dict[str, int] = {}

    def add(key: str, row):
        session.add(row)
        session.flush()
        ids[key] = row.id
        return row

    s1 = add("s1", School(code="s1", name="示范小学"))
    s2 = add("s2", School(code="s2", name="第二小学"))
    c1 = add("c1", SchoolClass(school_id=s1.id, grade="三年级", name="1班"))
    c2 = add("c2", SchoolClass(school_id=s2.id, grade="三年级", name="1班"))
    for no, cls in (("A1", c1), ("B1", c1), ("C1", c1)):
        add(no, Student(school_id=s1.id, class_id=cls.id, student_no=no, name=f"学生{no}"))
    add("X1", Student(school_id=s2.id, class_id=c2.id, student_no="X1", name="学生X1"))
    for key, name, phone in (("gA", "王父", "13812345678"), ("gB", "李母", "13987654321"), ("gBarred", "赵某", "13700001111")):
        add(key, Guardian(school_id=s1.id, name=name, phone=phone))
    session.add_all(
        [
            GuardianLink(guardian_id=ids["gA"], student_id=ids["A1"], relation="父亲"),
            GuardianLink(guardian_id=ids["gB"], student_id=ids["B1"], relation="母亲"),
            GuardianLink(guardian_id=ids["gBarred"], student_id=ids["A1"], relation="其他", may_pick_up=False, barred=True),
        ]
    )
    for key in ("staffA", "staffB"):
        add(key, Staff(school_id=s1.id, name=key, kind="teacher", created_by="test"))
    for key, staff in (("groupA", "staffA"), ("groupB", "staffB")):
        add(
            key,
            InterestGroup(
                school_id=s1.id, name=key, category="homework", capacity=30, place="101",
                grades=["三年级"], weekdays=[1, 2, 3, 4, 5], staff_id=ids[staff], created_by="test",
            ),
        )
    for student, group in (("A1", "groupA"), ("B1", "groupB")):
        session.add(Enrollment(school_id=s1.id, student_id=ids[student], group_id=ids[group], state="active", application="申请"))
    add("gate-1", Kiosk(school_id=s1.id, code="gate-1", secret=KIOSK_SECRET))
    session.commit()
    return ids


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """An empty database at the newest schema, made once: each test copies it instead of migrating."""
    path = tmp_path_factory.mktemp("template") / "central.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture
def world(request, tmp_path, monkeypatch, migrated_db) -> World:
    """SQLite by default; ``@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)`` for both."""
    # argon2's real cost is for production; tests need only the same code path.
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=256, parallelism=1))
    with ExitStack() as stack:
        if getattr(request, "param", "sqlite") == "postgres":
            database_url = stack.enter_context(fresh_postgres_database(migrated=True))
        else:
            shutil.copy(migrated_db, tmp_path / "central.sqlite3")
            database_url = f"sqlite:///{tmp_path / 'central.sqlite3'}"
        yield from _world(database_url)


def _world(database_url: str):
    # No sender thread: tests send with outbox.dispatch_due and an injected now.
    settings = Settings(database_url=database_url, api_token=SERVICE_TOKEN, notify_check_seconds=3600, notify_send=False)
    app = create_app(settings, with_bus=False)
    with TestClient(app) as client:
        w = World(client, settings, app.state.engine)
        with w.session() as session:
            w.ids = _seed(session)
            for name, (role, school, guardian, staff) in USERS.items():
                users.create_user(
                    session, actor=accounts.CLI, username=name, password=PASSWORD, role=role, school=school,
                    guardian_id=w.ids.get(guardian), staff_id=w.ids.get(staff),
                )
        for name in USERS:
            r = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
            assert r.status_code == 200, r.text
            w.tokens[name] = r.json()["access_token"]
        w.tokens["service"] = SERVICE_TOKEN
        yield w
