"""Who hears what (issue 16): a guardian's choices and consents, each school's own channels — read and changed
by the guardian (``/me/notifications``) and by the school admin."""

from __future__ import annotations

import re
from datetime import datetime, time

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from central.core import clock
from central.core.errors import Invalid, Missing
from central.notifications.models import (
    AUDIENCES,
    CHANNELS,
    DEFAULT_EVENTS,
    EVENT_KINDS,
    EmergencyContact,
    GuardianChannel,
    NotifyPreference,
    SchoolChannel,
    SchoolNotifySettings,
)
from central.schools.models import Guardian, School, Student

#: the channels a guardian may consent to (the robots speak to a school's groups, not to one person)
GUARDIAN_CHANNELS = ("webhook", "sms", "email")
#: the channels an emergency contact is reached on (a person, no signing secret: SMS or email)
CONTACT_CHANNELS = ("sms", "email")


class ConsentIn(BaseModel):
    address: str = Field(min_length=1, max_length=500)
    language: str = Field(default="zh_CN", pattern=r"^(zh_CN|en)$")
    secret: str = Field(default="", max_length=128)  # the webhook's signing secret


class ConsentOut(BaseModel):
    channel: str
    address: str
    language: str
    consented_at: datetime


class PreferencesIn(BaseModel):
    events: list[str] | None = None  # None: the default (everything but checked_in)
    channels: list[str] | None = None  # None: every channel consented to
    quiet_from: time | None = None
    quiet_until: time | None = None


class PreferencesOut(PreferencesIn):
    guardian_id: int
    events: list[str]
    consents: list[ConsentOut]


class SchoolChannelIn(BaseModel):
    channel: str = Field(pattern=r"^(wecom|dingtalk|webhook|sms|email)$")
    audience: str = Field(default="admin", pattern=r"^(admin|staff)$")
    address: str = Field(min_length=1, max_length=500)
    secret: str = Field(default="", max_length=128)
    language: str = Field(default="zh_CN", pattern=r"^(zh_CN|en)$")


class SchoolChannelOut(BaseModel):
    id: int
    channel: str
    audience: str
    address: str
    language: str
    signed: bool  # a secret is set (never shown)


def guardian_of(session: Session, *, school: School, guardian_id: int) -> Guardian:
    found = session.get(Guardian, guardian_id)
    if found is None or found.school_id != school.id:
        raise Missing("notify.guardian_missing", guardian=guardian_id)
    return found


def preferences(session: Session, *, guardian: Guardian) -> PreferencesOut:
    pref = session.exec(select(NotifyPreference).where(NotifyPreference.guardian_id == guardian.id)).first()
    consents = session.exec(select(GuardianChannel).where(GuardianChannel.guardian_id == guardian.id)
                            .order_by(col(GuardianChannel.channel))).all()
    return PreferencesOut(
        guardian_id=guardian.id,
        events=list(DEFAULT_EVENTS if pref is None or pref.events is None else pref.events),
        channels=None if pref is None else pref.channels,
        quiet_from=None if pref is None else pref.quiet_from, quiet_until=None if pref is None else pref.quiet_until,
        consents=[ConsentOut(channel=c.channel, address=c.address, language=c.language,
                             consented_at=clock.as_utc(c.consented_at)) for c in consents],
    )


def set_preferences(session: Session, *, guardian: Guardian, body: PreferencesIn) -> PreferencesOut:
    unknown = sorted(set(body.events or ()) - set(EVENT_KINDS)) + sorted(set(body.channels or ()) - set(CHANNELS))
    if unknown:
        raise Invalid("notify.unknown_choice", names=", ".join(unknown))
    if (body.quiet_from is None) != (body.quiet_until is None):
        raise Invalid("notify.quiet_both")
    pref = session.exec(select(NotifyPreference).where(NotifyPreference.guardian_id == guardian.id)).first()
    pref = pref or NotifyPreference(guardian_id=guardian.id)
    pref.events = None if body.events is None else sorted(set(body.events))
    pref.channels = None if body.channels is None else sorted(set(body.channels))
    pref.quiet_from, pref.quiet_until = body.quiet_from, body.quiet_until
    session.add(pref)
    session.commit()
    return preferences(session, guardian=guardian)


