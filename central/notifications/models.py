"""The notification outbox and each guardian's consent per channel (issue 16)."""

from __future__ import annotations

from datetime import datetime, time

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from central.core.clock import utcnow
from central.core.columns import utc_column

#: the channels a notification may go out on
CHANNELS = ("webhook", "sms", "email", "wecom", "dingtalk")
#: who a school's channel speaks to: the school admin(s), or the staff (the teacher in charge)
AUDIENCES = ("admin", "staff")
STATES = ("pending", "sent", "parked")


class GuardianChannel(SQLModel, table=True):
    """A guardian's consent to hear on one channel, at one address, in one language: no row, nothing sent there.

    ``secret`` signs the webhook channel's deliveries (HMAC-SHA256); empty on the others."""

    __tablename__ = "guardian_channel"
    __table_args__ = (sa.UniqueConstraint("guardian_id", "channel"),)

    id: int | None = Field(default=None, primary_key=True)
    guardian_id: int = Field(foreign_key="guardian.id", index=True)
    channel: str = Field(max_length=16)
    address: str = Field(max_length=500)  # a URL, a phone number, an email address
    language: str = Field(default="zh_CN", max_length=8)
    secret: str = Field(default="", max_length=128)
    consented_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class Notification(SQLModel, table=True):
    """One message to one recipient on one channel, stored before it is sent (the outbox).

    ``event_ref`` names what happened (``event:<kiosk event id>``); stored once per event, recipient and channel."""

    __table_args__ = (
        sa.UniqueConstraint("event_ref", "recipient", "channel", name="notification_once"),
        sa.Index("ix_notification_due", "state", "next_try_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    event_ref: str = Field(max_length=80)
    recipient: str = Field(max_length=64)  # g<guardian id>
    kind: str = Field(default="", max_length=24, sa_column_kwargs={"server_default": ""})  # one of EVENT_KINDS
    channel: str = Field(max_length=16)
    address: str = Field(max_length=500)
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    language: str = Field(max_length=8)
    state: str = Field(default="pending", max_length=8)
    tries: int = 0
    next_try_at: datetime = Field(sa_column=utc_column(nullable=False))
    last_error: str = Field(default="", max_length=500)
    answer: str = Field(default="", max_length=300, sa_column_kwargs={"server_default": ""})  # the receiver's last answer
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


#: what a guardian may hear about; ``checked_in`` only when they asked for it (``NotifyPreference``)
EVENT_KINDS = ("picked_up", "left_alone", "checked_in", "absent", "code_issued", "code_used",
               "late_pickup", "barred_attempt")
#: told unless the guardian turned them off; ``checked_in`` is the one a guardian turns on
DEFAULT_EVENTS = tuple(k for k in EVENT_KINDS if k != "checked_in")
#: safety messages: never held by quiet hours, never turned off
SAFETY_EVENTS = ("late_pickup", "barred_attempt", "absent")


class NotifyPreference(SQLModel, table=True):
    """A guardian's choices: which events (``events``; None: ``DEFAULT_EVENTS``), which of their consented
    channels (``channels``; None: all), and quiet hours in the school's zone (safety messages ignore them)."""

    __tablename__ = "notify_preference"

    id: int | None = Field(default=None, primary_key=True)
    guardian_id: int = Field(foreign_key="guardian.id", unique=True)
    events: list[str] | None = Field(default=None, sa_column=sa.Column(sa.JSON, nullable=True))
    channels: list[str] | None = Field(default=None, sa_column=sa.Column(sa.JSON, nullable=True))
    quiet_from: time | None = None
    quiet_until: time | None = None


class EmergencyContact(SQLModel, table=True):
    """Someone to call about a child when the guardians do not come (the late-pickup ladder's second step),
    on one channel they agreed to (``consented_at``), in one language."""

    __tablename__ = "emergency_contact"

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    name: str = Field(max_length=100)
    channel: str = Field(max_length=16)
    address: str = Field(max_length=500)
    language: str = Field(default="zh_CN", max_length=8)
    consented_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class SchoolChannel(SQLModel, table=True):
    """A school's own channel for its people (a WeCom group robot, a DingTalk robot, a webhook): what the
    school admin (``audience`` admin) or the staff in charge (staff) hear — a barred person's attempt, the
    late-pickup ladder. ``secret`` signs (DingTalk, webhook)."""

    __tablename__ = "school_channel"

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    channel: str = Field(max_length=16)
    audience: str = Field(default="admin", max_length=8)
    address: str = Field(max_length=500)
    secret: str = Field(default="", max_length=128)
    language: str = Field(default="zh_CN", max_length=8)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class WebhookSubscription(SQLModel, table=True):
    """An integrator's URL (the school's own systems) subscribed by the school admin to event ``kinds``: each
    delivery is an outbox row (recipient ``w<id>``), signed with ``secret`` (HMAC-SHA256, with a timestamp)."""

    __tablename__ = "webhook_subscription"

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    url: str = Field(max_length=500)
    kinds: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    secret: str = Field(max_length=128)
    created_by: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class SchoolNotifySettings(SQLModel, table=True):
    """A school's own SMS gateway and mail server (issue 16, "settings per school"): where set, the school's SMS
    and email notifications go through them instead of central's (``notify_sms_url``, ``notify_smtp_*``).
    ``sms_url``: a template with ``{to}``, ``{text}`` and ``{id}``; ``smtp_password`` is never shown."""

    __tablename__ = "school_notify_settings"

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", unique=True)
    sms_url: str = Field(default="", max_length=500)
    smtp_host: str = Field(default="", max_length=200)
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str = Field(default="", max_length=200)
    smtp_password: str = Field(default="", max_length=200)
    email_from: str = Field(default="", max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
