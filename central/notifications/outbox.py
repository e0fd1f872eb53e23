"""The outbox: every notification is stored before it is sent, sent at least once, retried, parked.

``enqueue_child_left`` turns a stored gate event (a child picked up or walked out alone) into one row per
guardian who has the right to know and channel they consented to (``GuardianChannel``); the row is stored
once per (event, recipient, channel), so an event handled twice stores nothing new.

``dispatch_due`` sends the rows that are due, one at a time, each state change committed on its own: the
try is counted and the next try set *before* the send, so a notification in flight when central dies is
due again after its backoff and is sent again (at least once), carrying its id as the idempotency key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from central.core import clock
from central.core.events import (
    ChildAlertRaised,
    ChildLeft,
    DomainEvents,
    GateEventsStored,
    CodeIssued,
    CodeUsed,
)
from central.core.errors import Conflict, Missing
from central.core.i18n import LOCALES, t
from central.notifications.models import (
    DEFAULT_EVENTS,
    SAFETY_EVENTS,
    EmergencyContact,
    GuardianChannel,
    Notification,
    NotifyPreference,
    SchoolChannel,
    SchoolNotifySettings,
    WebhookSubscription,
)
from central.notifications import channels as notify_channels
from central.kiosks.models import Event, SafetyIncident
from central.pickup.models import PickupCode
from central.programme import excuses
from central.programme.models import CareSession
from central.schools.links import link_acts_on
from central.schools.models import GuardianLink, Kiosk, School, Student

log = logging.getLogger(__name__)

#: the stored gate events the guardians may hear of (the ingest publishes them as ``GateEventsStored``)
TOLD = ("pickup", "self_dismiss", "checkin", "pickup_denied")
#: tries before a notification is parked (the admin sees it)
MAX_TRIES = 6
#: the wait after the first failed try; doubled after each further one (30 s, 1, 2, 4, 8 min)
FIRST_BACKOFF = timedelta(seconds=30)
#: how many due notifications one round sends at most
ROUND = 200
#: claimed and recorded together (one commit each way); a crash resends at most this many, each under its id
CHUNK = 50
#: sends at once
SENDERS = 8
#: ``last_error`` of a notification claimed and being sent: still there at a start, central died mid-send
IN_FLIGHT = "in flight"
#: how far back ``recover`` looks for stored gate events without their notifications
RECOVER_SINCE = timedelta(hours=24)


class Channel(Protocol):
    def send(self, notification: Notification, *, secret: str) -> str | None:
        """Hand ``notification`` over; raise on any failure (it is tried again); may return the receiver's answer."""


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


#: relations as guardians are usually recorded, and their catalogue key: shown in the reader's language
RELATIONS = {
    "妈妈": "mother", "母亲": "mother", "mum": "mother", "mom": "mother", "mother": "mother",
    "爸爸": "father", "父亲": "father", "dad": "father", "father": "father",
    "爷爷": "grandfather", "外公": "grandfather", "姥爷": "grandfather", "祖父": "grandfather", "grandfather": "grandfather",
    "奶奶": "grandmother", "外婆": "grandmother", "姥姥": "grandmother", "祖母": "grandmother", "grandmother": "grandmother",
    "哥哥": "brother", "brother": "brother", "姐姐": "sister", "sister": "sister",
    "叔叔": "uncle", "舅舅": "uncle", "伯伯": "uncle", "uncle": "uncle",
    "阿姨": "aunt", "姑姑": "aunt", "姨妈": "aunt", "舅妈": "aunt", "aunt": "aunt",
}


def relation_text(relation: str, language: str) -> str:
    """The relation as the reader reads it: kept as recorded when recorded in the reader's script, a known one
    translated ("妈妈" → "mother", "Dad" → "爸爸"), another kept where it can be read, else "a guardian"."""
    key = RELATIONS.get(relation.strip().lower())
    if language == "zh_CN" and not relation.isascii():
        return relation.strip()  # recorded in Chinese: read as recorded
    if key:
        return t(f"notify.rel.{key}", language)
    if relation.strip() and (language == "zh_CN" or relation.isascii()):
        return relation.strip()
    return t("notify.a_guardian", language)


