"""Users, roles and login tokens; who may see which child, and the log of every child read by staff.

Roles (POLICY.md "Who uses the system"): ``district`` sees every school; every other role belongs to
one school. A ``teacher`` sees the children of the groups they are in charge of, a ``guardian`` the
children they are linked to (never one they are barred from). Passwords are hashed with argon2id;
a login token is random and only its SHA-256 is stored (it carries 256 bits, so a fast hash is
enough), with an expiry.

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
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from central.accounts.models import AuthToken, ChildRead, LoginThrottle, User
from central.core import audit, clock
from central.core.columns import UTCDateTime
from central.core.errors import Conflict, Forbidden, Invalid, Missing, Unauthenticated
from central.schools import registry
from central.schools.links import link_holds
from central.schools.models import Guardian, GuardianLink, School, Student


class Role(StrEnum):
    DISTRICT = "district"
    SCHOOL_ADMIN = "school_admin"
    TEACHER = "teacher"
    GUARD = "guard"
    FINANCE = "finance"
    GUARDIAN = "guardian"


STAFF_ROLES = frozenset(Role) - {Role.GUARDIAN}
# Roles that see every child of their school; a teacher and a guardian see fewer (see student_filter).
SCHOOL_WIDE = frozenset({Role.DISTRICT, Role.SCHOOL_ADMIN, Role.GUARD, Role.FINANCE})
# Enrollment states in which a group's teacher sees the child (applied ones too: they review them).
TEACHER_VISIBLE_STATES = ("applied", "class_reviewed", "approved", "active")
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")


@dataclass(frozen=True)
class Principal:
    """Who is asking: a logged-in user, or the service token (district role, no user row)."""

    role: Role
    username: str
    user_id: int | None = None
    school_id: int | None = None
    school_code: str | None = None
    guardian_id: int | None = None
    staff_id: int | None = None

    @property
    def label(self) -> str:
        return f"user:{self.username}" if self.user_id is not None else self.username

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    def may_use_school(self, code: str) -> bool:
        return self.role is Role.DISTRICT or self.school_code == code


SERVICE = Principal(role=Role.DISTRICT, username="service-token")
CLI = "cli"  # the actor of changes made with the ``schoolgate central`` commands


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


def logout(session: Session, *, token: str) -> None:
    row = session.exec(select(AuthToken).where(AuthToken.token_hash == _token_hash(token))).first()
    if row is not None:
        row.revoked = True
        session.add(row)
        session.commit()


def revoke_all(session: Session, *, user_id: int) -> None:
    session.execute(sa.update(AuthToken).where(AuthToken.user_id == user_id).values(revoked=True))


# --- which children a caller may see ------------------------------------------------------------


def teacher_group_ids(principal: Principal) -> sa.Select:
    """The groups a teacher is in charge of: the only applications they may review or reject."""
    from central.programme.models import InterestGroup

    return select(InterestGroup.id).where(
        InterestGroup.staff_id == principal.staff_id, InterestGroup.school_id == principal.school_id
    )


def teacher_student_ids(principal: Principal, day: date) -> sa.Select:
    """Children with an open enrollment in a group the teacher is in charge of, or still in it on
    ``day`` (the school's date) after a withdrawal as of a later date (P7.4).

    The hook between accounts and the service's tables (central/programme/models.py): a teacher's reach is
    defined here and only here, so routes never work it out on their own.
    """
    from central.programme.models import Enrollment, enrollment_in_service

    return select(Enrollment.student_id).where(
        col(Enrollment.group_id).in_(teacher_group_ids(principal)),
        sa.or_(col(Enrollment.state).in_(TEACHER_VISIBLE_STATES), enrollment_in_service(day)),
    )


def guardian_student_ids(principal: Principal, school: School) -> sa.Select:
    """Children the guardian is linked to today (the school's date); a custody bar or a link out of its
    dates hides the child (P9.4)."""
    return select(GuardianLink.student_id).where(
        GuardianLink.guardian_id == principal.guardian_id, link_holds(clock.local_today(school))
    )


def student_filter(principal: Principal, school: School) -> sa.ColumnElement[bool]:
    """The WHERE clause of the students of ``school`` that ``principal`` may see."""
    in_school = Student.school_id == school.id
    if not principal.may_use_school(school.code):
        return sa.false()
    if principal.role in SCHOOL_WIDE:
        return in_school
    if principal.role is Role.TEACHER and principal.staff_id is not None:
        return sa.and_(in_school, col(Student.id).in_(teacher_student_ids(principal, clock.local_today(school))))
    if principal.role is Role.GUARDIAN and principal.guardian_id is not None:
        return sa.and_(in_school, col(Student.id).in_(guardian_student_ids(principal, school)))
    return sa.false()


def log_child_reads(session: Session, *, principal: Principal, students: list[Student], what: str) -> None:
    """Record that a member of staff read these children's records; a guardian's own reads are not staff reads."""
    if not principal.is_staff or not students:
        return
    now = clock.utcnow()
    session.add_all(
        ChildRead(school_id=s.school_id, student_id=s.id, actor=principal.label, what=what, at=now) for s in students
    )
    session.commit()


def visible_students(session: Session, *, principal: Principal, school: School, what: str = "student_list") -> list[Student]:
    """The children of a school the caller may see, each read logged for staff."""
    students = list(session.exec(select(Student).where(student_filter(principal, school)).order_by(Student.student_no)))
    log_child_reads(session, principal=principal, students=students, what=what)
    return students


def find_student(session: Session, *, principal: Principal, school: School, student_no: str) -> Student:
    """One child the caller may see, without logging the read (the caller logs what it shows)."""
    student = session.exec(
        select(Student).where(Student.student_no == student_no, student_filter(principal, school))
    ).first()
    if student is None:
        # Not "forbidden": a caller who may not see the child does not learn that it exists.
        raise Missing("no_student", student=student_no)
    return student


def read_student(session: Session, *, principal: Principal, school: School, student_no: str, what: str = "student") -> Student:
    student = find_student(session, principal=principal, school=school, student_no=student_no)
    log_child_reads(session, principal=principal, students=[student], what=what)
    return student


def child_reads(session: Session, *, school: School, student_id: int | None = None, limit: int = 100) -> list[ChildRead]:
    stmt = select(ChildRead).where(ChildRead.school_id == school.id).order_by(col(ChildRead.id).desc()).limit(limit)
    if student_id is not None:
        stmt = stmt.where(ChildRead.student_id == student_id)
    return list(session.exec(stmt))
