"""Billing's services: setting and reading a school's fee plans (the rules are in ``rules.py``)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from central.billing import rules
from central.billing.models import FeePlan, FeePlanIn, FeePlanPublic
from central.core import clock
from central.core.errors import Missing
from central.programme.models import Term
from central.schools.models import School


def set_fee_plan(session: Session, *, school: School, term_id: int, data: FeePlanIn, actor: str, cap_fen: int) -> FeePlanPublic:
    """Set the term's fee plan; P7.2: refused (a localized 422) if it could charge a child above
    ``cap_fen`` in a month. The change is audited with the rest of the service's records."""
    term = session.get(Term, term_id)
    if term is None or term.school_id != school.id:
        raise Missing("term_missing", id=term_id)
    rules.check_plan(rules.FeePlan(data.kind, data.amount_fen), cap_fen=cap_fen)
    row = session.exec(select(FeePlan).where(FeePlan.school_id == school.id, FeePlan.term_id == term_id)).first()
    row = row or FeePlan(school_id=school.id, term_id=term_id, kind=data.kind, amount_fen=data.amount_fen, set_by=actor)
    row.kind, row.amount_fen, row.set_by, row.set_at = data.kind.value, data.amount_fen, actor, clock.utcnow()
    session.add(row)
    session.commit()
    return _public(row, term)


def fee_plans(session: Session, *, school: School) -> list[FeePlanPublic]:
    rows = session.exec(
        select(FeePlan, Term).join(Term, col(Term.id) == FeePlan.term_id)
        .where(FeePlan.school_id == school.id).order_by(col(Term.starts_on))
    ).all()
    return [_public(row, term) for row, term in rows]


def _public(row: FeePlan, term: Term) -> FeePlanPublic:
    return FeePlanPublic(term_id=term.id, term=term.name, kind=rules.PlanKind(row.kind), amount_fen=row.amount_fen,
                         set_by=row.set_by, set_at=clock.as_utc(row.set_at))