@dataclass(frozen=True)
class Happening:
    """Something a child's guardians are told about: ``kind`` one of ``EVENT_KINDS``; ``ref`` names it
    once (the outbox stores one row per ref, recipient and channel); ``where`` a gate or a place."""

    ref: str
    kind: str
    student_id: int
    at: datetime
    where: str = ""
    who: int | None = None  # the guardian who picked the child up
    person: str = ""  # the person a one-time code names
    day: date | None = None  # the day a one-time code is good for


def compose(happening: Happening, *, child: str, relation: str, school: School, language: str) -> str:
    """The text: the child's given name, what, when (the school's zone), where — no class, photo or phone number."""
    when = clock.to_local(happening.at, school).strftime("%Y-%m-%d %H:%M")
    name = given_name(child)
    kind = happening.kind
    if kind == "picked_up":
        who = relation_text(relation, language) if relation else t("notify.a_guardian", language)
        return t("notify.picked_up", language, name=name, who=who, gate=happening.where, time=when)
    if kind == "left_alone":
        return t("notify.left_alone", language, name=name, gate=happening.where, time=when)
    day = happening.day.isoformat() if happening.day else ""
    return t(f"notify.{kind}", language, name=name, gate=happening.where, place=happening.where, time=when,
             person=happening.person, day=day)


def _language(value: str) -> str:
    return value if value in LOCALES else "zh_CN"


def held_until(pref: NotifyPreference | None, *, kind: str, now: datetime, school: School) -> datetime:
    """When a message may go: ``now``, or the end of the guardian's quiet hours (school zone) — safety ones never wait."""
    if pref is None or pref.quiet_from is None or pref.quiet_until is None or kind in SAFETY_EVENTS:
        return now
    local = clock.to_local(now, school)
    start, end = pref.quiet_from, pref.quiet_until
    at = local.time().replace(tzinfo=None)
    quiet = start <= at < end if start <= end else (at >= start or at < end)
    if not quiet:
        return now
    until = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if until <= local:
        until += timedelta(days=1)
    return until.astimezone(UTC)


def wants(pref: NotifyPreference | None, kind: str) -> bool:
    """Whether the guardian hears of ``kind``: safety messages always; ``checked_in`` only when asked for."""
    if kind in SAFETY_EVENTS:
        return True
    chosen = DEFAULT_EVENTS if pref is None or pref.events is None else pref.events
    return kind in chosen


def store(session: Session, rows: list[dict]) -> int:
    """Insert outbox rows, once per (event, recipient, channel); returns how many were new. Does not commit."""
    if not rows:
        return 0
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = Notification.__table__
    new = 0
    for start in range(0, len(rows), 500):
        result = session.execute(
            insert(table).values(rows[start : start + 500])
            .on_conflict_do_nothing(index_elements=["event_ref", "recipient", "channel"]).returning(table.c.id)
        )
        new += len(result.all())
    return new