def consent(session: Session, *, guardian: Guardian, channel: str, body: ConsentIn) -> PreferencesOut:
    """Record the guardian's consent to hear on ``channel`` at ``address`` (replacing an earlier one)."""
    if channel not in GUARDIAN_CHANNELS:
        raise Invalid("notify.unknown_choice", names=channel)
    if channel == "webhook" and not body.secret:
        raise Invalid("notify.webhook_secret")
    row = session.exec(select(GuardianChannel).where(GuardianChannel.guardian_id == guardian.id,
                                                     GuardianChannel.channel == channel)).first()
    row = row or GuardianChannel(guardian_id=guardian.id, channel=channel, address=body.address)
    row.address, row.language, row.secret, row.consented_at = body.address, body.language, body.secret, clock.utcnow()
    session.add(row)
    session.commit()
    return preferences(session, guardian=guardian)


def withdraw(session: Session, *, guardian: Guardian, channel: str) -> None:
    """Withdraw the consent: nothing more goes there, not even what waits in the outbox (parked when due)."""
    row = session.exec(select(GuardianChannel).where(GuardianChannel.guardian_id == guardian.id,
                                                     GuardianChannel.channel == channel)).first()
    if row is not None:
        session.delete(row)
        session.commit()


def _channel_out(c: SchoolChannel) -> SchoolChannelOut:
    return SchoolChannelOut(id=c.id, channel=c.channel, audience=c.audience, address=c.address, language=c.language,
                            signed=bool(c.secret))


def school_channels(session: Session, *, school: School) -> list[SchoolChannelOut]:
    rows = session.exec(select(SchoolChannel).where(SchoolChannel.school_id == school.id).order_by(col(SchoolChannel.id)))
    return [_channel_out(c) for c in rows]


def add_school_channel(session: Session, *, school: School, body: SchoolChannelIn) -> SchoolChannelOut:
    if body.audience not in AUDIENCES:
        raise Invalid("notify.unknown_choice", names=body.audience)
    row = SchoolChannel(school_id=school.id, **body.model_dump())
    session.add(row)
    session.commit()
    return _channel_out(row)


def remove_school_channel(session: Session, *, school: School, channel_id: int) -> None:
    row = session.get(SchoolChannel, channel_id)
    if row is None or row.school_id != school.id:
        raise Missing("notify.channel_missing", id=channel_id)
    session.delete(row)
    session.commit()


# --- a child's emergency contacts (the late-pickup ladder's second step) -------------------------------------


class EmergencyContactIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    channel: str = Field(pattern=r"^(sms|email)$")
    address: str = Field(min_length=1, max_length=500)  # a phone number (sms), an email address (email)
    language: str = Field(default="zh_CN", pattern=r"^(zh_CN|en)$")
    consented: bool = Field(description="the contact agreed to be told about the child on this channel (on paper)")


class EmergencyContactOut(BaseModel):
    id: int
    name: str
    channel: str
    address: str
    language: str
    consented_at: datetime


