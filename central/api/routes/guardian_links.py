"""A guardian's link to a child: pickup rights, custody bar and the dates it holds (P9.4)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlmodel import SQLModel, select

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, IdPath, SchoolDep, SessionDep, require_role
from central.core.errors import Invalid, Missing
from central.core.events import RosterChanged, record
from central.pickup import codes as pickup
from central.schools.models import Guardian, GuardianLink, Student

router = APIRouter(prefix="/schools/{school}/students/{student}/guardians", tags=["guardian links"],
                   responses=ERROR_RESPONSES)
# The district reads every school and inspects; it does not set a school up (README, "Users, roles").
Admin = Annotated[Principal, Depends(require_role("school_admin"))]

class LinkUpdate(BaseModel):
    may_pick_up: bool | None = None
    barred: bool | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    relation: str | None = Field(default=None, max_length=32)


class LinkPublic(SQLModel):
    guardian_id: int
    student: str
    relation: str
    may_pick_up: bool
    barred: bool
    valid_from: date | None
    valid_until: date | None


@router.patch("/{guardian_id}")
def update_link(
    school: SchoolDep, student: str, guardian_id: IdPath, body: LinkUpdate, session: SessionDep, user: Admin
) -> LinkPublic:
    """Change a link; the kiosks get it with the next roster version. Dates are the school's local dates."""
    link = session.exec(
        select(GuardianLink)
        .join(Student, Student.id == GuardianLink.student_id)
        .join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .where(Student.school_id == school.id, Student.student_no == student, Guardian.id == guardian_id)
    ).first()
    if link is None:
        raise Missing("link.missing", guardian=guardian_id, student=student)
    changes = body.model_dump(exclude_unset=True)
    link.sqlmodel_update({k: v for k, v in changes.items() if v is not None or k.startswith("valid_")})
    if link.valid_from and link.valid_until and link.valid_until < link.valid_from:
        raise Invalid("link.dates", since=link.valid_from, until=link.valid_until)
    if link.barred and link.may_pick_up:
        raise Invalid("link.barred")
    session.add(link)
    # P9.4: a custody order, a lost right to pick up or an ended link also voids the codes this
    # guardian issued for the child; the roster version published below carries them away at once.
    pickup.revoke_codes_of_link(session, link=link, actor=user)
    record(session, RosterChanged(school.id))  # the kiosks get the link with the next roster version
    session.commit()
    session.refresh(link)
    return LinkPublic(student=student, **link.model_dump(exclude={"id", "student_id"}))
