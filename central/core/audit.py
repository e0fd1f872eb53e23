"""The append-only audit log: every change, who made it, the row before and after, hash-chained.

Each row's ``hash`` is SHA-256 over the canonical JSON of its fields and the previous row's hash
(``prev``), so editing, inserting or deleting a row in the middle breaks the chain at that row and
``verify`` names it. Triggers (migration 0002) refuse UPDATE and DELETE on the table; the chain is
what still catches someone who drops them. Cutting rows off the end leaves a valid shorter chain:
``verify`` prints the head hash so an operator can note it elsewhere and compare later.

``record`` adds the row to the caller's session without committing, so the change and its audit row
commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import Enum
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, col, select

from central.core import clock
from central.core.columns import UTCDateTime
from central.core.bulk import copy_rows
from gateway.protocol import canonical_json

# Any constant works: it only has to be the same for every writer of this database.
_PG_LOCK_KEY = 0x5347_4155  # "SGAU"


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, unique=True))
    at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    actor: str = Field(max_length=100)
    action: str = Field(max_length=64)
    entity: str = Field(max_length=200)
    # No foreign key: the log outlives what it describes.
    school_id: int | None = Field(default=None, index=True)
    before: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    after: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    prev: str = Field(max_length=64)
    hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))


class Actor(Protocol):
    @property
    def label(self) -> str: ...


_PLAIN = (str, int, bool, float, type(None))


def _jsonable(value: Any) -> Any:
    if type(value) in _PLAIN:  # most of a row's values, and the quickest answer (a district's billing logs 100,000 rows)
        return value
    if isinstance(value, datetime):
        return clock.as_utc(value).isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()  # a photo or key: its digest, never the bytes
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return value


def snapshot(row: SQLModel | None, *, exclude: Iterable[str] = ()) -> dict[str, Any] | None:
    """A row as the audit log keeps it; ``exclude`` secrets such as password hashes."""
    if row is None:
        return None
    skip = set(exclude)
    return {k: _jsonable(v) for k, v in row.model_dump().items() if k not in skip}


_HASHED = ("seq", "at", "actor", "action", "entity", "school_id", "before", "after", "prev")


def _fields(row: AuditLog | dict[str, Any]) -> dict[str, Any]:
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    return {name: _jsonable(get(name)) if name == "at" else get(name) for name in _HASHED}


def row_hash(row: AuditLog | dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(_fields(row))).hexdigest()


def record(
    session: Session,
    *,
    actor: Actor | str,
    action: str,
    entity: str,
    before: Any = None,
    after: Any = None,
    school_id: int | None = None,
) -> None:
    """Append one row (not committed: it commits with the caller's change).

    ``before``/``after`` are JSON-able values or rows (``snapshot`` is applied to rows); ``entity``
    names the record, e.g. ``"user:12"``; ``action`` says what happened, e.g. ``"user.create"``.
    """
    label = actor if isinstance(actor, str) else actor.label
    record_many(session, [Entry(label, action, entity, before, after, school_id)])


@dataclass(frozen=True)
class Entry:
    actor: str
    action: str
    entity: str
    before: Any = None
    after: Any = None
    school_id: int | None = None


def record_many(session: Session, entries: list[Entry]) -> None:
    """Append several rows with one look at the tail: an import of a school is thousands of changes.

    On PostgreSQL the rows skip the ORM (COPY, ``bulk.copy_rows``): a month's billing logs a thousand statements a school, and building as many
    ``AuditLog`` objects and flushing them cost about a second a school (bench/district.py)."""
    if not entries:
        return
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        # Writers take turns at the tail; on SQLite the single writer lock and UNIQUE(seq) do this.
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    tail = session.exec(select(AuditLog.seq, AuditLog.hash).order_by(col(AuditLog.seq).desc()).limit(1)).first()
    seq, prev = (tail[0], tail[1]) if tail else (0, "")
    rows = []
    for entry in entries:
        before = snapshot(entry.before) if isinstance(entry.before, SQLModel) else entry.before
        after = snapshot(entry.after) if isinstance(entry.after, SQLModel) else entry.after
        seq += 1
        row = {
            "seq": seq,
            # Whole microseconds survive every back-end's timestamp type, so the hash recomputes.
            "at": clock.utcnow(),
            "actor": entry.actor,
            "action": entry.action,
            "entity": entry.entity,
            "school_id": entry.school_id,
            "before": json.dumps(_jsonable(before), sort_keys=True, ensure_ascii=False),
            "after": json.dumps(_jsonable(after), sort_keys=True, ensure_ascii=False),
            "prev": prev,
        }
        row["hash"] = prev = row_hash(row)
        rows.append(row)
    if postgres:
        session.flush()  # what is pending goes first, as the ORM's flush of these rows would have sent it
        names = (*_HASHED, "hash")
        copy_rows(session, "audit_log", names, (tuple(row[name] for name in names) for row in rows))
    else:
        session.add_all(AuditLog(**row) for row in rows)
    session.flush()  # the next record() in this transaction sees these rows as the tail


def queue_created(session: Session, table: str, row: dict[str, Any]) -> None:
    """Log the creation of a row a service wrote past the ORM (a month's statements on PostgreSQL),
    as the commit logs one the ORM inserted: ``row`` is every column of it as committed."""
    session.info.setdefault("audit_queue", []).append(("create", table, _Written(row), None))


class _Written(dict):
    """A row written past the ORM, queued for its create row (a dict: its state is itself)."""


# --- every change to the service's records, whoever makes it -------------------------------------
#
# Services need not remember to log: a session that flushes a change to one of these tables queues
# it, and the commit appends the audit rows in the same transaction. The actor is what the request
# (central/api/deps.authorize) or the command line put in ``session.info["actor"]``. Tables whose
# services write their own richer rows (accounts, pickup codes, the public profile), the event
# stream and the roster cache (School) are left out.
_AUDITED_TABLES = {
    "student", "guardian", "guardian_link", "card", "school_class", "kiosk",
    "term", "calendar_day", "dismissal_time", "notice", "notice_signature", "enrollment", "enrollment_step",
    "interest_group", "care_session", "duty_assignment", "staff", "staff_card", "vendor", "vendor_approval",
    "fee_plan", "staff_pay_setting", "duty_confirmation", "staff_pay_run", "staff_pay_line", "annual_filing",
    "statement", "payment", "absence_excuse", "guardian_channel", "notify_preference", "school_channel",
    "emergency_contact", "webhook_subscription", "safety_review", "school_notify_settings",
}
# secrets, and sync churn (a gate's health: central/kiosks/health.py)
_NEVER_LOGGED = {"secret", "password_hash", "smtp_password", "acked_seq", "last_hash", "last_seen", "online", "status", "status_at",
                 "silence_reported_at"}


def _audited(obj: object) -> str | None:
    table = getattr(obj, "__tablename__", None)
    return table if table in _AUDITED_TABLES else None


def _state(obj: SQLModel | _Written) -> dict[str, Any]:
    if isinstance(obj, _Written):
        return {k: _jsonable(v) for k, v in obj.items() if k not in _NEVER_LOGGED}
    return snapshot(obj, exclude=_NEVER_LOGGED) or {}


def _stored(session: Session, obj: SQLModel) -> dict[str, Any] | None:
    """The row as the database holds it now, before this flush writes the change."""
    table = obj.__table__
    keys = sa.inspect(obj).identity
    if keys is None:
        return None
    where = [c == v for c, v in zip(table.primary_key.columns, keys)]
    row = session.connection().execute(sa.select(table).where(*where)).mappings().first()
    if row is None:
        return None
    return {k: _jsonable(v) for k, v in row.items() if k not in _NEVER_LOGGED}


def _previous(obj: SQLModel) -> dict[str, Any] | None:
    """The row before this change, from what the session loaded; None when an old value was never
    loaded (an attribute set on an expired object), and only the database can tell."""
    state = sa.inspect(obj)
    if state.expired_attributes:
        return None
    before = _state(obj)
    for attr in state.mapper.column_attrs:
        history = state.attrs[attr.key].history
        if history.added:
            if not history.deleted:
                return None
            if attr.key in before:
                before[attr.key] = _jsonable(history.deleted[0])
    return before


@sa.event.listens_for(Session, "before_flush")
def _queue_updates(session: Session, _context, _instances) -> None:
    # Before the flush writes them: the database still holds what the rows were.
    queued = session.info.setdefault("audit_queue", [])
    for obj in session.dirty:
        table = _audited(obj)
        if table and session.is_modified(obj, include_collections=False):
            queued.append(("update", table, obj, _previous(obj) or _stored(session, obj)))
    for obj in session.deleted:
        table = _audited(obj)
        if table:
            queued.append(("delete", table, obj, _stored(session, obj)))


@sa.event.listens_for(Session, "after_flush")
def _queue_creates(session: Session, _context) -> None:
    # After the flush: new rows have their ids.
    queued = session.info.setdefault("audit_queue", [])
    for obj in session.new:
        table = _audited(obj)
        if table:
            queued.append(("create", table, obj, None))


@sa.event.listens_for(Session, "before_commit")
def _write_changes(session: Session) -> None:
    session.flush()  # what the commit is about to flush: queue it too
    queued = session.info.pop("audit_queue", [])
    if not queued:
        return
    actor = session.info.get("actor", "system")
    # One row per row made in this transaction: its create row shows it as committed (``_state`` is read
    # now), so a change made before the commit (a statement's reference, set once the insert gave it its
    # id) is already in it and is not a second row.
    created = {id(obj) for verb, _, obj, _ in queued if verb == "create"}
    entries = []
    for verb, table, obj, before in queued:
        after = None if verb == "delete" else _state(obj)
        if verb == "update" and (before == after or id(obj) in created):
            continue
        key = (after or before or {}).get("id")
        school_id = (after or before or {}).get("school_id")
        entries.append(Entry(actor, f"{table}.{verb}", f"{table}:{key}", before, after, school_id))
    record_many(session, entries)
    # record_many flushed: what that flush queued is only the audit rows' own, never audited.
    session.info.pop("audit_queue", None)


@sa.event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction) -> None:
    if transaction.nested:
        session.info.setdefault("audit_marks", {})[id(transaction)] = len(session.info.get("audit_queue", []))


@sa.event.listens_for(Session, "after_soft_rollback")
def _forget_changes(session: Session, previous) -> None:
    # A savepoint rolled back takes back only what was queued inside it; the transaction goes on.
    if previous.nested:
        mark = session.info.get("audit_marks", {}).pop(id(previous), None)
        if mark is not None and "audit_queue" in session.info:
            del session.info["audit_queue"][mark:]
    elif previous.parent is None:
        session.info.pop("audit_queue", None)
    # else: a flush's own inner transaction; the savepoint or transaction around it decides


@sa.event.listens_for(Session, "after_transaction_end")
def _end_of_transaction(session: Session, transaction) -> None:
    # However the outermost transaction ends (commit, rollback, close), nothing it queued survives it.
    if transaction.parent is None:
        session.info.pop("audit_queue", None)
        session.info.pop("audit_marks", None)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rows: int
    head: str
    bad_seq: int | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "rows": self.rows, "head": self.head}
        if not self.ok:
            out.update(bad_seq=self.bad_seq, reason=self.reason)
        return out


def _rows(session: Session) -> Iterator[AuditLog]:
    yield from session.exec(select(AuditLog).order_by(col(AuditLog.seq)).execution_options(yield_per=1000))


def verify(session: Session) -> Verdict:
    """Walk the chain from the first row; the first row that does not fit is reported."""
    prev, count = "", 0
    for row in _rows(session):
        count += 1
        if row.seq != count:
            return Verdict(False, count, prev, row.seq, f"expected seq {count}, found {row.seq} (a row is missing)")
        if row.prev != prev:
            return Verdict(False, count, prev, row.seq, "prev does not match the previous row's hash")
        if row_hash(row) != row.hash:
            return Verdict(False, count, prev, row.seq, "the row's content does not match its hash (edited)")
        prev = row.hash
    return Verdict(True, count, prev)


def list_rows(session: Session, *, school_id: int | None = None, after_seq: int = 0, limit: int = 100) -> list[AuditLog]:
    stmt = select(AuditLog).where(AuditLog.seq > after_seq).order_by(col(AuditLog.seq)).limit(limit)
    if school_id is not None:
        stmt = stmt.where(AuditLog.school_id == school_id)
    return list(session.exec(stmt))