def guardian_rows(session: Session, *, school: School, happenings: list[Happening], now: datetime) -> list[dict]:
    """The outbox rows ``happenings`` call for: per child, the guardians whose link holds on the day (never a
    barred one), each channel they consented to and chose, in their language."""
    if not happenings:
        return []
    student_ids = {h.student_id for h in happenings}
    students = {s.id: s for s in session.exec(select(Student).where(col(Student.id).in_(student_ids),
                                                                    Student.school_id == school.id))}
    links = session.exec(select(GuardianLink).where(col(GuardianLink.student_id).in_(student_ids))).all()
    guardian_ids = {link.guardian_id for link in links}
    consents: dict[int, list[GuardianChannel]] = {}
    for c in session.exec(select(GuardianChannel).where(col(GuardianChannel.guardian_id).in_(guardian_ids))):
        consents.setdefault(c.guardian_id, []).append(c)
    prefs = {p.guardian_id: p for p in session.exec(
        select(NotifyPreference).where(col(NotifyPreference.guardian_id).in_(guardian_ids)))}
    by_child: dict[int, list[GuardianLink]] = {}
    for link in links:
        by_child.setdefault(link.student_id, []).append(link)
    rows = []
    for h in happenings:
        student = students.get(h.student_id)
        if student is None:
            continue
        day = clock.to_local(h.at, school).date()
        child_links = by_child.get(h.student_id, [])
        relation = next((link.relation for link in child_links if link.guardian_id == h.who), "")
        for link in child_links:
            if not link_acts_on(link, day):  # barred, or outside its dates: told nothing
                continue
            pref = prefs.get(link.guardian_id)
            if not wants(pref, h.kind):
                continue
            due = held_until(pref, kind=h.kind, now=now, school=school)
            for c in consents.get(link.guardian_id, []):
                if pref is not None and pref.channels is not None and c.channel not in pref.channels:
                    continue
                language = _language(c.language)
                rows.append({
                    "school_id": school.id, "event_ref": h.ref, "recipient": f"g{c.guardian_id}", "kind": h.kind,
                    "channel": c.channel, "address": c.address, "language": language,
                    "body": compose(h, child=student.name, relation=relation, school=school, language=language),
                    "state": "pending", "tries": 0, "next_try_at": due, "last_error": "", "created_at": now,
                })
    return rows + subscription_rows(session, school=school, happenings=happenings, students=students, now=now)


