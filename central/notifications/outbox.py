"""The outbox: every notification is stored before it is sent, sent at least once, retried, parked.

``enqueue_child_left`` turns a stored gate event (a child picked up or walked out alone) into one row per
guardian who has the right to know and channel they consented to (``GuardianChannel``); the row is stored
once per (event, recipient, channel), so an event handled twice stores nothing new.

``dispatch_due`` sends the rows that are due, one at a time, each state change committed on its own: the
try is counted and the next try set *before* the send, so a notification in flight when central dies is
due again after its backoff and is sent again (at least once), carrying its id as the idempotency key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from central.core import clock
from central.core.events import ChildLeft
from central.core.i18n import LOCALES, t
from central.notifications.models import GuardianChannel, Notification
from central.schools.links import link_holds
from central.schools.models import GuardianLink, School, Student

log = logging.getLogger(__name__)

#: tries before a notification is parked (the admin sees it)
MAX_TRIES = 6
#: the wait after the first failed try; doubled after each further one (30 s, 1, 2, 4, 8 min)
FIRST_BACKOFF = timedelta(seconds=30)
#: how many due notifications one round sends at most
ROUND = 200


class Channel(Protocol):
    def send(self, notification: Notification, *, secret: str) -> None:
        """Hand ``notification`` over; raise on any failure (it is tried again)."""


def given_name(name: str) -> str:
    """The child's given name, the least a message needs: the family name dropped.

    A Chinese name (CJK characters only) of 2 or 3 characters carries a one-character family name first
    (王小明 → 小明); of 4 characters a two-character one (欧阳娜娜 → 娜娜). A name in Latin letters of
    several words is taken as given name first (Anna Li → Anna). Anything else is kept whole."""
    name = name.strip()
    if name and all("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" for ch in name):
        if len(name) in (2, 3):
            return name[1:]
        if len(name) == 4:
            return name[2:]
        return name
    words = name.split()
    return words[0] if len(words) > 1 else name


def backoff(tries: int) -> timedelta:
    """The wait after the ``tries``-th failed try (1, 2, ...)."""
    return FIRST_BACKOFF * 2 ** (tries - 1)


def compose(event: ChildLeft, *, child: str, relation: str, school: School, language: str) -> str:
    """The text: who, what, where, when (the school's zone) — no class, photo or phone number."""
    when = clock.to_local(event.at, school).strftime("%Y-%m-%d %H:%M")
    name = given_name(child)
    if event.kind == "pickup":
        who = relation or t("notify.a_guardian", language)
        return t("notify.picked_up", language, name=name, who=who, gate=event.kiosk, time=when)
    return t("notify.left_alone", language, name=name, gate=event.kiosk, time=when)


def enqueue_child_left(session: Session, *, school: School, event: ChildLeft, now: datetime) -> int:
    """Store the notifications ``event`` calls for; returns how many were new. Commits."""
    student = session.exec(select(Student).where(Student.school_id == school.id, Student.student_no == event.student)).first()
    if student is None:
        return 0
    day = clock.to_local(event.at, school).date()
    # The guardians with the right to know: links of this child that hold on the day (not barred, in their dates).
    links = session.exec(select(GuardianLink).where(GuardianLink.student_id == student.id, link_holds(day))).all()
    if not links:
        return 0
    relation = ""
    if event.kind == "pickup" and event.guardian and event.guardian.startswith("g") and event.guardian[1:].isdigit():
        picker = session.exec(select(GuardianLink).where(GuardianLink.student_id == student.id,
                                                         GuardianLink.guardian_id == int(event.guardian[1:]))).first()
        relation = picker.relation if picker else ""
    consents = session.exec(
        select(GuardianChannel).where(col(GuardianChannel.guardian_id).in_([link.guardian_id for link in links]))
    ).all()
    rows = [
        {
            "school_id": school.id, "event_ref": f"event:{event.event_id}", "recipient": f"g{c.guardian_id}",
            "channel": c.channel, "address": c.address,
            "language": c.language if c.language in LOCALES else "zh_CN",
            "body": compose(event, child=student.name, relation=relation, school=school,
                            language=c.language if c.language in LOCALES else "zh_CN"),
            "state": "pending", "tries": 0, "next_try_at": now, "last_error": "", "created_at": now,
        }
        for c in consents
    ]
    if not rows:
        return 0
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = Notification.__table__
    result = session.execute(
        insert(table).values(rows).on_conflict_do_nothing(index_elements=["event_ref", "recipient", "channel"])
        .returning(table.c.id)
    )
    new = len(result.all())
    session.commit()
    return new


def on_child_left(engine: sa.Engine, *, now: Callable[[], datetime] = clock.utcnow) -> Callable[[ChildLeft], None]:
    """The ``ChildLeft`` subscriber: stores the event's notifications in a session of its own."""

    def handle(event: ChildLeft) -> None:
        with Session(engine) as session:
            school = session.get(School, event.school_id)
            if school is not None:
                enqueue_child_left(session, school=school, event=event, now=now())

    return handle


def dispatch_due(session: Session, *, now: datetime, channels: Mapping[str, Channel]) -> int:
    """Send the notifications due at ``now`` on the channels given; returns how many were sent.

    Each one: the try counted and the next try set, committed; sent; marked sent (or its error kept,
    parked after ``MAX_TRIES``), committed. A channel not given leaves its notifications waiting."""
    due = session.exec(
        select(Notification.id)
        .where(Notification.state == "pending", col(Notification.next_try_at) <= now,
               col(Notification.channel).in_(list(channels)))
        .order_by(col(Notification.next_try_at), col(Notification.id))
        .limit(ROUND)
    ).all()
    sent = 0
    for notification_id in due:
        notification = session.get(Notification, notification_id)
        tries = notification.tries
        # Claim it: the try counted and the next one set before the send (a crash mid-send: due again
        # after the backoff, sent again); a dispatcher that counted it first wins.
        claimed = session.execute(
            sa.update(Notification)
            .where(Notification.id == notification_id, Notification.state == "pending", Notification.tries == tries)
            .values(tries=tries + 1, next_try_at=now + backoff(tries + 1))
        ).rowcount
        session.commit()
        if not claimed:
            continue
        session.refresh(notification)
        secret = ""
        if notification.recipient.startswith("g"):
            consent = session.exec(select(GuardianChannel).where(
                GuardianChannel.guardian_id == int(notification.recipient[1:]), GuardianChannel.channel == notification.channel)).first()
            if consent is None:  # consent withdrawn since: nothing goes out
                notification.state, notification.last_error = "parked", "consent withdrawn"
                session.add(notification)
                session.commit()
                continue
            secret = consent.secret
        try:
            channels[notification.channel].send(notification, secret=secret)
        except Exception as exc:  # noqa: BLE001 - any failure is a failed try
            notification.last_error = f"{type(exc).__name__}: {exc}"[:500]
            if notification.tries >= MAX_TRIES:
                notification.state = "parked"
            log.warning("notification %s on %s failed (try %d): %s", notification.id, notification.channel,
                        notification.tries, notification.last_error)
        else:
            notification.state, notification.sent_at, notification.last_error = "sent", now, ""
            sent += 1
        session.add(notification)
        session.commit()
    return sent


def listed(session: Session, *, school: School, state: str | None = None) -> list[Notification]:
    """The school's notifications (in one state), newest first."""
    stmt = select(Notification).where(Notification.school_id == school.id)
    if state is not None:
        stmt = stmt.where(Notification.state == state)
    return list(session.exec(stmt.order_by(col(Notification.id).desc()).limit(500)))
