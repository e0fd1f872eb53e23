"""The late-pickup ladder (issue 16): a child still on site after the session's end plus the pickup grace.

At the end plus grace the child's guardians are told; ``STEP`` later the child's emergency contacts and the
teacher in charge (the group's staff member and the session's duty staff, by SMS to their phone on file,
and the school's staff channels); another ``STEP`` later a safety incident and a message on the school's admin
channels. Each step is taken only while the child is
still not picked up (no ``pickup``, ``self_dismiss`` or ``checkout`` event after the check-in), and once:
its outbox rows are keyed ``late:<session>:<student>:<step>``, the incident by its detail.

``escalate`` runs on an injected ``now`` (central calls it with its clock, tests with theirs).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from central.core import clock
from central.core.i18n import LOCALES, t
from central.kiosks.models import Event, SafetyIncident
from central.notifications import outbox
from central.notifications.models import EmergencyContact
from central.programme.models import CareSession, DutyAssignment, InterestGroup, Staff
from central.schools.models import School, Student

#: the wait between two steps
STEP = timedelta(minutes=10)
#: sessions ended longer ago than this are no longer looked at
HORIZON = timedelta(hours=6)
LEFT = ("pickup", "self_dismiss", "checkout")
INCIDENT = "late_pickup_unresolved"


def still_here(session: Session, care: CareSession) -> list[Student]:
    """The children checked in to ``care`` and not gone since their check-in."""
    school_events = select(Event).where(Event.school_id == care.school_id,
                                        col(Event.at) >= care.starts_at - timedelta(hours=2),
                                        col(Event.at) <= care.ends_at + HORIZON)
    checked_in: dict[str, datetime] = {}
    left: dict[str, datetime] = {}
    for e in session.exec(school_events.where(col(Event.kind).in_(("checkin", *LEFT)))):
        if not e.student:
            continue
        at = clock.as_utc(e.at)
        if e.kind == "checkin" and e.session == str(care.id):
            checked_in[e.student] = max(at, checked_in.get(e.student, at))
        elif e.kind in LEFT:
            left[e.student] = max(at, left.get(e.student, at))
    waiting = [no for no, at in checked_in.items() if left.get(no, at - timedelta(seconds=1)) < at]
    if not waiting:
        return []
    return list(session.exec(select(Student).where(Student.school_id == care.school_id,
                                                   col(Student.student_no).in_(waiting)).order_by(col(Student.id))))


def _contact_rows(session: Session, *, school: School, care: CareSession, student: Student, ref: str,
                  at: datetime, now: datetime) -> list[dict]:
    rows = []
    name = outbox.given_name(student.name)
    when = clock.to_local(at, school).strftime("%Y-%m-%d %H:%M")

    def row(recipient: str, channel: str, address: str, language: str) -> dict:
        language = language if language in LOCALES else "zh_CN"
        return {"school_id": school.id, "event_ref": ref, "recipient": recipient, "kind": "late_pickup",
                "channel": channel, "address": address, "language": language,
                "body": t("notify.late_pickup_contact", language, name=name, place=care.place, time=when),
                "state": "pending", "tries": 0, "next_try_at": now, "last_error": "", "created_at": now}

    for c in session.exec(select(EmergencyContact).where(EmergencyContact.student_id == student.id)):
        rows.append(row(f"e{c.id}", c.channel, c.address, c.language))
    group = session.get(InterestGroup, care.group_id)
    staff_ids = {d.staff_id for d in session.exec(select(DutyAssignment).where(DutyAssignment.session_id == care.id))}
    if group is not None and group.staff_id is not None:
        staff_ids.add(group.staff_id)
    if staff_ids:
        for s in session.exec(select(Staff).where(col(Staff.id).in_(staff_ids)).order_by(col(Staff.id))):
            if s.phone:
                rows.append(row(f"s{s.id}", "sms", s.phone, "zh_CN"))
    rows += outbox.school_rows(session, school=school, audience="staff", ref=ref, kind="late_pickup",
                               key="notify.late_pickup_contact", now=now, name=name, place=care.place, time=when)
    return rows


def escalate(session: Session, *, now: datetime, grace: timedelta) -> int:
    """Take the ladder's steps due at ``now``; returns the outbox rows and incidents newly stored. Commits."""
    sessions = session.exec(
        select(CareSession).where(col(CareSession.ends_at) <= now - grace, col(CareSession.ends_at) >= now - HORIZON)
    ).all()
    new = 0
    for care in sessions:
        school = session.get(School, care.school_id)
        overdue = clock.as_utc(care.ends_at) + grace
        steps = [step for step in (1, 2, 3) if now >= overdue + STEP * (step - 1)]
        for student in still_here(session, care):
            ref = f"late:{care.id}:{student.id}"
            if 1 in steps:
                happening = outbox.Happening(ref=f"{ref}:1", kind="late_pickup", student_id=student.id,
                                             at=clock.as_utc(care.ends_at), where=care.place)
                new += outbox.store(session, outbox.guardian_rows(session, school=school, happenings=[happening], now=now))
            if 2 in steps:
                new += outbox.store(session, _contact_rows(session, school=school, care=care, student=student,
                                                           ref=f"{ref}:2", at=clock.as_utc(care.ends_at), now=now))
            if 3 in steps:
                detail = f"{ref}: {student.student_no} not picked up {int((now - overdue) / timedelta(minutes=1))} min after the pickup grace"
                known = session.exec(select(SafetyIncident.id).where(
                    SafetyIncident.school_id == school.id, SafetyIncident.kind == INCIDENT,
                    col(SafetyIncident.detail).startswith(f"{ref}:"))).first()
                if known is None:
                    session.add(SafetyIncident(school_id=school.id, kiosk=None, kind=INCIDENT, detail=detail, created_at=now))
                    new += 1
                new += outbox.store(session, outbox.school_rows(
                    session, school=school, audience="admin", ref=f"{ref}:3", kind="late_pickup",
                    key="notify.late_pickup_admin", now=now, name=outbox.given_name(student.name), place=care.place,
                    time=clock.to_local(care.ends_at, school).strftime("%Y-%m-%d %H:%M")))
            session.commit()
    return new