PHONE = re.compile(r"^\+?[0-9][0-9 -]{4,19}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _contact_out(c: EmergencyContact) -> EmergencyContactOut:
    return EmergencyContactOut(id=c.id, name=c.name, channel=c.channel, address=c.address, language=c.language,
                               consented_at=clock.as_utc(c.consented_at))


def emergency_contacts(session: Session, *, student: Student) -> list[EmergencyContactOut]:
    rows = session.exec(select(EmergencyContact).where(EmergencyContact.student_id == student.id)
                        .order_by(col(EmergencyContact.id)))
    return [_contact_out(c) for c in rows]


def add_emergency_contact(session: Session, *, student: Student, body: EmergencyContactIn) -> EmergencyContactOut:
    """Record a child's emergency contact, with the contact's consent to be told on that channel (no consent,
    nothing recorded: the child's data goes nowhere its person did not agree to)."""
    if not body.consented:
        raise Invalid("notify.contact_consent", name=body.name)
    address = body.address.strip()
    if body.channel == "sms" and not PHONE.match(address):
        raise Invalid("notify.contact_phone", address=address)
    if body.channel == "email" and not EMAIL.match(address):
        raise Invalid("notify.contact_email", address=address)
    row = EmergencyContact(student_id=student.id, name=body.name.strip(), channel=body.channel, address=address,
                           language=body.language, consented_at=clock.utcnow())
    session.add(row)
    session.commit()
    return _contact_out(row)


def remove_emergency_contact(session: Session, *, student: Student, contact_id: int) -> None:
    """Remove the contact (or their consent withdrawn): what still waits for them is parked, not sent."""
    row = session.get(EmergencyContact, contact_id)
    if row is None or row.student_id != student.id:
        raise Missing("notify.contact_missing", id=contact_id)
    session.delete(row)
    session.commit()


# --- a school's own SMS gateway and mail server ---------------------------------------------------------------


class SchoolNotifyIn(BaseModel):
    sms_url: str = Field(default="", max_length=500, description="GET template with {to}, {text}, {id}; empty: central's")
    smtp_host: str = Field(default="", max_length=200, description="empty: central's mail server")
    smtp_port: int = Field(default=25, gt=0, lt=65536)
    smtp_starttls: bool = False
    smtp_user: str = Field(default="", max_length=200)
    smtp_password: str | None = Field(default=None, max_length=200, description="None: keep the one stored")
    email_from: str = Field(default="", max_length=200)


class SchoolNotifyOut(BaseModel):
    sms_url: str
    smtp_host: str
    smtp_port: int
    smtp_starttls: bool
    smtp_user: str
    smtp_password_set: bool  # the password is never shown
    email_from: str


def _notify_out(row: SchoolNotifySettings | None) -> SchoolNotifyOut:
    row = row or SchoolNotifySettings(school_id=0)
    return SchoolNotifyOut(sms_url=row.sms_url, smtp_host=row.smtp_host, smtp_port=row.smtp_port,
                           smtp_starttls=row.smtp_starttls, smtp_user=row.smtp_user,
                           smtp_password_set=bool(row.smtp_password), email_from=row.email_from)


def school_notify(session: Session, *, school: School) -> SchoolNotifyOut:
    return _notify_out(session.exec(select(SchoolNotifySettings).where(SchoolNotifySettings.school_id == school.id)).first())


def check_sms_template(url: str) -> None:
    """An SMS gateway template: an http(s) URL naming ``{to}`` and ``{text}``, and no placeholder but those and ``{id}``."""
    if not url.startswith(("http://", "https://")):
        raise Invalid("notify.sms_url", url=url)
    try:
        url.format(to="", text="", id=0)
    except (KeyError, IndexError, ValueError) as exc:
        raise Invalid("notify.sms_placeholder", url=url, what=str(exc)) from exc
    if "{to}" not in url or "{text}" not in url:
        raise Invalid("notify.sms_placeholder", url=url, what="{to}, {text}")


def set_school_notify(session: Session, *, school: School, body: SchoolNotifyIn) -> SchoolNotifyOut:
    """Set the school's own SMS gateway and mail server (empty: central's); checked before anything is kept."""
    sms_url, host = body.sms_url.strip(), body.smtp_host.strip()
    if sms_url:
        check_sms_template(sms_url)
    if host and not EMAIL.match(body.email_from.strip()):
        raise Invalid("notify.email_from", address=body.email_from)
    row = session.exec(select(SchoolNotifySettings).where(SchoolNotifySettings.school_id == school.id)).first()
    row = row or SchoolNotifySettings(school_id=school.id)
    row.sms_url, row.smtp_host, row.smtp_port, row.smtp_starttls = sms_url, host, body.smtp_port, body.smtp_starttls
    row.smtp_user, row.email_from, row.updated_at = body.smtp_user.strip(), body.email_from.strip(), clock.utcnow()
    if body.smtp_password is not None:
        row.smtp_password = body.smtp_password
    session.add(row)
    session.commit()
    return _notify_out(row)
