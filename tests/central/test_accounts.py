"""Login, expiry, wrong passwords, lockout, and what an account may be."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlmodel import select

from central.accounts import access as accounts

from central.accounts import users
from central.accounts.models import AuthToken, LoginThrottle, User
from central.core import clock
from central.core.errors import Conflict, Forbidden, Invalid, Unauthenticated

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


def test_a_new_password_or_a_deactivation_ends_the_open_logins_for_good(world):
    # The account stays active after a new password: only the revocation (committed with the change)
    # keeps its old logins out; each request below is a new database session.
    ids = {u["username"]: u["id"] for u in world.client.get("/api/v1/users", headers=world.as_("admin1")).json()}
    old = {"Authorization": f"Bearer {_login(world, 'guard1').json()['access_token']}"}
    r = world.client.patch(f"/api/v1/users/{ids['guard1']}", json={"password": "a new password 2"}, headers=world.as_("admin1"))
    assert r.status_code == 200 and r.json()["active"] is True
    assert world.client.get("/api/v1/me", headers=old).status_code == 401
    assert world.client.get("/api/v1/me", headers=world.as_("guard1")).status_code == 401  # the fixture's login too
    assert _login(world, "guard1", "a new password 2").status_code == 200
    # Deactivated then active again: the logins it had before stay ended.
    old = {"Authorization": f"Bearer {_login(world, 'teacherA').json()['access_token']}"}
    for active in (False, True):
        r = world.client.patch(f"/api/v1/users/{ids['teacherA']}", json={"active": active}, headers=world.as_("admin1"))
        assert r.status_code == 200 and r.json()["active"] is active
    assert world.client.get("/api/v1/me", headers=old).status_code == 401
    assert _login(world, "teacherA").status_code == 200


WRONG = "not the password!"
SAME_AS_UNKNOWN = {"detail": "用户名或密码错误"}


def test_ten_wrong_passwords_lock_the_account_for_that_source_only(world):
    for _ in range(10):  # SCHOOLGATE_LOGIN_MAX_FAILURES, default 10
        assert _login(world, "teacherA", WRONG).status_code == 401
    locked = _login(world, "teacherA")  # even the right password, for a while
    # A locked account answers exactly as an unknown one does.
    assert locked.status_code == 401 and locked.json() == SAME_AS_UNKNOWN == _login(world, "nobody").json()
    # The same account from another address (the guard's own kiosk) is not locked.
    assert _service_login(world, "teacherA", PASSWORD, source="10.0.0.9")
    with world.session() as session:
        session.execute(sa.update(LoginThrottle).values(locked_until=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()
    assert _login(world, "teacherA").status_code == 200


def _service_login(world, username: str, password: str, *, source: str) -> bool:
    """One login through the service, in its own session, as a request from ``source`` would."""
    with world.session() as session:
        try:
            users.login(
                session, username=username, password=password, ttl=timedelta(hours=1), max_failures=10,
                lock_for=timedelta(minutes=15), source=source,
            )
        except Unauthenticated:
            return False
    return True


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_thirty_parallel_wrong_passwords_check_only_ten(world, monkeypatch):
    checked = []
    real = users._verify_password

    def counting(stored, password):
        if stored is not None:  # a real hash checked, not the dummy of a refused try
            checked.append(password)
        return real(stored, password)

    monkeypatch.setattr(users, "_verify_password", counting)
    start = threading.Barrier(30)

    def guess(i: int) -> bool:
        start.wait(timeout=30)
        return _service_login(world, "guard1", f"guess number {i}", source="198.51.100.7")

    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(guess, range(30)))
    assert results == [False] * 30
    assert len(checked) == 10
    # Locked for that source, right password or not; another source still gets in.
    assert _service_login(world, "guard1", PASSWORD, source="198.51.100.7") is False
    assert len(checked) == 10
    assert _service_login(world, "guard1", PASSWORD, source="203.0.113.5") is True


def test_each_lock_in_a_row_lasts_twice_as_long_and_a_login_resets_it(world, monkeypatch):
    t0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    now = {"now": t0}
    monkeypatch.setattr(clock, "utcnow", lambda: now["now"])

    def at(minutes: float, password: str) -> bool:
        now["now"] = t0 + timedelta(minutes=minutes)
        return _service_login(world, "finance1", password, source="192.0.2.1")

    def locked_until():
        with world.session() as session:
            return session.exec(select(LoginThrottle.locked_until).where(LoginThrottle.source == "192.0.2.1")).one()

    assert not any(at(0, WRONG) for _ in range(10))
    assert locked_until() == t0 + timedelta(minutes=15)
    assert at(14.9, PASSWORD) is False
    assert not any(at(16, WRONG) for _ in range(10))  # the lock is over; ten more wrong
    assert locked_until() == t0 + timedelta(minutes=16 + 30)
    assert at(45.9, PASSWORD) is False
    assert not any(at(47, WRONG) for _ in range(10))
    assert locked_until() == t0 + timedelta(minutes=47 + 60)
    assert at(108, PASSWORD) is True  # a good login forgets the locks
    assert not any(at(109, WRONG) for _ in range(10))
    assert locked_until() == t0 + timedelta(minutes=109 + 15)


def test_a_locked_account_costs_one_password_check_like_an_unknown_name(world, monkeypatch):
    calls = []

    class Counting(PasswordHasher):
        def verify(self, hash, password):
            calls.append(hash)
            return super().verify(hash, password)

    monkeypatch.setattr(users, "_hasher", Counting(time_cost=1, memory_cost=256, parallelism=1))
    for _ in range(10):
        _service_login(world, "guard1", WRONG, source="192.0.2.2")
    calls.clear()
    assert _service_login(world, "guard1", PASSWORD, source="192.0.2.2") is False  # locked
    assert _service_login(world, "nobody-at-all", PASSWORD, source="192.0.2.2") is False  # unknown
    assert _service_login(world, "guard1", WRONG, source="192.0.2.3") is False  # wrong
    assert len(calls) == 3 and calls[0] == calls[1] != calls[2]  # the dummy hash for locked and unknown


@pytest.mark.parametrize(
    ("address", "source"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),  # one home's whole /64 is one source
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("testclient", "testclient"),
        (None, "unknown"),
    ],
)
def test_the_source_of_a_login(address, source):
    assert users.source_of(address) == source


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
        users.create_user(session, actor=accounts.CLI, **{"password": PASSWORD, **fields})
    assert caught.value.text("en")


def test_only_managers_create_accounts(world):
    guard = accounts.Principal(role=accounts.Role.GUARD, username="guard1", user_id=1, school_id=world.ids["s1"], school_code="s1")
    with world.session() as session, pytest.raises(Forbidden):
        users.create_user(session, actor=guard, username="new-one", password=PASSWORD, role="guard", school="s1")


def test_wrong_body_is_a_422_in_fastapis_shape(world):
    r = world.client.post(
        "/api/v1/users", json={"username": "teacherZ", "password": PASSWORD, "role": "teacher", "school": "s1"}, headers=world.as_("admin1")
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "teacher_needs_staff" and "教职工" in r.json()["detail"][0]["msg"]
