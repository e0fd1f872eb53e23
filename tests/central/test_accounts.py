"""Login, expiry, wrong passwords, lockout, and what an account may be."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from central import accounts
from central.accounts import AuthToken, User
from central.errors import Conflict, Forbidden, Invalid

from .conftest import PASSWORD


def _login(world, username: str, password: str = PASSWORD):
    return world.client.post("/api/v1/auth/login", json={"username": username, "password": password})


def test_login_gives_a_token_stored_only_as_its_hash(world):
    r = _login(world, "admin1")
    assert r.status_code == 200
    body = r.json()
    assert body["role"] == "school_admin" and body["school"] == "s1" and body["token_type"] == "bearer"
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(hours=11) < expires - datetime.now(UTC) <= timedelta(hours=12)
    token = body["access_token"]
    with world.session() as session:
        stored = {row.token_hash for row in session.exec(select(AuthToken))}
        password_hash = session.exec(select(User.password_hash).where(User.username == "admin1")).one()
    assert hashlib.sha256(token.encode()).hexdigest() in stored and token not in stored
    assert password_hash.startswith("$argon2id$") and PASSWORD not in password_hash
    me = world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json() == {"username": "admin1", "role": "school_admin", "school": "s1", "guardian_id": None, "staff_id": None}


def test_wrong_password_and_unknown_user_get_the_same_answer(world):
    wrong, unknown = _login(world, "admin1", "not the password"), _login(world, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "用户名或密码错误"}
    en = world.client.post(
        "/api/v1/auth/login", json={"username": "nobody", "password": "x"}, headers={"Accept-Language": "en-US,en;q=0.8"}
    )
    assert en.json() == {"detail": "Wrong username or password"}


def test_an_expired_token_is_refused(world):
    headers = world.as_("guard1")
    assert world.client.get("/api/v1/me", headers=headers).status_code == 200
    with world.session() as session:
        session.execute(sa.update(AuthToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()
    r = world.client.get("/api/v1/me", headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_logout_and_deactivation_end_tokens(world):
    headers = world.as_("finance1")
    assert world.client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert world.client.get("/api/v1/me", headers=headers).status_code == 401
    token = _login(world, "guard1").json()["access_token"]
    users = {u["username"]: u["id"] for u in world.client.get("/api/v1/users", headers=world.as_("admin1")).json()}
    r = world.client.patch(f"/api/v1/users/{users['guard1']}", json={"active": False}, headers=world.as_("admin1"))
    assert r.status_code == 200 and r.json()["active"] is False
    assert world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert _login(world, "guard1").status_code == 401


def test_too_many_wrong_passwords_lock_the_account(world):
    for _ in range(world.settings.login_max_failures):
        assert _login(world, "teacherA", "wrong password!").status_code == 401
    locked = _login(world, "teacherA")  # even the right password, for a while
    assert locked.status_code == 401 and "锁定" in locked.json()["detail"]
    with world.session() as session:
        session.execute(sa.update(User).where(User.username == "teacherA").values(locked_until=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()
    assert _login(world, "teacherA").status_code == 200


def test_a_school_admin_manages_only_their_school_below_district(world):
    base = {"password": "long enough password", "school": "s1"}
    r = world.client.post("/api/v1/users", json={**base, "username": "guard2", "role": "guard"}, headers=world.as_("admin1"))
    assert r.status_code == 201 and r.json()["school"] == "s1"
    for body in ({**base, "username": "boss", "role": "district", "school": None}, {**base, "username": "guard3", "role": "guard", "school": "s2"}):
        assert world.client.post("/api/v1/users", json=body, headers=world.as_("admin1")).status_code == 403
    listed = {u["username"] for u in world.client.get("/api/v1/users", headers=world.as_("admin2")).json()}
    assert listed == {"admin2"}
    # A school admin of another school cannot even find s1's accounts.
    guard = next(u for u in world.client.get("/api/v1/users", headers=world.as_("admin1")).json() if u["username"] == "guard1")
    assert world.client.patch(f"/api/v1/users/{guard['id']}", json={"active": False}, headers=world.as_("admin2")).status_code == 404


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"username": "x", "role": "guard", "school": "s1"}, Invalid),  # too short a name
        ({"username": "ok-name", "role": "guard", "school": "s1", "password": "short"}, Invalid),
        ({"username": "ok-name", "role": "janitor", "school": "s1"}, Invalid),
        ({"username": "ok-name", "role": "district", "school": "s1"}, Invalid),
        ({"username": "ok-name", "role": "guard"}, Invalid),  # no school
        ({"username": "ok-name", "role": "guardian", "school": "s1"}, Invalid),  # no guardian
        ({"username": "ok-name", "role": "teacher", "school": "s1"}, Invalid),  # no staff
        ({"username": "admin1", "role": "guard", "school": "s1"}, Conflict),
    ],
)
def test_bad_accounts_are_refused_with_a_reason(world, fields, error):
    with world.session() as session, pytest.raises(error) as caught:
        accounts.create_user(session, actor=accounts.CLI, **{"password": PASSWORD, **fields})
    assert caught.value.text("en")


def test_only_managers_create_accounts(world):
    guard = accounts.Principal(role=accounts.Role.GUARD, username="guard1", user_id=1, school_id=world.ids["s1"], school_code="s1")
    with world.session() as session, pytest.raises(Forbidden):
        accounts.create_user(session, actor=guard, username="new-one", password=PASSWORD, role="guard", school="s1")


def test_wrong_body_is_a_422_in_fastapis_shape(world):
    r = world.client.post(
        "/api/v1/users", json={"username": "teacherZ", "password": PASSWORD, "role": "teacher", "school": "s1"}, headers=world.as_("admin1")
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "teacher_needs_staff" and "教职工" in r.json()["detail"][0]["msg"]
