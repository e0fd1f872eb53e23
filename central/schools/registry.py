"""The schools: the one way to find a school by its code, and the one place a school is created (audited)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session, select

from central.core import audit
from central.core.errors import Conflict, Invalid, Missing
from central.schools.models import School
from gateway import protocol

DEFAULT_ZONE = "Asia/Shanghai"


def get_school(session: Session, code: str) -> School:
    """The school of ``code``; ``Missing`` (a localized 404) when there is none."""
    school = session.exec(select(School).where(School.code == code)).first()
    if school is None:
        raise Missing("no_school", school=code)
    return school


def check_school(*, code: str, name: str | None = None, timezone: str = DEFAULT_ZONE) -> None:
    """Refuse what ``create_school`` would refuse, before anything is written: an import checks its
    school this way before it reads a row. The code names MQTT topics, so it is a protocol id."""
    try:
        protocol.check_id(code, "school")
    except protocol.ProtocolError:
        raise Invalid("school_code_invalid", school=code) from None
    if name is not None and not 1 <= len(name.strip()) <= 200:
        raise Invalid("school_name_invalid")
    try:
        if len(timezone) > 64:
            raise ValueError
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise Invalid("school_zone_invalid", zone=timezone) from None


def create_school(
    session: Session, *, actor: audit.Actor | str, code: str, name: str | None = None, timezone: str = DEFAULT_ZONE,
    commit: bool = True,
) -> School:
    """Create a school (``central create-school``, or an import that says ``--create-school``); audited.

    Schools are only ever made here, on purpose: naming a school that does not exist elsewhere
    (registering a kiosk, importing a roster without the flag) is an error, not a new school.
    ``commit=False`` leaves the school and its audit row in the caller's transaction.
    """
    check_school(code=code, name=name, timezone=timezone)
    if session.exec(select(School).where(School.code == code)).first() is not None:
        raise Conflict("school_exists", school=code)
    school = School(code=code, name=(name or code).strip(), timezone=timezone)
    session.add(school)
    session.flush()
    # The school table is left out of the automatic audit (it also caches the roster), so its birth is logged here.
    audit.record(
        session, actor=actor, action="school.create", entity=f"school:{school.id}", school_id=school.id,
        after={"code": school.code, "name": school.name, "timezone": school.timezone},
    )
    if commit:
        session.commit()
        session.refresh(school)
    return school


def ensure_school(session: Session, *, code: str, name: str | None = None, timezone: str = DEFAULT_ZONE) -> School:
    """The school, created (``create_school``, in the session's actor's name) if it does not exist yet.
    For the demo, benchmarks and tests; the commands an admin runs never create a school implicitly."""
    school = session.exec(select(School).where(School.code == code)).first()
    if school is None:
        school = create_school(session, actor=session.info.get("actor", "system"), code=code, name=name, timezone=timezone)
    return school
