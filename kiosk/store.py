"""The kiosk's local SQLite store: its identity, the roster copy, today's state, and the outbox.

The outbox is the only thing that keeps an event until central acknowledges it (ARCHITECTURE.md,
"Delivery"): every event is committed with ``synchronous=FULL`` before its decision is shown.
One connection is shared by the kiosk loop and the sync client's threads behind one lock.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from gateway import protocol
from kiosk.roster import Roster

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roster (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, body TEXT NOT NULL);
-- every event of a school-local day, kept after its ack: the gate's state is a fold of these
CREATE TABLE IF NOT EXISTS daylog (seq INTEGER PRIMARY KEY, day TEXT NOT NULL, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS daylog_day ON daylog (day);
-- the other gates' events of the school's feed (central's order, ``pos``), folded into the day like
-- the gate's own; ``meta.feed_pos`` is the last place up to which every event was received
CREATE TABLE IF NOT EXISTS feed (id TEXT PRIMARY KEY, pos INTEGER NOT NULL, kiosk TEXT NOT NULL, day TEXT NOT NULL, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS feed_day ON feed (day, pos);
-- what the kiosk refused and why (a message claiming to be central's that did not verify, ...)
CREATE TABLE IF NOT EXISTS fault (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL);
"""
RESTORED = "restored_seq"  # meta: set by restore_store, the last seq of the backup, until central names its head
KEEP_DAYS = 31  # days of the day log kept on the kiosk; central holds the history
KEEP_FAULTS = 200  # fault rows kept: a flood of forged messages must not fill the SD card
FAULT_DETAIL = 500  # characters of a fault's detail kept


class StoreError(Exception):
    """The kiosk store cannot be used as asked (wrong school or kiosk for this file, bad roster)."""


