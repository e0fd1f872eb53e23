"""Users and their logins: accounts with one role each, passwords, login tokens and the lock on wrong passwords.

Passwords are hashed with argon2id; a login token is random and only its SHA-256 is stored (it carries
256 bits, so a fast hash is enough), with an expiry.

Wrong passwords are counted per account *and* source (``LoginThrottle``): a stranger's ten tries lock
the account for the stranger only, not for the guard at the gate, and each lock in a row lasts twice
the one before. A try is claimed in one atomic UPDATE before the password is checked, so parallel
requests cannot check more passwords than the limit.
"""


from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from central.accounts.access import CLI, Principal, Role
from central.accounts.models import AuthToken, LoginThrottle, User
from central.core import audit, clock
from central.core.columns import UTCDateTime
from central.core.errors import Conflict, Forbidden, Invalid, Missing, Unauthenticated
from central.schools import registry
from central.schools.models import Guardian, School

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")


# --- passwords ----------------------------------------------------------------------------------

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters
_dummy_hash: str | None = None


def hash_password(password: str) -> str:
    if len(password) < 10:
        raise Invalid("weak_password")
    if len(password) > 256:
        raise Invalid("long_password")
    return _hasher.hash(password)


def _verify_password(stored: str | None, password: str) -> bool:
    global _dummy_hash
    if stored is None:
        # An unknown name costs as much as a wrong password, so timing does not tell names apart.
        _dummy_hash = _dummy_hash or _hasher.hash(secrets.token_hex(16))
        stored = _dummy_hash
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


# --- users --------------------------------------------------------------------------------------


def may_manage(actor: Principal | str, *, role: Role, school_id: int | None) -> bool:
    """District manages every account; a school admin those of their school below district."""
    if isinstance(actor, str):
        return actor == CLI
    if actor.role is Role.DISTRICT:
        return True
    return actor.role is Role.SCHOOL_ADMIN and role is not Role.DISTRICT and school_id == actor.school_id


def create_user(
    session: Session,
    *,
    actor: Principal | str,
    username: str,
    password: str,
    role: str,
    school: str | None = None,
    guardian_id: int | None = None,
    staff_id: int | None = None,
) -> User:
    if not USERNAME.match(username or ""):
        raise Invalid("bad_username")
    try:
        role = Role(role)
    except ValueError:
        raise Invalid("bad_role", role=role) from None
    if role is Role.DISTRICT and school is not None:
        raise Invalid("district_no_school")
    if role is not Role.DISTRICT and not school:
        raise Invalid("role_needs_school", role=role.value)
    found = registry.get_school(session, school) if school else None
    school_id = found.id if found else None
    if not may_manage(actor, role=role, school_id=school_id):
        raise Forbidden("may_not_manage_users")
    if role is Role.GUARDIAN:
        guardian = session.get(Guardian, guardian_id) if guardian_id is not None else None
        if guardian is None or guardian.school_id != school_id:
            raise Invalid("guardian_needs_link")
    else:
        guardian_id = None
    if role is Role.TEACHER:
        from central.programme.models import Staff

        staff = session.get(Staff, staff_id) if staff_id is not None else None
        if staff is None or staff.school_id != school_id:
            raise Invalid("teacher_needs_staff")
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise Conflict("username_taken", username=username)
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role.value,
        school_id=school_id,
        guardian_id=guardian_id,
        staff_id=staff_id,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="user.create",
        entity=f"user:{user.id}",
        after=audit.snapshot(user, exclude={"password_hash"}),
        school_id=school_id,
    )
    session.commit()
    session.refresh(user)
    return user


def _managed_user(session: Session, *, actor: Principal | str, user_id: int) -> User:
    user = session.get(User, user_id)
    # Someone who may not manage the account learns nothing about it, not even that it exists.
    if user is None or not may_manage(actor, role=Role(user.role), school_id=user.school_id):
        raise Missing("no_user", user=user_id)
    return user


def update_user(
    session: Session, *, actor: Principal | str, user_id: int, active: bool | None = None, password: str | None = None
) -> User:
    """Deactivate or reactivate an account, or set a new password; either ends its open logins."""
    user = _managed_user(session, actor=actor, user_id=user_id)
    before = audit.snapshot(user, exclude={"password_hash"})
    if active is not None:
        user.active = active
    if password is not None:
        user.password_hash = hash_password(password)
        session.execute(sa.delete(LoginThrottle).where(LoginThrottle.user_id == user.id))
    session.add(user)
    revoke_all(session, user_id=user.id)
    after = audit.snapshot(user, exclude={"password_hash"})
    if password is not None:
        after["password_changed"] = True
    audit.record(session, actor=actor, action="user.update", entity=f"user:{user.id}", before=before, after=after, school_id=user.school_id)
    session.commit()
    session.refresh(user)
    return user


def list_users(session: Session, *, actor: Principal) -> list[User]:
    stmt = select(User).order_by(col(User.id))
    if actor.role is not Role.DISTRICT:
        stmt = stmt.where(User.school_id == actor.school_id)
    return list(session.exec(stmt))


# --- login tokens -------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# A lock never grows past this many doublings of ``lock_for`` (15 min × 2**6 = 16 h by default).
MAX_LOCK_DOUBLINGS = 6


