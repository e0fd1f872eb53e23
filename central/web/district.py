"""``/district``: every school on one page for the district — today's children (expected, on site, gone,
absent), open safety items (every item of the school's safety list not closed, whatever day it happened on:
yesterday's refused pickup nobody reviewed is still open), sessions over the staff ratio (P9.2), fees above the cap (P7.2),
vendors waiting for the district's step (P6.2). Each figure comes from the service its own page or
the API uses (``web.roster``, ``safety.items``, ``billing.rules``, ``programme.staff``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session, col, select

from central.accounts.access import Role
from central.billing import rules
from central.billing.models import FeePlan
from central.billing.public import yuan
from central.core import clock
from central.programme import staff as staff_service
from central.programme.models import CareSession, PublicProfile
from central.safety import items as safety
from central.schools.models import School
from central.web import roster as live_roster
from central.web.pages import DbDep, caller, render

router = APIRouter(include_in_schema=False)


@dataclass
class SchoolDay:
    code: str
    name: str
    expected: int = 0
    on_site: int = 0
    gone: int = 0
    absent: int = 0
    over_ratio: list[str] = field(default_factory=list)  # the sessions (group, time) over the ratio
    open_items: int = 0
    fees_over_cap: list[tuple[str, int]] = field(default_factory=list)  # (fee plan kind or "public", fen)
    vendors_pending: list[str] = field(default_factory=list)


def school_day(db: Session, *, school: School, settings) -> SchoolDay:
    day, now = clock.local_today(school), clock.utcnow()
    out = SchoolDay(code=school.code, name=school.name)
    rows = list(db.exec(select(CareSession).where(CareSession.school_id == school.id, CareSession.day == day)
                        .order_by(CareSession.starts_at, CareSession.id)))
    seen: dict[str, str] = {}
    for r in live_roster.build(db, school=school, rows=rows, settings=settings, now=now):
        for c in r.children:
            seen.setdefault(c.student_no, c.state)
        if r.over_ratio:
            out.over_ratio.append(f"{r.group} {r.starts_at.strftime('%H:%M')}")
    out.expected = len(seen)
    out.gone = sum(1 for s in seen.values() if s == "gone")
    out.absent = sum(1 for s in seen.values() if s == "absent")
    out.on_site = len(live_roster.day_moves(db, school=school, day=day).on_site())  # from every gate, in a session or not
    # Every day's items, not today's only: an item stays open until a reviewer closes it.
    out.open_items = safety.count_open(db, school=school)
    for plan in db.exec(select(FeePlan).where(FeePlan.school_id == school.id).order_by(col(FeePlan.id))):
        try:
            rules.check_plan(rules.FeePlan(rules.PlanKind(plan.kind), plan.amount_fen), cap_fen=settings.fee_cap_fen)
        except rules.RuleError:
            out.fees_over_cap.append((plan.kind, plan.amount_fen))
    profile = db.exec(select(PublicProfile).where(PublicProfile.school_id == school.id)).first()
    if profile is not None and profile.fee_fen is not None and profile.fee_fen > settings.fee_cap_fen:
        out.fees_over_cap.append(("public", profile.fee_fen))
    for vendor in staff_service.list_vendors(db, school=school):
        if staff_service.next_step(db, vendor) in ("district", "city"):
            out.vendors_pending.append(vendor.name)
    return out


@router.get("/district")
def district(request: Request, db: DbDep) -> HTMLResponse:
    principal = caller(request, db, frozenset({Role.DISTRICT}))
    schools = db.exec(select(School).order_by(col(School.code))).all()
    days = [school_day(db, school=s, settings=request.app.state.settings) for s in schools]
    return render(request, "district.html", principal=principal, schools=days, cap=yuan(request.app.state.settings.fee_cap_fen),
                  yuan=yuan)
