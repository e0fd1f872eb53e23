"""The tripartite notice (告知书, P2.2): versioned per school; signatures name the version they sign."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, SchoolDep, SessionDep, require_role
from central.core.errors import Missing
from central.programme import enrollment
from central.programme.models import NoticeCreate, NoticePublic

router = APIRouter(prefix="/schools/{school}/notice", tags=["notice"], responses=ERROR_RESPONSES)
# The district reads every school and inspects; it does not set a school up (README, "Users, roles").
Admin = Annotated[Principal, Depends(require_role("school_admin"))]
Reader = Annotated[Principal, Depends(require_role("school_admin", "district", "teacher", "guard", "finance", "guardian"))]


@router.post("", status_code=201)
def publish(school: SchoolDep, body: NoticeCreate, session: SessionDep, user: Admin) -> NoticePublic:
    """A new version of the notice; signatures of earlier versions no longer count towards activation."""
    return NoticePublic.model_validate(enrollment.publish_notice(session, school=school, text=body.text, actor=user.label))


@router.get("")
def current(school: SchoolDep, session: SessionDep, user: Reader) -> NoticePublic:
    notice = enrollment.current_notice(session, school=school)
    if notice is None:
        raise Missing("notice.none")
    return NoticePublic.model_validate(notice)