class KioskStore:
    def __init__(
        self, path: str | Path, *, school: str, kiosk: str, secret: str | None = None, central_key: str | None = None
    ) -> None:
        protocol.check_id(school, "school")
        protocol.check_id(kiosk, "kiosk")
        self.path = str(path)
        self.school, self.kiosk = school, kiosk
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self.secret_created = False
        self._mono_start = time.monotonic()
        with self._tx():
            for key, value in (("school", school), ("kiosk", kiosk)):
                stored = self._meta(key)
                if stored is None:
                    self._set_meta(key, value)
                elif stored != value:
                    raise StoreError(f"{self.path} belongs to {key} {stored!r}, not {value!r}")
            # Every start is a new boot: its monotonic clock starts again from zero.
            self.boot = int(self._meta("boot") or 0) + 1
            self._set_meta("boot", self.boot)
            if secret:
                self._set_meta("secret", secret)
            elif self._meta("secret") is None:
                # First boot without a configured secret: make one; an admin registers it at central.
                self._set_meta("secret", secrets.token_hex(32))
                self.secret_created = True
            if central_key:
                protocol.parse_public_key(central_key)  # refuse to keep what could never verify
                self._set_meta("central_key", central_key.strip().lower())
        self._central_key_hex = self._meta("central_key")
        self._secret = bytes.fromhex(self._meta("secret") or "")
        self._last_seq = int(self._meta("last_seq") or 0)
        self._last_hash = self._meta("last_hash") or ""
        self._acked = int(self._meta("acked") or 0)
        self._feed_pos = int(self._meta("feed_pos") or 0)
        restored = self._meta(RESTORED)
        self._restored = int(restored) if restored is not None else None
        self.roster = self._load_roster()

    # --- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except BaseException:
                # A commit that failed (disk full, an SD card's I/O error) must not leave the
                # connection inside the transaction: every later write would fail too.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str | int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def secret_hex(self) -> str:
        return self._secret.hex()

    @property
    def central_key(self) -> str | None:
        """Central's public key (hex) as given at registration; None until it was."""
        return self._central_key_hex

    def mono(self) -> int:
        """Milliseconds since this boot on the monotonic clock (never jumps with the wall clock)."""
        return int((time.monotonic() - self._mono_start) * 1000)

    # --- events and the outbox -----------------------------------------------------------------

    def record(self, kind: str, at: datetime, *, day: date | None = None, **fields: Any) -> dict[str, Any]:
        """Sign, chain and durably store one event, with the local state it changes.

        ``day`` is the school-local date the event belongs to; the day log row and the outbox row
        commit together, so a crash never leaves the gate's state without its event.
        """
        with self._lock:  # the sync thread never sees a committed row past last_seq
            with self._tx() as db:
                seq = self._last_seq + 1
                event = protocol.new_event(
                    school=self.school,
                    kiosk=self.kiosk,
                    seq=seq,
                    prev=self._last_hash,
                    at=at,
                    kind=kind,
                    secret=self._secret,
                    roster_version=self.roster.version,
                    boot=self.boot,
                    mono=self.mono(),
                    **fields,
                )
                digest = protocol.event_hash(event)
                db.execute(
                    "INSERT INTO outbox (seq, id, payload) VALUES (?, ?, ?)",
                    (seq, event["id"], protocol.canonical_json(event).decode()),
                )
                if day is not None:
                    db.execute(
                        "INSERT INTO daylog (seq, day, payload) VALUES (?, ?, ?)",
                        (seq, day.isoformat(), protocol.canonical_json(event).decode()),
                    )
                self._set_meta("last_seq", seq)
                self._set_meta("last_hash", digest)
            self._last_seq, self._last_hash = seq, digest
        return event

    def pending(self, after: int, limit: int) -> list[tuple[int, str]]:
        """Outbox rows with seq > after, in seq order: (seq, canonical JSON)."""
        with self._lock:
            return self._db.execute(
                "SELECT seq, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()

    def ack(self, upto: int) -> int:
        """Central stored every seq <= upto: drop those from the outbox. Returns rows dropped."""
        if upto > self._last_seq:
            # An ack beyond what we ever wrote means central and this kiosk disagree (a kiosk
            # rebuilt with an old id?); dropping unsent events would lose them.
            raise StoreError(f"ack up to {upto} is beyond the last event written ({self._last_seq})")
        if upto <= self._acked:
            return 0
        with self._tx() as db:
            dropped = db.execute("DELETE FROM outbox WHERE seq <= ?", (upto,)).rowcount
            self._set_meta("acked", upto)
        self._acked = upto
        return dropped

    @property
    def acked(self) -> int:
        return self._acked

    # --- after a restore from a backup ------------------------------------------------------------

    @property
    def hold_after(self) -> int | None:
        """Restored from a backup and central not heard since: the events recorded after the backup's
        last seq are held back (central may hold other events under those seqs), else None."""
        return self._restored

    def resume(self, head: int | None, head_hash: str | None) -> int:
        """Central's first ack after a restore: where to go on from. Returns the events renumbered.

        ``head`` past the backup's last seq means central holds events this store lost with the
        restore, under seqs this store would use again: every one of them up to ``head`` is
        delivered (the outbox's old rows included), and the events recorded since the restore are
        numbered after ``head``, chained onto ``head_hash`` and signed again (ids kept), so none is
        sent twice, none collides, and none is lost. Any ack ends the hold; one without ``head``
        (an older central) leaves the numbering as it was.
        """
        if self._restored is None:
            return 0
        moved = 0
        with self._lock:
            restored = self._restored
            with self._tx() as db:
                if head is not None and head_hash and head > restored:
                    rows = db.execute("SELECT seq, payload FROM outbox WHERE seq > ? ORDER BY seq", (restored,)).fetchall()
                    days = dict(db.execute("SELECT seq, day FROM daylog WHERE seq > ?", (restored,)).fetchall())
                    db.execute("DELETE FROM outbox")  # seqs <= restored: central holds up to head, past them
                    db.execute("DELETE FROM daylog WHERE seq > ?", (restored,))
                    seq, prev = head, head_hash
                    for old, payload in rows:
                        event = json.loads(payload)
                        seq += 1
                        event.update(seq=seq, prev=prev)
                        event["sig"] = protocol.sign(event, self._secret)
                        text = protocol.canonical_json(event).decode()
                        db.execute("INSERT INTO outbox (seq, id, payload) VALUES (?, ?, ?)", (seq, event["id"], text))
                        if old in days:
                            db.execute("INSERT INTO daylog (seq, day, payload) VALUES (?, ?, ?)", (seq, days[old], text))
                        prev = protocol.event_hash(event)
                        moved += 1
                    for key, value in (("last_seq", seq), ("last_hash", prev), ("acked", head)):
                        self._set_meta(key, value)
                    self._last_seq, self._last_hash, self._acked = seq, prev, head
                db.execute("DELETE FROM meta WHERE key = ?", (RESTORED,))
            self._restored = None
        return moved

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def roster_version(self) -> int:
        return self.roster.version

    def queue_depth(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def oldest_pending_at(self) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT payload FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return json.loads(row[0])["at"] if row else None

    # --- faults -------------------------------------------------------------------------------------

    def record_fault(self, kind: str, detail: str, at: datetime) -> None:
        """Keep one refused thing with its reason; only the newest KEEP_FAULTS rows are kept."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO fault (at, kind, detail) VALUES (?, ?, ?)", (at.isoformat(), kind, detail[:FAULT_DETAIL])
            )
            db.execute("DELETE FROM fault WHERE id <= (SELECT MAX(id) FROM fault) - ?", (KEEP_FAULTS,))

    def faults(self, kind: str | None = None) -> list[dict[str, str]]:
        """The faults kept, oldest first: ``{"at", "kind", "detail"}``."""
        with self._lock:
            rows = self._db.execute("SELECT at, kind, detail FROM fault ORDER BY id").fetchall()
        return [{"at": a, "kind": k, "detail": d} for a, k, d in rows if kind is None or k == kind]

    # --- today's state ---------------------------------------------------------------------------

    def day_events(self, day: date) -> list[dict[str, Any]]:
        """The events recorded for one school-local day, in seq order."""
        with self._lock:
            rows = self._db.execute("SELECT payload FROM daylog WHERE day = ? ORDER BY seq", (day.isoformat(),)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def checked_in(self, day: date) -> set[str]:
        return {e["student"] for e in self.day_events(day) if e["kind"] == "checkin"}

    def prune_days(self, today: date) -> int:
        """Forget the day log before the last KEEP_DAYS days (the kiosk holds no more than the gate needs)."""
        cutoff = date.fromordinal(today.toordinal() - KEEP_DAYS).isoformat()
        with self._tx() as db:
            db.execute("DELETE FROM feed WHERE day < ?", (cutoff,))
            return db.execute("DELETE FROM daylog WHERE day < ?", (cutoff,)).rowcount

    # --- the school's feed: the other gates' events ------------------------------------------------

    @property
    def feed_pos(self) -> int:
        """The last place of the school's feed up to which this kiosk has every event."""
        return self._feed_pos

    def add_feed(
        self, entries: list[tuple[dict[str, Any], date]], *, since: date, over_gaps: bool = False,
        heard_at: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Keep the other gates' feed events (each with its school-local day) and move the last place on.

        Each event is kept once by its id; this kiosk's own events (it has them already) and events of
        days before ``since`` only move the place on. The place moves only over contiguous positions:
        an event past a gap is kept, but the place waits for the gap to be filled (``over_gaps``: it
        does not wait; there is nobody to fill it from). ``heard_at`` is kept as when the other gates were
        last heard from (after a restart, what is unknown is unknown since then). Returns the events
        kept now for the first time, in feed order: the ones to fold.
        """
        added: list[dict[str, Any]] = []
        with self._tx() as db:
            pos = self._feed_pos
            for event, day in sorted(entries, key=lambda e: e[0]["pos"]):
                if event["kiosk"] != self.kiosk and day >= since and event["pos"] > self._feed_pos:
                    inserted = db.execute(
                        "INSERT OR IGNORE INTO feed (id, pos, kiosk, day, payload) VALUES (?, ?, ?, ?, ?)",
                        (event["id"], event["pos"], event["kiosk"], day.isoformat(),
                         protocol.canonical_json(event).decode()),
                    ).rowcount
                    if inserted:
                        added.append(event)
                if event["pos"] == pos + 1 or (over_gaps and event["pos"] > pos):
                    pos = event["pos"]
            # Events kept earlier past a gap this batch has now filled.
            for (later,) in db.execute("SELECT pos FROM feed WHERE pos > ? ORDER BY pos", (pos,)).fetchall():
                if later != pos + 1:
                    break
                pos = later
            if pos != self._feed_pos:
                self._set_meta("feed_pos", pos)
            if heard_at is not None:
                self._set_meta("feed_heard_at", heard_at.isoformat())
        self._feed_pos = pos
        return added

    @property
    def feed_heard_at(self) -> datetime | None:
        """When the school's feed last brought this kiosk anything (kept across restarts)."""
        with self._lock:
            value = self._meta("feed_heard_at")
        return datetime.fromisoformat(value) if value else None

    def feed_events(self, day: date) -> list[dict[str, Any]]:
        """The other gates' events of one school-local day, in feed order."""
        with self._lock:
            rows = self._db.execute("SELECT payload FROM feed WHERE day = ? ORDER BY pos", (day.isoformat(),)).fetchall()
        return [json.loads(r[0]) for r in rows]

    # --- roster ------------------------------------------------------------------------------------

    def _load_roster(self) -> Roster:
        row = self._db.execute("SELECT version, body FROM roster WHERE id = 1").fetchone()
        if not row:
            return Roster.empty(self.school)
        return Roster.from_snapshot(protocol.RosterSnapshot.model_validate_json(row[1]))

    def _save_roster(self, roster: Roster) -> None:
        body = protocol.dump(roster.snapshot())
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO roster (id, version, body) VALUES (1, ?, ?)", (roster.version, body))
        self.roster = roster

    def apply_snapshot(self, snapshot: protocol.RosterSnapshot) -> bool:
        """Replace the roster copy; False when it is for another school or not newer.

        Versions only increase: a retained snapshot older than what a delta already gave us
        (or replayed by a bridge) is never applied.
        """
        if snapshot.school != self.school or snapshot.version <= self.roster.version:
            return False
        self._save_roster(Roster.from_snapshot(snapshot))
        return True

    def apply_delta(self, delta: protocol.RosterDelta) -> bool:
        """Apply a delta that starts at our version; False otherwise (the snapshot will do)."""
        if delta.school != self.school or delta.from_ != self.roster.version or delta.to <= delta.from_:
            return False
        self._save_roster(self.roster.with_delta(delta))
        return True


# --- what an installer reads while the kiosk runs -------------------------------------------------


@dataclass(frozen=True)
class StoreStatus:
    """A kiosk store as ``schoolgate kiosk status`` shows it."""

    school: str
    kiosk: str
    queue: int  # events in the outbox, waiting for central's ack
    last_seq: int  # the last event written
    acked: int  # the last seq central acknowledged
    roster_version: int  # 0: no roster received yet
    roster_generated_at: datetime | None
    roster_age_s: int | None  # seconds since central made the roster copy, at ``now``


def read_status(path: str | Path, now: datetime) -> StoreStatus:
    """Read a kiosk store without writing to it, while its kiosk runs or not.

    The connection is read-only (``mode=ro``): it takes no write lock, so the running kiosk is never
    kept from recording a tap; in WAL mode it sees every committed transaction (SQLite's WAL lets one
    writer and readers run together). A file that is not there is an error, not a new empty store,
    and nothing is created beside a stopped kiosk's store.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path} is not a kiosk store")
    # No write-ahead log beside it: the kiosk is stopped and everything is in the main file. A
    # read-only connection would still create empty -wal and -shm files, owned by whoever runs this
    # (root, say) and then unwritable by the kiosk; ``immutable`` opens the file alone. A kiosk that
    # starts meanwhile writes to a new WAL, not to the main file, so what is read stays whole.
    stopped = not Path(f"{path}-wal").exists()
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro{'&immutable=1' if stopped else ''}", uri=True)
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        with db:  # one read transaction: every number below is of the same moment
            db.execute("BEGIN")
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            queue = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            roster = db.execute("SELECT version, json_extract(body, '$.generated_at') FROM roster WHERE id = 1").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} cannot be read as a kiosk store: {exc}") from None
    finally:
        db.close()
    if "school" not in meta or "kiosk" not in meta:
        raise StoreError(f"{path} is not a kiosk store")
    generated = datetime.fromisoformat(roster[1].replace("Z", "+00:00")) if roster and roster[1] else None
    return StoreStatus(
        school=meta["school"],
        kiosk=meta["kiosk"],
        queue=queue,
        last_seq=int(meta.get("last_seq", 0)),
        acked=int(meta.get("acked", 0)),
        roster_version=roster[0] if roster else 0,
        roster_generated_at=generated,
        roster_age_s=int((now - generated).total_seconds()) if generated else None,
    )


# --- backup and restore of a kiosk store ----------------------------------------------------------


def store_identity(path: str | Path) -> tuple[str, str, int]:
    """(school, kiosk, last seq) of a kiosk store or backup, read-only; ``StoreError`` for anything else."""
    status = read_status(path, datetime.now().astimezone())
    return status.school, status.kiosk, status.last_seq


def backup_store(path: str | Path, out: str | Path) -> tuple[str, str, int]:
    """Copy a kiosk store into ``out`` with SQLite's online backup API (safe while the kiosk runs: a
    committed state, the tap being recorded waits at most one step). Returns (school, kiosk, last seq)."""
    path, out = Path(path), Path(out)
    store_identity(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    # The store holds the kiosk's secret and the roster's names and cards: owner only.
    os.close(os.open(partial, os.O_CREAT | os.O_WRONLY, 0o600))
    source = sqlite3.connect(path, timeout=30)
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target, pages=1024)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    os.replace(partial, out)
    return store_identity(out)


def restore_store(backup: str | Path, folder: str | Path, *, force: bool = False) -> tuple[Path, str, str, int]:
    """Write a backup into the kiosk store of its school and kiosk in ``folder`` (the kiosk stopped),
    marked as restored: its first ack from central says where to go on from (``KioskStore.resume``).
    A store that is there already is overwritten only with ``force``. Returns (path, school, kiosk, last seq)."""
    school, kiosk, last_seq = store_identity(backup)
    path = Path(folder) / f"{school}-{kiosk}.sqlite3"
    if path.exists() and not force:
        raise StoreError(f"{path} exists: stop the kiosk and add --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    source = sqlite3.connect(f"{Path(backup).resolve().as_uri()}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(path, timeout=30)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=WAL")
            with target:
                target.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (RESTORED, str(last_seq)))
        finally:
            target.close()
    finally:
        source.close()
    return path, school, kiosk, last_seq
