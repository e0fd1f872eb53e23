"""Who hears what (issue 16): a guardian's own choices and consents, and the school admin's view of them and
of the school's own channels (WeCom, DingTalk robots ...)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, IdPath, SchoolDep, SessionDep, require_role
from central.notifications import settings as service
from central.accounts.access import find_student
from central.notifications.settings import (
    ConsentIn,
    EmergencyContactIn,
    EmergencyContactOut,
    PreferencesIn,
    PreferencesOut,
    SchoolChannelIn,
    SchoolChannelOut,
    SchoolNotifyIn,
    SchoolNotifyOut,
)

router = APIRouter(prefix="/schools/{school}", tags=["notifications"], responses=ERROR_RESPONSES)
Admin = Annotated[Principal, Depends(require_role("school_admin"))]
Parent = Annotated[Principal, Depends(require_role("guardian"))]
GuardianChannelName = Literal["webhook", "sms", "email"]


@router.get("/me/notifications")
def my_notifications(school: SchoolDep, session: SessionDep, user: Parent) -> PreferencesOut:
    """What I hear about my children, on which channels, my quiet hours (safety messages ignore them)."""
    return service.preferences(session, guardian=service.guardian_of(session, school=school, guardian_id=user.guardian_id))


@router.put("/me/notifications")
def set_my_notifications(school: SchoolDep, body: PreferencesIn, session: SessionDep, user: Parent) -> PreferencesOut:
    guardian = service.guardian_of(session, school=school, guardian_id=user.guardian_id)
    return service.set_preferences(session, guardian=guardian, body=body)


@router.put("/me/notifications/consents/{channel}")
def consent(school: SchoolDep, channel: GuardianChannelName, body: ConsentIn, session: SessionDep, user: Parent) -> PreferencesOut:
    """I agree to hear on this channel, at this address, in this language."""
    guardian = service.guardian_of(session, school=school, guardian_id=user.guardian_id)
    return service.consent(session, guardian=guardian, channel=channel, body=body)


@router.delete("/me/notifications/consents/{channel}", status_code=204)
def withdraw(school: SchoolDep, channel: GuardianChannelName, session: SessionDep, user: Parent) -> None:
    """I withdraw my consent: nothing more is sent there."""
    service.withdraw(session, guardian=service.guardian_of(session, school=school, guardian_id=user.guardian_id), channel=channel)


@router.get("/notification-preferences/{guardian_id}")
def guardian_notifications(school: SchoolDep, guardian_id: IdPath, session: SessionDep, user: Admin) -> PreferencesOut:
    return service.preferences(session, guardian=service.guardian_of(session, school=school, guardian_id=guardian_id))


@router.put("/notification-preferences/{guardian_id}")
def set_guardian_notifications(
    school: SchoolDep, guardian_id: IdPath, body: PreferencesIn, session: SessionDep, user: Admin
) -> PreferencesOut:
    """The admin records a guardian's choices (given on paper); consents are the guardian's own to give."""
    guardian = service.guardian_of(session, school=school, guardian_id=guardian_id)
    return service.set_preferences(session, guardian=guardian, body=body)


@router.get("/notification-channels")
def list_channels(school: SchoolDep, session: SessionDep, user: Admin) -> list[SchoolChannelOut]:
    """The school's own channels: what its admin (a barred attempt, a child never picked up) and its staff hear."""
    return service.school_channels(session, school=school)


@router.post("/notification-channels", status_code=201)
def add_channel(school: SchoolDep, body: SchoolChannelIn, session: SessionDep, user: Admin) -> SchoolChannelOut:
    return service.add_school_channel(session, school=school, body=body)


@router.delete("/notification-channels/{channel_id}", status_code=204)
def remove_channel(school: SchoolDep, channel_id: IdPath, session: SessionDep, user: Admin) -> None:
    service.remove_school_channel(session, school=school, channel_id=channel_id)


@router.get("/students/{student}/emergency-contacts")
def list_emergency_contacts(school: SchoolDep, student: str, session: SessionDep, user: Admin) -> list[EmergencyContactOut]:
    """The child's emergency contacts: told 10 minutes after the guardians when nobody comes (the late-pickup ladder)."""
    child = find_student(session, principal=user, school=school, student_no=student)
    return service.emergency_contacts(session, student=child)


@router.post("/students/{student}/emergency-contacts", status_code=201)
def add_emergency_contact(
    school: SchoolDep, student: str, body: EmergencyContactIn, session: SessionDep, user: Admin
) -> EmergencyContactOut:
    """Record an emergency contact who agreed (``consented``) to be told on this channel (SMS or email)."""
    child = find_student(session, principal=user, school=school, student_no=student)
    return service.add_emergency_contact(session, student=child, body=body)


@router.delete("/students/{student}/emergency-contacts/{contact_id}", status_code=204)
def remove_emergency_contact(school: SchoolDep, student: str, contact_id: IdPath, session: SessionDep, user: Admin) -> None:
    """Remove a contact (or their consent withdrawn): what still waits for them is parked, never sent."""
    child = find_student(session, principal=user, school=school, student_no=student)
    service.remove_emergency_contact(session, student=child, contact_id=contact_id)


@router.get("/notification-settings")
def school_notify(school: SchoolDep, session: SessionDep, user: Admin) -> SchoolNotifyOut:
    """The school's own SMS gateway and mail server (empty: central's); the SMTP password is never shown."""
    return service.school_notify(session, school=school)


@router.put("/notification-settings")
def set_school_notify(school: SchoolDep, body: SchoolNotifyIn, session: SessionDep, user: Admin) -> SchoolNotifyOut:
    return service.set_school_notify(session, school=school, body=body)