def source_of(address: str | None) -> str:
    """What wrong passwords are counted by: the client's address; an IPv6 address by its /64, which
    one host or one home usually holds whole."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _claim_try(session: Session, *, user_id: int, source: str, now: datetime, max_failures: int, hold: timedelta) -> int | None:
    """Take one try for this account from this source, atomically; None when the source is locked out.

    The try is counted before the password is checked, in one UPDATE … RETURNING, so 30 parallel
    requests take 30 numbers and only the first ``max_failures`` are checked. The try that reaches
    the limit also holds the lock at once (for ``hold``), until its own check decides: cleared if the
    password was right, lengthened if not; a check that never finishes leaves the hold to expire.
    """
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": pg_insert, "sqlite": sqlite_insert}[dialect]
    session.execute(
        insert(LoginThrottle).values(user_id=user_id, source=source, failures=0, lockouts=0).on_conflict_do_nothing()
    )
    # An expired lock (or a hold left by a check that never finished) starts a fresh count.
    taken = sa.case((LoginThrottle.failures >= max_failures, 1), else_=LoginThrottle.failures + 1)
    claimed = session.execute(
        sa.update(LoginThrottle)
        .where(
            LoginThrottle.user_id == user_id,
            LoginThrottle.source == source,
            sa.or_(col(LoginThrottle.locked_until).is_(None), col(LoginThrottle.locked_until) <= now),
        )
        .values(failures=taken, locked_until=sa.case((taken >= max_failures, sa.literal(now + hold, UTCDateTime())), else_=sa.null()))
        .returning(LoginThrottle.failures)
    ).first()
    session.commit()
    return None if claimed is None else claimed[0]


def login(
    session: Session,
    *,
    username: str,
    password: str,
    ttl: timedelta,
    max_failures: int,
    lock_for: timedelta,
    source: str = "unknown",
) -> tuple[str, AuthToken, User]:
    """Check the password and issue a token.

    An unknown name, a wrong password, an inactive account and a locked-out source all get the same
    error after the same work (one argon2 verification), so none can be told from another.
    """
    now = clock.utcnow()
    user = session.exec(select(User).where(User.username == username)).first()
    taken = None
    if user is not None:
        taken = _claim_try(session, user_id=user.id, source=source, now=now, max_failures=max_failures, hold=lock_for)
    stored = user.password_hash if user is not None and taken is not None else None
    right = _verify_password(stored, password)  # a dummy hash when unknown or locked: the same cost
    if not right or user is None or taken is None or not user.active:
        if user is not None and taken is not None and taken >= max_failures:
            _lock(session, user_id=user.id, source=source, now=now, lock_for=lock_for)
        raise Unauthenticated("login_failed")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    session.execute(
        sa.update(LoginThrottle)
        .where(LoginThrottle.user_id == user.id, LoginThrottle.source == source)
        .values(failures=0, lockouts=0, locked_until=None)
    )
    token = secrets.token_urlsafe(32)
    row = AuthToken(user_id=user.id, token_hash=_token_hash(token), created_at=now, expires_at=now + ttl)
    session.add_all([user, row])
    session.commit()
    session.refresh(row)
    return token, row, user


def _lock(session: Session, *, user_id: int, source: str, now: datetime, lock_for: timedelta) -> None:
    """The try that reached the limit was wrong: lock this source out, twice as long as last time."""
    row = session.exec(select(LoginThrottle).where(LoginThrottle.user_id == user_id, LoginThrottle.source == source)).one()
    row.locked_until = now + lock_for * 2 ** min(row.lockouts, MAX_LOCK_DOUBLINGS)
    row.lockouts += 1
    row.failures = 0
    session.add(row)
    session.commit()


def principal_of(session: Session, user: User) -> Principal:
    school = session.get(School, user.school_id) if user.school_id is not None else None
    return Principal(
        role=Role(user.role),
        username=user.username,
        user_id=user.id,
        school_id=user.school_id,
        school_code=school.code if school else None,
        guardian_id=user.guardian_id,
        staff_id=user.staff_id,
    )


def principal_for_token(session: Session, *, token: str) -> Principal | None:
    """The user a bearer token belongs to, if it is known, unexpired, unrevoked and the user active."""
    row = session.exec(select(AuthToken).where(AuthToken.token_hash == _token_hash(token))).first()
    if row is None or row.revoked or clock.as_utc(row.expires_at) <= clock.utcnow():
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return principal_of(session, user)


def logins_holding(session: Session, *, logins: dict[str, int]) -> set[str]:
    """Of ``logins`` (token hash -> the user id the login was made for), the ones that still hold: known,
    unexpired, unrevoked, that user's and the user active. One query however many (the live pages of a
    school check their logins together at each round)."""
    if not logins:
        return set()
    rows = session.exec(
        select(AuthToken.token_hash, AuthToken.user_id)
        .join(User, col(User.id) == col(AuthToken.user_id))
        .where(col(AuthToken.token_hash).in_(list(logins)), col(AuthToken.revoked).is_(False),
               col(AuthToken.expires_at) > clock.utcnow(), col(User.active).is_(True))
    )
    return {h for h, uid in rows if logins[h] == uid}


def token_hash(token: str) -> str:
    """How a login token is kept (and looked for): never the token itself."""
    return _token_hash(token)


def logout(session: Session, *, token: str) -> None:
    row = session.exec(select(AuthToken).where(AuthToken.token_hash == _token_hash(token))).first()
    if row is not None:
        row.revoked = True
        session.add(row)
        session.commit()


def revoke_all(session: Session, *, user_id: int) -> None:
    """End every login of the user (a new password, the account deactivated).

    Not committed: it commits with the caller's change, as ``audit.record`` does, so the change, its
    audit row and the revocation are stored together or not at all (``update_user`` commits them). A
    caller that only revokes commits right after; until then the old logins still hold."""
    session.execute(sa.update(AuthToken).where(AuthToken.user_id == user_id).values(revoked=True))
