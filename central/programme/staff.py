"""Staff and third-party vendors (P6): who may serve, the vendor approval chain, staff cards.

A third-party staff member may serve only once their vendor has every step of P6.2's chain recorded
as approved, in order: the review panel (parent-committee and teacher representatives), the school's
Party organisation, the district bureau, the city bureau.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from central.core.cards import canonical_card
from central.core.errors import Conflict, Forbidden, Invalid, Missing
from central.core.events import RosterChanged, record
from central.core.i18n import LocalizedValueError, Msg
from central.programme.models import (
    Staff,
    StaffCard,
    StaffCreate,
    StaffPublic,
    StaffUpdate,
    Vendor,
    VendorApproval,
    VendorApprovalPublic,
    VendorCreate,
    VendorPublic,
)
from central.schools.models import Card, School

KINDS = ("teacher", "employee", "guard", "volunteer", "third_party")  # P6.1, P6.5; guard: 门卫 (P9.3)
VENDOR_STEPS = ("review_panel", "party_org", "district", "city")  # P6.2, in this order
# P6.2: who records each step. The school's own two: its admin; the bureaus' two: a district account
# (the city bureau's decision reaches the school through the district bureau). Role values of
# central.accounts.access.Role.
STEP_RECORDERS = {"review_panel": "school_admin", "party_org": "school_admin", "district": "district", "city": "district"}


# --- vendors ---------------------------------------------------------------------------------


def create_vendor(session: Session, *, school: School, data: VendorCreate, actor: str) -> Vendor:
    vendor = Vendor.model_validate(data, update={"school_id": school.id, "created_by": actor})
    session.add(vendor)
    session.commit()
    session.refresh(vendor)
    return vendor


def get_vendor(session: Session, *, school: School, vendor_id: int) -> Vendor:
    vendor = session.get(Vendor, vendor_id)
    if vendor is None or vendor.school_id != school.id:
        raise Missing("vendor.missing", id=vendor_id)
    return vendor


def _approvals(session: Session, vendor_id: int) -> list[VendorApproval]:
    rows = session.exec(select(VendorApproval).where(VendorApproval.vendor_id == vendor_id)).all()
    return sorted(rows, key=lambda a: VENDOR_STEPS.index(a.step))


def next_step(session: Session, vendor: Vendor) -> str | None:
    """The step that waits for a decision, or None once the chain is closed (approved or refused)."""
    if vendor.state != "pending":
        return None
    done = {a.step for a in _approvals(session, vendor.id)}
    return next((s for s in VENDOR_STEPS if s not in done), None)


def decide_step(
    session: Session, *, school: School, vendor_id: int, step: str, approved: bool, note: str = "", actor: str, role: str
) -> Vendor:
    """Record one step's decision. Steps go in P6.2's order; a refusal closes the chain.

    ``role`` is the recording caller's: each step has its one recorder (``STEP_RECORDERS``), so a
    school cannot enter the bureaus' approvals of its own provider, nor the district the school's.
    """
    vendor = get_vendor(session, school=school, vendor_id=vendor_id)
    if step not in VENDOR_STEPS:
        raise Invalid("vendor.step_unknown", step=step, allowed=", ".join(VENDOR_STEPS))
    if role != STEP_RECORDERS[step]:
        raise Forbidden("vendor.step_school")
    if vendor.state != "pending":
        raise Conflict("vendor.closed", name=vendor.name, state=vendor.state)
    expected = next_step(session, vendor)
    if step != expected:
        raise Conflict("vendor.step_order", step=step, expected=expected)
    session.add(VendorApproval(vendor_id=vendor.id, step=step, approved=approved, note=note, decided_by=actor))
    if not approved:
        vendor.state = "refused"
    elif step == VENDOR_STEPS[-1]:
        vendor.state = "approved"
        record(session, RosterChanged(school.id))  # the vendor's staff may serve: they go to the kiosks
    session.add(vendor)
    session.commit()
    session.refresh(vendor)
    return vendor


def vendor_public(session: Session, vendor: Vendor) -> VendorPublic:
    return VendorPublic.model_validate(
        vendor,
        update={
            "approvals": [VendorApprovalPublic.model_validate(a) for a in _approvals(session, vendor.id)],
            "next_step": next_step(session, vendor),
        },
    )


def list_vendors(session: Session, *, school: School) -> list[Vendor]:
    return list(session.exec(select(Vendor).where(Vendor.school_id == school.id).order_by(Vendor.id)))


# --- staff -------------------------------------------------------------------------------------


def create_staff(session: Session, *, school: School, data: StaffCreate, actor: str) -> Staff:
    if data.kind not in KINDS:
        raise Invalid("staff.kind", kind=data.kind, allowed=", ".join(KINDS))
    if data.kind == "third_party" and data.vendor_id is None:
        raise Invalid("staff.vendor_needed")
    if data.kind != "third_party" and data.vendor_id is not None:
        raise Invalid("staff.vendor_only_third_party")
    if data.vendor_id is not None:
        get_vendor(session, school=school, vendor_id=data.vendor_id)
    staff = Staff.model_validate(data, update={"school_id": school.id, "created_by": actor})
    session.add(staff)
    record(session, RosterChanged(school.id))
    session.commit()
    session.refresh(staff)
    return staff


def get_staff(session: Session, *, school: School, staff_id: int) -> Staff:
    staff = session.get(Staff, staff_id)
    if staff is None or staff.school_id != school.id:
        raise Missing("staff.missing", id=staff_id)
    return staff


def update_staff(session: Session, *, school: School, staff_id: int, data: StaffUpdate, actor: str) -> Staff:
    staff = get_staff(session, school=school, staff_id=staff_id)
    staff.sqlmodel_update(data.model_dump(exclude_unset=True, exclude_none=True))
    session.add(staff)
    record(session, RosterChanged(school.id))
    session.commit()
    session.refresh(staff)
    return staff


def check_may_serve(session: Session, staff: Staff) -> None:
    """Raise Conflict unless this person may serve a session now (active; P6.2 for third parties)."""
    if not staff.active:
        raise Conflict("staff.inactive", name=staff.name)
    if staff.kind == "third_party":
        vendor = session.get(Vendor, staff.vendor_id)
        if vendor is None or vendor.state != "approved":
            step = next_step(session, vendor) if vendor else VENDOR_STEPS[0]
            raise Conflict("staff.not_approved", name=staff.name, step=step or (vendor.state if vendor else ""))


def may_guard_gate(staff: Staff) -> bool:
    """Whether this person may sign in at a gate kiosk as the guard on duty (P9.3): a guard, or anyone
    the school allows (``gate_guard``). The kiosk roster carries it; the gate enforces it."""
    return staff.kind == "guard" or staff.gate_guard


def may_serve(session: Session, staff: Staff) -> bool:
    try:
        check_may_serve(session, staff)
    except Conflict:
        return False
    return True


def cards_of(session: Session, *, school: School) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for card in session.exec(select(StaffCard).where(StaffCard.school_id == school.id).order_by(StaffCard.uid)):
        out.setdefault(card.staff_id, []).append(card.uid)
    return out


def staff_public(session: Session, staff: Staff, cards: list[str] | None = None) -> StaffPublic:
    if cards is None:
        cards = cards_of(session, school=session.get(School, staff.school_id)).get(staff.id, [])
    return StaffPublic.model_validate(staff, update={"cards": cards, "may_serve": may_serve(session, staff)})


def list_staff(session: Session, *, school: School) -> list[StaffPublic]:
    cards = cards_of(session, school=school)
    rows = session.exec(select(Staff).where(Staff.school_id == school.id).order_by(Staff.id))
    return [staff_public(session, s, cards.get(s.id, [])) for s in rows]


def add_card(session: Session, *, school: School, staff_id: int, uid: str, actor: str) -> StaffCard:
    staff = get_staff(session, school=school, staff_id=staff_id)
    try:
        uid = canonical_card(uid)
    except LocalizedValueError as exc:  # the reason as a message, so it reads in the caller's language (str() is English)
        raise Invalid("staff.card_bad", reason=Msg(exc.key, exc.params)) from None
    # One card, one person: a staff tap must never be read as a child's or a guardian's.
    taken = session.exec(select(Card).where(Card.school_id == school.id, Card.uid == uid)).first()
    other = session.exec(select(StaffCard).where(StaffCard.school_id == school.id, StaffCard.uid == uid)).first()
    if taken is not None or (other is not None and other.staff_id != staff.id):
        raise Conflict("staff.card_taken", uid=uid)
    if other is not None:
        return other
    card = StaffCard(school_id=school.id, staff_id=staff.id, uid=uid)
    session.add(card)
    record(session, RosterChanged(school.id))
    session.commit()
    session.refresh(card)
    return card


def remove_card(session: Session, *, school: School, staff_id: int, uid: str, actor: str) -> None:
    get_staff(session, school=school, staff_id=staff_id)
    stmt = select(StaffCard).where(StaffCard.staff_id == staff_id, col(StaffCard.uid) == uid.upper())
    card = session.exec(stmt).first()
    if card is None:
        raise Missing("staff.card_missing", uid=uid)
    session.delete(card)
    record(session, RosterChanged(school.id))
    session.commit()