def webhook_payload(happening: Happening, *, school: School, student: Student) -> str:
    """What an integrator's webhook receives (``WebhookPayload`` in the OpenAPI): the school's own systems
    know the child by number; no name, photo or phone number."""
    return json.dumps({
        "event": happening.ref, "kind": happening.kind, "school": school.code, "student": student.student_no,
        "at": clock.as_utc(happening.at).isoformat(timespec="seconds").replace("+00:00", "Z"), "where": happening.where,
    }, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def subscription_rows(session: Session, *, school: School, happenings: list[Happening], students: dict[int, Student],
                      now: datetime) -> list[dict]:
    """One delivery per happening and integrator subscribed to its kind (``WebhookSubscription``)."""
    subscriptions = session.exec(select(WebhookSubscription).where(WebhookSubscription.school_id == school.id)).all()
    rows = []
    for h in happenings:
        student = students.get(h.student_id)
        if student is None:
            continue
        for sub in subscriptions:
            if h.kind in sub.kinds:
                rows.append({"school_id": school.id, "event_ref": h.ref, "recipient": f"w{sub.id}", "kind": h.kind,
                             "channel": "webhook", "address": sub.url, "language": "zh_CN",
                             "body": webhook_payload(h, school=school, student=student), "state": "pending", "tries": 0,
                             "next_try_at": now, "last_error": "", "created_at": now})
    return rows


def enqueue(session: Session, *, school: School, happenings: list[Happening], now: datetime) -> int:
    """Store the guardians' notifications ``happenings`` call for; returns how many were new. Commits."""
    new = store(session, guardian_rows(session, school=school, happenings=happenings, now=now))
    session.commit()
    return new


def _guardian_id(ref: str | None) -> int | None:
    return int(ref[1:]) if ref and ref.startswith("g") and ref[1:].isdigit() else None


def happenings_of(session: Session, school: School, events: list[ChildLeft], *, ids: dict[str, int] | None = None) -> list[Happening]:
    """The happenings a batch of stored gate events calls for: a pickup (and the one-time code it used), a
    walk-out, a check-in, a barred person's attempt. ``ids``: the school's student numbers -> ids, when
    the caller read them already (for many schools at once)."""
    if ids is None:
        numbers = {e.student for e in events if e.student}
        ids = dict(session.exec(select(Student.student_no, Student.id).where(
            Student.school_id == school.id, col(Student.student_no).in_(numbers))).all()) if numbers else {}
    found = []
    for e in events:
        student_id = ids.get(e.student)
        if student_id is None:
            continue
        base = {"student_id": student_id, "at": e.at, "where": e.kiosk}
        if e.kind == "pickup":
            found.append(Happening(ref=f"event:{e.event_id}", kind="picked_up", who=_guardian_id(e.guardian), **base))
            if e.note and e.note.startswith("code:") and e.note[5:].isdigit():
                code = code_happening(session, code_id=int(e.note[5:]), used=True, where=e.kiosk, at=e.at)
                if code is not None and code[0] is not None and code[0].id == school.id and code[1].student_id == student_id:
                    found.append(code[1])
        elif e.kind == "self_dismiss":
            found.append(Happening(ref=f"event:{e.event_id}", kind="left_alone", **base))
        elif e.kind == "checkin":
            found.append(Happening(ref=f"event:{e.event_id}", kind="checked_in", **base))
        elif e.kind == "pickup_denied" and e.reason == "barred":
            found.append(Happening(ref=f"event:{e.event_id}", kind="barred_attempt", **base))
    return found


def school_rows(session: Session, *, school: School, audience: str, ref: str, kind: str, key: str, now: datetime,
                **params: object) -> list[dict]:
    """Outbox rows for the school's own channels (``SchoolChannel``) for ``audience``: text ``key`` with ``params``."""
    rows = []
    for c in session.exec(select(SchoolChannel).where(SchoolChannel.school_id == school.id, SchoolChannel.audience == audience)
                          .order_by(col(SchoolChannel.id))):
        language = _language(c.language)
        rows.append({"school_id": school.id, "event_ref": ref, "recipient": f"c{c.id}", "kind": kind, "channel": c.channel,
                     "address": c.address, "language": language, "body": t(key, language, **params), "state": "pending",
                     "tries": 0, "next_try_at": now, "last_error": "", "created_at": now})
    return rows


def _barred_incidents(session: Session, *, school: School, happenings: list[Happening], now: datetime) -> int:
    """A barred person's attempt is a safety incident for the school admin and a message on the school's
    admin channels, at once (once per gate event)."""
    found = 0
    for h in happenings:
        if h.kind != "barred_attempt":
            continue
        detail = f"{h.ref}: a person barred by a custody order tried to pick up student #{h.student_id} at {h.where}"
        if session.exec(select(SafetyIncident.id).where(SafetyIncident.school_id == school.id,
                                                        SafetyIncident.kind == "barred_attempt",
                                                        col(SafetyIncident.detail).startswith(f"{h.ref}:"))).first() is None:
            session.add(SafetyIncident(school_id=school.id, kiosk=h.where, kind="barred_attempt", detail=detail, created_at=now))
            found += 1
        student = session.get(Student, h.student_id)
        found += store(session, school_rows(
            session, school=school, audience="admin", ref=h.ref, kind=h.kind, key="notify.barred_attempt_admin", now=now,
            name=given_name(student.name) if student else "", gate=h.where,
            time=clock.to_local(h.at, school).strftime("%Y-%m-%d %H:%M")))
    return found


def enqueue_child_left(session: Session, *, school: School, event: ChildLeft, now: datetime) -> int:
    """Store the notifications one stored gate event calls for; returns how many were new. Commits."""
    return enqueue(session, school=school, happenings=happenings_of(session, school, [event]), now=now)


def enqueue_gate_events(session: Session, *, events: list[ChildLeft], now: datetime) -> int:
    """Store the notifications a batch of stored gate events calls for (all schools, one transaction). Commits."""
    rows: list[dict] = []
    by_school: dict[int, list[ChildLeft]] = {}
    for e in events:
        by_school.setdefault(e.school_id, []).append(e)
    incidents = 0
    # The children's ids and their schools in one query each, not two a school: in a city one batch of
    # the ingest holds events of hundreds of schools, and this runs before the batch is acked. Only the
    # schools with an event of a child on their roll are read (an unknown number calls for nothing).
    numbers = {e.student for e in events if e.student}
    ids: dict[int, dict[str, int]] = {school_id: {} for school_id in by_school}
    if numbers:
        for school_id, number, student_id in session.exec(
            select(Student.school_id, Student.student_no, Student.id)
            .where(col(Student.school_id).in_(by_school), col(Student.student_no).in_(numbers))
        ):
            ids[school_id][number] = student_id
    known = [school_id for school_id in by_school if ids[school_id]]
    schools = {school.id: school for school in session.exec(select(School).where(col(School.id).in_(known)))} if known else {}
    for school_id, some in by_school.items():
        school = schools.get(school_id)
        if school is not None:
            happenings = happenings_of(session, school, some, ids=ids[school_id])
            rows += guardian_rows(session, school=school, happenings=happenings, now=now)
            incidents += _barred_incidents(session, school=school, happenings=happenings, now=now)
    new = store(session, rows) + incidents
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


def on_gate_events(engine: sa.Engine, *, now: Callable[[], datetime] = clock.utcnow,
                   wake: Callable[[], None] | None = None) -> Callable[[GateEventsStored], None]:
    """The ``GateEventsStored`` subscriber: one batch of the ingest, its notifications in one insert; ``wake``
    tells the sender there is something to send."""

    def handle(stored: GateEventsStored) -> None:
        with Session(engine) as session:
            new = enqueue_gate_events(session, events=list(stored.events), now=now())
        if new and wake is not None:
            wake()

    return handle


def _secrets(session: Session, rows: list[Notification]) -> dict[int, tuple[str, str]]:
    """Per notification: (the secret that signs for its recipient, why it may no longer be sent — empty when it
    may). One query per kind of recipient for a whole chunk: the guardians' consents, the subscriptions, the
    school's channels, the emergency contacts (staff, ``s<id>``: reached on the phone on file, always)."""
    wanted: dict[str, set[int]] = {"g": set(), "w": set(), "c": set(), "e": set()}
    for n in rows:
        kind, key = n.recipient[:1], n.recipient[1:]
        if kind in wanted and key.isdigit():
            wanted[kind].add(int(key))
    consents = {(c.guardian_id, c.channel): c.secret for c in session.exec(
        select(GuardianChannel).where(col(GuardianChannel.guardian_id).in_(wanted["g"])))} if wanted["g"] else {}
    subscriptions = {s.id: s for s in session.exec(
        select(WebhookSubscription).where(col(WebhookSubscription.id).in_(wanted["w"])))} if wanted["w"] else {}
    own = {c.id: c for c in session.exec(
        select(SchoolChannel).where(col(SchoolChannel.id).in_(wanted["c"])))} if wanted["c"] else {}
    contacts = set(session.exec(select(EmergencyContact.id).where(
        col(EmergencyContact.id).in_(wanted["e"])))) if wanted["e"] else set()
    found: dict[int, tuple[str, str]] = {}
    for n in rows:
        kind, key = n.recipient[:1], n.recipient[1:]
        number = int(key) if key.isdigit() else -1
        if kind == "g":
            secret = consents.get((number, n.channel))
            found[n.id] = ("", "consent withdrawn") if secret is None else (secret, "")
        elif kind == "w":
            subscription = subscriptions.get(number)
            ok = subscription is not None and subscription.school_id == n.school_id
            found[n.id] = (subscription.secret, "") if ok else ("", "subscription removed")
        elif kind == "c":
            channel = own.get(number)
            ok = channel is not None and channel.school_id == n.school_id
            found[n.id] = (channel.secret, "") if ok else ("", "channel removed")
        elif kind == "e":  # an emergency contact removed (their consent withdrawn): nothing goes out
            found[n.id] = ("", "") if number in contacts else ("", "contact removed")
        else:
            found[n.id] = ("", "")
    return found


def dispatch_due(session: Session, *, now: datetime, channels: Mapping[str, Channel]) -> int:
    """Send the notifications due at ``now`` on the channels given; returns how many were sent.

    A chunk at a time (``CHUNK``): the tries counted, the next tries set and the rows marked in flight, in one
    commit; sent, ``SENDERS`` at once; each marked sent (or its error kept, parked after ``MAX_TRIES``), in one
    commit. A crash between the two commits sends that chunk's notifications again, each under its own id (the
    idempotency key), never one that was recorded as sent. A school's own SMS gateway or mail server
    (``own_channels``) takes the place of the one given; a channel neither given nor the school's own leaves its
    notifications waiting."""
    own = own_channels(session)
    by_channel: dict[str, set[int]] = {}
    for school_id, channel in own:
        by_channel.setdefault(channel, set()).add(school_id)
    goes = sa.or_(col(Notification.channel).in_(list(channels)),
                  *(sa.and_(Notification.channel == channel, col(Notification.school_id).in_(schools))
                    for channel, schools in by_channel.items()))
    due = session.exec(
        select(Notification.id, Notification.tries)
        .where(Notification.state == "pending", col(Notification.next_try_at) <= now, goes)
        .order_by(col(Notification.next_try_at), col(Notification.id))
        .limit(ROUND)
    ).all()
    if not due:
        return 0
    sent = 0
    with ThreadPoolExecutor(max_workers=min(SENDERS, len(due)), thread_name_prefix="notify-send") as pool:
        for start in range(0, len(due), CHUNK):
            sent += _dispatch_chunk(session, due[start : start + CHUNK], now=now, channels=channels, own=own, pool=pool)
    return sent


def _claim(session: Session, due, *, now: datetime) -> list[int]:
    """Count the try and set the next one before the send (a crash mid-send: due again, sent again), one UPDATE
    per number of tries so far; a row another dispatcher counted first (its tries moved on) is not claimed."""
    by_tries: dict[int, list[int]] = {}
    for notification_id, tries in due:
        by_tries.setdefault(tries, []).append(notification_id)
    claimed: list[int] = []
    for tries, ids in by_tries.items():
        claimed += session.execute(
            sa.update(Notification.__table__)
            .where(Notification.__table__.c.id.in_(ids), Notification.__table__.c.state == "pending",
                   Notification.__table__.c.tries == tries)
            .values(tries=tries + 1, next_try_at=now + backoff(tries + 1), last_error=IN_FLIGHT)
            .returning(Notification.__table__.c.id)
        ).scalars().all()
    session.commit()
    return sorted(claimed)


def own_channels(session: Session) -> dict[tuple[int, str], Channel]:
    """The schools' own SMS gateways and mail servers (``SchoolNotifySettings``), by (school, channel): they
    take the place of central's for that school's notifications."""
    own: dict[tuple[int, str], Channel] = {}
    for s in session.exec(select(SchoolNotifySettings)):
        if s.sms_url:
            own[(s.school_id, "sms")] = notify_channels.school_sms(s.sms_url)
        if s.smtp_host:
            own[(s.school_id, "email")] = notify_channels.school_email(s.smtp_host, s.smtp_port, s.email_from,
                                                                       s.smtp_starttls, s.smtp_user, s.smtp_password)
    return own


def _dispatch_chunk(session: Session, due, *, now: datetime, channels: Mapping[str, Channel],
                    own: Mapping[tuple[int, str], Channel], pool: ThreadPoolExecutor) -> int:
    claimed = _claim(session, due, now=now)
    if not claimed:
        return 0
    rows = session.exec(select(Notification).where(col(Notification.id).in_(claimed)).order_by(col(Notification.id))
                        .execution_options(populate_existing=True)).all()
    keys = _secrets(session, rows)
    changes: list[dict] = []
    for n in rows:
        if keys[n.id][1]:  # consent withdrawn, channel or subscription removed since: nothing goes out
            changes.append({"id": n.id, "state": "parked", "last_error": keys[n.id][1]})
    to_send = [n for n in rows if not keys[n.id][1]]
    futures = {n.id: pool.submit((own.get((n.school_id, n.channel)) or channels[n.channel]).send, n, secret=keys[n.id][0])
               for n in to_send}
    sent = 0
    for n in to_send:
        try:
            answer = futures[n.id].result()
        except Exception as exc:  # noqa: BLE001 - any failure is a failed try (a BaseException: a crash)
            error = f"{type(exc).__name__}: {exc}"[:500]
            response = getattr(exc, "response", None)
            changes.append({"id": n.id, "last_error": error, "state": "parked" if n.tries >= MAX_TRIES else "pending",
                            "answer": f"{response.status_code} {response.text[:200]}".strip()[:300] if response is not None else ""})
            log.warning("notification %s on %s failed (try %d): %s", n.id, n.channel, n.tries, error)
        else:
            changes.append({"id": n.id, "state": "sent", "sent_at": now, "last_error": "",
                            "answer": answer[:300] if isinstance(answer, str) else ""})
            sent += 1
    # One UPDATE per distinct change (most of a chunk: "sent", answer "200"), one commit for the chunk.
    by_values: dict[tuple, list[int]] = {}
    for change in changes:
        by_values.setdefault(tuple(sorted((k, v) for k, v in change.items() if k != "id")), []).append(change["id"])
    table = Notification.__table__
    for values, ids in by_values.items():
        session.execute(sa.update(table).where(table.c.id.in_(ids)).values(dict(values)))
    session.commit()
    session.expire_all()
    return sent


def listed(session: Session, *, school: School, state: str | None = None) -> list[Notification]:
    """The school's notifications (in one state), newest first."""
    stmt = select(Notification).where(Notification.school_id == school.id)
    if state is not None:
        stmt = stmt.where(Notification.state == state)
    return list(session.exec(stmt.order_by(col(Notification.id).desc()).limit(500)))


def resend(session: Session, *, school: School, notification_id: int, now: datetime) -> Notification:
    """The admin sends a parked notification again (the receiver is back, the address corrected): pending,
    due at once, its tries counted afresh, under the same id (the idempotency key). Its consent, channel or
    subscription is checked again at the send: one parked for a withdrawn consent is parked again. Commits."""
    n = session.get(Notification, notification_id)
    if n is None or n.school_id != school.id:
        raise Missing("notify.notification_missing", id=notification_id)
    if n.state != "parked":
        raise Conflict("notify.not_parked", id=notification_id, state=n.state)
    n.state, n.tries, n.next_try_at, n.last_error = "pending", 0, now, ""
    session.add(n)
    session.commit()
    return n


def excused(session: Session, *, student: Student, day: date) -> bool:
    """Whether the child's absence on ``day`` was excused (请假: the teacher's roster or the guardian's leave,
    central/programme/excuses.py)."""
    return bool(excuses.excused_on(session, school=session.get(School, student.school_id), day=day, student_ids=[student.id]))


def enqueue_absent(session: Session, *, alert: ChildAlertRaised, now: datetime) -> int:
    """A gate raised "absent" (not checked in by the start plus the check-in grace): the guardians are told,
    unless the absence was excused. Commits."""
    school = session.get(School, alert.school_id)
    student = session.exec(select(Student).where(Student.school_id == alert.school_id,
                                                 Student.student_no == alert.student)).first()
    care = session.get(CareSession, int(alert.session)) if alert.session.isdigit() else None
    if school is None or student is None or care is None or care.school_id != school.id:
        return 0
    if excused(session, student=student, day=care.day):
        return 0
    happening = Happening(ref=f"absent:{care.id}:{student.id}", kind="absent", student_id=student.id,
                          at=clock.as_utc(care.starts_at), where=care.place)
    return enqueue(session, school=school, happenings=[happening], now=now)


def code_happening(session: Session, *, code_id: int, used: bool, where: str = "",
                   at: datetime | None = None) -> tuple[School, Happening] | None:
    code = session.get(PickupCode, code_id)
    if code is None:
        return None
    school = session.get(School, code.school_id)
    if used:
        return school, Happening(ref=f"pickup_code:{code.id}:used", kind="code_used", student_id=code.student_id,
                                 at=clock.as_utc(at or code.used_at), where=where, person=code.person, day=code.day)
    return school, Happening(ref=f"pickup_code:{code.id}:issued", kind="code_issued", student_id=code.student_id,
                             at=clock.as_utc(code.issued_at), person=code.person, day=code.day)


def subscribe(events: DomainEvents, engine: sa.Engine, *, now: Callable[[], datetime] | None = None,
              wake: Callable[[], None] | None = None) -> None:
    """Wire the outbox to central's domain events: what the gates stored, absences, one-time codes.
    ``now``: central's clock (``clock.utcnow``, read at each call so that a test's patch holds)."""
    now = now or (lambda: clock.utcnow())
    events.subscribe(ChildLeft, on_child_left(engine, now=now))
    events.subscribe(GateEventsStored, on_gate_events(engine, now=now, wake=wake))

    def woken(count: int) -> None:
        if count and wake is not None:
            wake()

    def on_alert(alert: ChildAlertRaised) -> None:
        if alert.kind == "absent":
            with Session(engine) as session:
                woken(enqueue_absent(session, alert=alert, now=now()))

    def on_code(event: CodeIssued | CodeUsed) -> None:
        with Session(engine) as session:
            school = session.get(School, event.school_id)
            # Used online: at the school (a guard at central), not at a gate.
            found = code_happening(session, code_id=event.code_id, used=isinstance(event, CodeUsed),
                                   where=school.name if school else "")
            if found is not None and found[0] is not None and found[0].id == event.school_id:
                woken(enqueue(session, school=found[0], happenings=[found[1]], now=now()))

    events.subscribe(ChildAlertRaised, on_alert)
    events.subscribe(CodeIssued, on_code)
    events.subscribe(CodeUsed, on_code)


def recover(session: Session, *, now: datetime, since: timedelta = RECOVER_SINCE) -> tuple[int, int]:
    """At central's start, before it sends: close the windows a crash leaves.

    - A gate event stored in the last ``since`` whose notifications were never stored (central died between
      the ingest's commit and the outbox's): stored now (once per event, recipient and channel, as always).
    - A notification in flight when central died (claimed, never marked): due at once, sent again with the
      same id — the channel's idempotency key — instead of after its backoff.

    Returns (notifications stored, notifications made due). Commits. Run by one central at its start (a second
    central's in-flight sends would be repeated, under the same idempotency key)."""
    rows = session.exec(select(Event).where(col(Event.at) >= now - since, col(Event.kind).in_(TOLD),
                                            col(Event.student).is_not(None)).order_by(col(Event.at))).all()
    codes = dict(session.exec(select(Kiosk.id, Kiosk.code).where(col(Kiosk.id).in_({e.kiosk_id for e in rows}))).all()) if rows else {}
    events = [ChildLeft(school_id=e.school_id, event_id=e.id, kind=e.kind, student=e.student, guardian=e.guardian,
                        kiosk=codes.get(e.kiosk_id, ""), at=clock.as_utc(e.at), note=e.note, reason=e.reason) for e in rows]
    stored = enqueue_gate_events(session, events=events, now=now) if events else 0
    due = session.execute(
        sa.update(Notification).where(Notification.state == "pending", Notification.last_error == IN_FLIGHT)
        .values(next_try_at=now)
    ).rowcount
    session.commit()
    if stored or due:
        log.warning("outbox recovered: %d notifications stored, %d in flight made due", stored, due)
    return stored, due
