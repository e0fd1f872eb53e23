"""The kiosk roster as central last published it: its version and what it holds (no children's details)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, SchoolDep, SessionDep, require_role
from central.api.roster_sync import publish_roster

router = APIRouter(prefix="/schools/{school}/roster", tags=["roster"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require_role("school_admin", "district", "guard"))]
# The district reads every school and inspects; it does not set a school up (README, "Users, roles").
Admin = Annotated[Principal, Depends(require_role("school_admin"))]


class RosterSummary(BaseModel):
    version: int
    students: int
    enrolled: int
    guardians: int
    staff: int
    sessions: int
    codes: int = 0  # live one-time pickup codes (digests only)


def _summary(version: int, body: str) -> RosterSummary:
    people = json.loads(body) if body else {}
    students = people.get("students", [])
    return RosterSummary(
        version=version, students=len(students), enrolled=sum(1 for s in students if s.get("enrolled")),
        guardians=len(people.get("guardians", [])), staff=len(people.get("staff", [])),
        sessions=len(people.get("sessions", [])), codes=len(people.get("codes", [])),
    )


@router.get("")
def summary(school: SchoolDep, session: SessionDep, user: Reader) -> RosterSummary:
    return _summary(school.roster_version, school.roster_body)


@router.post("/refresh")
def refresh(school: SchoolDep, request: Request, session: SessionDep, user: Admin) -> RosterSummary:
    """Rebuild now (e.g. after midnight, when a new day's sessions enter the window) and publish if changed."""
    version = publish_roster(request, session, school)
    return _summary(version, school.roster_body)
