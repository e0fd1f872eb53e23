"""In-process domain events: what a service changed, told to whoever subscribed, once it is committed.

A service records an event in its session (``record(session, RosterChanged(school.id))``); it waits in
``session.info`` until the session commits, and is then handed to the dispatcher attached to that
session (``attach``: the app does it for every request's session). A rollback drops what waits; the
same event recorded twice in one transaction is delivered once. Without a dispatcher (the command
line, tests calling a service directly) events are dropped at the commit.

Handlers run in the committing thread, after the commit, when that session may emit no more SQL: a
handler that reads or writes opens its own ``Session`` on the engine. A handler's exception is logged
and stops neither the request nor the other handlers: the change it reacts to is committed already.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

log = logging.getLogger(__name__)

_PENDING = "domain_events.pending"
_DISPATCHER = "domain_events.dispatcher"


@dataclass(frozen=True)
class RosterChanged:
    """Something the school's kiosks copy (people, cards, links, codes, coming sessions, staff) changed."""

    school_id: int


@dataclass(frozen=True)
class ChildAlertRaised:
    """A gate raised an alert about a child in a session (absent, late pickup) that no gate of the
    school had raised before: published by the ingest after its commit, once per child, session and kind."""

    school_id: int
    kind: str
    student: str
    session: str
    kiosk: str


@dataclass(frozen=True)
class IncidentStored:
    """The ingest stored a safety incident (a broken chain, an unknown kiosk, a code used twice, ...);
    published by the ingest after its own commit (central/kiosks/ingest.py), once per incident."""

    kind: str
    detail: str
    school_id: int | None = None  # None: the topic named no known school
    kiosk: str | None = None
    seq: int | None = None


@dataclass(frozen=True)
class ChildLeft:
    """A stored gate event about a child that the child's guardians may hear of: picked up (``pickup``, by
    ``guardian``; ``note`` ``code:<id>`` when a one-time code was used), walked out alone (``self_dismiss``),
    checked in (``checkin``), a pickup refused (``pickup_denied``, ``reason`` ``barred``: a custody bar)."""

    school_id: int
    event_id: str
    kind: str
    student: str
    guardian: str | None
    kiosk: str
    at: datetime
    note: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class GateEventsStored:
    """The ingest stored a batch of gate events about children (``ChildLeft``, in the batch's order);
    published after its commit, once per batch, so that their notifications are stored in one go."""

    events: tuple[ChildLeft, ...]


@dataclass(frozen=True)
class CodeIssued:
    """A one-time pickup code was issued (central/pickup/codes.py): the child's guardians are told."""

    school_id: int
    code_id: int


@dataclass(frozen=True)
class CodeUsed:
    """A one-time pickup code was used up online (a guard at central); a gate's use comes as its pickup event."""

    school_id: int
    code_id: int


@dataclass(frozen=True)
class FeedAdvanced:
    """The ingest stored events of a school: its feed's head is now ``head`` (central/kiosks/feed.py);
    published after the ingest's commit, once per school and stored batch. The live pages follow it."""

    school_id: int
    head: int


@dataclass(frozen=True)
class SchoolWatched:
    """The first live page of a school opened in this process (``watching``), or its last one closed
    (central/web/live.py). Central serve beside ingest workers follows a school's feed only while a page
    of it is open here (central/kiosks/bus.py): a city's whole feed is not parsed for pages nobody has open."""

    school_id: int
    watching: bool


@dataclass(frozen=True)
class AbsenceExcused:
    """A child's absence on a day was excused (请假) or its note changed (central/programme/excuses.py)."""

    school_id: int
    student_id: int
    day: date


Handler = Callable[[Any], None]


class DomainEvents:
    """The dispatcher: handlers by event type, called in the order they subscribed."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = defaultdict(list)

    def subscribe(self, event_type: type, handler: Handler) -> None:
        self._handlers[event_type].append(handler)

    def publish(self, event: object) -> None:
        for handler in list(self._handlers.get(type(event), ())):
            try:
                handler(event)
            except Exception:  # noqa: BLE001 - the change is committed; one subscriber must not stop the others
                log.exception("handler %r failed on %r", handler, event)


def attach(session: Session, dispatcher: DomainEvents) -> None:
    """Deliver the events this session's services record to ``dispatcher`` after each commit."""
    session.info[_DISPATCHER] = dispatcher


def record(session: Session, event: object) -> None:
    """Keep ``event`` until this session's transaction commits (then delivered) or rolls back (dropped)."""
    session.info.setdefault(_PENDING, {})[event] = None  # a dict: ordered, and an event recorded twice is one


def pending(session: Session) -> list[object]:
    return list(session.info.get(_PENDING, {}))


@sa.event.listens_for(Session, "after_commit")
def _deliver(session: Session) -> None:
    # SQLAlchemy forbids SQL on ``session`` here; handlers use sessions of their own.
    waiting = session.info.pop(_PENDING, None)
    dispatcher = session.info.get(_DISPATCHER)
    if not waiting or dispatcher is None:
        return
    for event in waiting:
        dispatcher.publish(event)


@sa.event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(_PENDING, None)
