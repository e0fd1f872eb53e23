"""Setting a school's people up without curl (issue 14): ``/admin/staff``, ``/admin/vendors``, ``/admin/accounts``.

Thin routes over the services of the API's routes (``central/api/routes/staff.py``, ``vendors.py``,
``users.py``) with the same roles: the school admin sets up, the district looks (``?school=CODE``) and records
the bureaus' steps of a vendor's chain (P6.2) and manages accounts. Every change is audited as through the API
(the caller's name in ``db.info["actor"]``, set by ``caller``); staff and card changes record ``RosterChanged``,
so the gates get the new roster exactly as after the API's call.

What a screen shows of a person is what a guard needs and no more: phone numbers as 138****5678, card
numbers by their last four hex digits (as central's logs write them); a card is removed by its row, so the
whole number never reaches the page. Passwords are set at creation (typed, or made here and shown once).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session, col, select

from central.accounts import users
from central.accounts.access import Principal, Role
from central.accounts.models import User
from central.core import clock
from central.core.cards import canonical_card
from central.core.columns import MAX_ID
from central.core.errors import status_of
from central.core.i18n import LocalizedError, t
from central.kiosks.roster import mask_phone
from central.programme import staff as staff_service
from central.programme.models import Staff, StaffCard, StaffCreate, StaffUpdate, VendorCreate
from central.schools.models import Guardian, School
from central.web import session as web_session
from central.web.pages import DbDep, PageError, caller, check_csrf, render, school_of
from hardware import cardnumber

router = APIRouter(include_in_schema=False)
#: who opens the pages: the school admin (their school) and the district (?school=CODE)
VIEWERS = frozenset({Role.SCHOOL_ADMIN, Role.DISTRICT})
#: who sets staff and vendors up (the API's ``Admin``: the district inspects, it does not set a school up)
SETTERS = frozenset({Role.SCHOOL_ADMIN})
#: the roles a school's account may have (a district account belongs to no school: district accounts only)
SCHOOL_ROLES = tuple(r.value for r in Role if r is not Role.DISTRICT)

Text = Annotated[str, Form(max_length=1000)]
Csrf = Annotated[str, Form(max_length=100)]
SchoolForm = Annotated[str | None, Form(max_length=64)]
SchoolQuery = Annotated[str | None, Query(max_length=64)]
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]


def mask_card(uid: str) -> str:
    """``04A1B2C3`` -> ``****B2C3``: as central's logs write a card (schoolgate/logs.py)."""
    return "****" + uid[-4:] if len(uid) > 4 else "****"


def _problem(exc: LocalizedError, locale: str) -> tuple[int, str]:
    return status_of(exc), exc.text(locale)


# --- /admin/staff ---------------------------------------------------------------------------------


@dataclass
class StaffRow:
    id: int
    name: str
    kind: str
    phone: str  # masked
    active: bool
    gate_guard: bool
    may_serve: bool
    vendor: str
    cards: list[tuple[int, str]] = field(default_factory=list)  # (StaffCard id, masked number)


def _staff_rows(db: Session, school: School) -> list[StaffRow]:
    vendors = {v.id: v.name for v in staff_service.list_vendors(db, school=school)}
    cards: dict[int, list[tuple[int, str]]] = {}
    for card in db.exec(select(StaffCard).where(StaffCard.school_id == school.id).order_by(col(StaffCard.id))):
        cards.setdefault(card.staff_id, []).append((card.id, mask_card(card.uid)))
    return [StaffRow(s.id, s.name, s.kind, mask_phone(s.phone) if s.phone else "", s.active, s.gate_guard, s.may_serve,
                     vendors.get(s.vendor_id, "") if s.vendor_id else "", cards.get(s.id, []))
            for s in staff_service.list_staff(db, school=school)]


def _staff_page(request: Request, db: Session, principal: Principal, school: School, *, status: int = 200, error: str = "",
                done: str = "", typed: dict | None = None, form: str = "") -> HTMLResponse:
    """``form`` names the form ``error`` and ``typed`` belong to: ``add``, ``edit-ID`` or ``card-ID``."""
    form = form if status != 404 else ""  # what was named is not on the page: the message goes on top
    return render(request, "staff.html", status=status, principal=principal, school=school, rows=_staff_rows(db, school),
                  vendors=staff_service.list_vendors(db, school=school), kinds=staff_service.KINDS, formats=cardnumber.FORMATS,
                  may_edit=principal.role in SETTERS, error=error, done=done, typed=typed or {}, form=form)


@router.get("/admin/staff")
def staff_page(request: Request, db: DbDep, school: SchoolQuery = None) -> HTMLResponse:
    principal = caller(request, db, VIEWERS)
    return _staff_page(request, db, principal, school_of(db, principal, school))


@router.post("/admin/staff")
def staff_add(
    request: Request, db: DbDep, csrf: Csrf = "", school: SchoolForm = None, name: Annotated[str, Form(max_length=100)] = "",
    kind: Annotated[str, Form(max_length=16)] = "", phone: Annotated[str, Form(max_length=32)] = "",
    vendor: Annotated[str, Form(max_length=20)] = "", gate_guard: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    """A new staff member (``POST /api/v1/schools/{school}/staff``); third-party staff name their vendor."""
    check_csrf(request, csrf)
    principal = caller(request, db, SETTERS)
    row = school_of(db, principal, school)
    locale = web_session.locale(request)
    typed = {"name": name, "kind": kind, "phone": phone, "vendor": vendor, "gate_guard": gate_guard}
    if not name.strip():
        return _staff_page(request, db, principal, row, status=422, error=t("web.people.name_needed", locale), typed=typed, form="add")
    try:
        data = StaffCreate(name=name.strip(), kind=kind, phone=phone.strip(), gate_guard=gate_guard,
                           vendor_id=int(vendor) if vendor.strip() else None)
        person = staff_service.create_staff(db, school=row, data=data, actor=principal.label)
    except ValueError:  # a vendor that is no number: the form offers only the school's
        db.rollback()
        return _staff_page(request, db, principal, row, status=422, error=t("web.people.bad_form", locale), typed=typed, form="add")
    except LocalizedError as exc:
        db.rollback()
        status, message = _problem(exc, locale)
        return _staff_page(request, db, principal, row, status=status, error=message, typed=typed, form="add")
    return _staff_page(request, db, principal, row, status=201, done=t("web.people.staff_added", locale, name=person.name))


@router.post("/admin/staff/{staff_id}")
def staff_edit(
    request: Request, db: DbDep, staff_id: RowId, csrf: Csrf = "", school: SchoolForm = None,
    name: Annotated[str, Form(max_length=100)] = "", phone: Annotated[str, Form(max_length=32)] = "",
    active: Annotated[bool, Form()] = False, gate_guard: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    """Rename, a new phone number (empty keeps the one on file, which the page never shows whole), active
    or not (deactivated staff leave the gates' roster), may guard the gate (``PATCH …/staff/{id}``)."""
    check_csrf(request, csrf)
    principal = caller(request, db, SETTERS)
    row = school_of(db, principal, school)
    locale = web_session.locale(request)
    typed = {"name": name, "phone": phone, "active": active, "gate_guard": gate_guard}
    if not name.strip():
        return _staff_page(request, db, principal, row, status=422, error=t("web.people.name_needed", locale), typed=typed,
                           form=f"edit-{staff_id}")
    change = StaffUpdate(name=name.strip(), active=active, gate_guard=gate_guard, phone=phone.strip() or None)
    try:
        person = staff_service.update_staff(db, school=row, staff_id=staff_id, data=change, actor=principal.label)
    except LocalizedError as exc:
        db.rollback()
        status, message = _problem(exc, locale)
        return _staff_page(request, db, principal, row, status=status, error=message, typed=typed, form=f"edit-{staff_id}")
    return _staff_page(request, db, principal, row, done=t("web.people.staff_saved", locale, name=person.name))


@router.post("/admin/staff/{staff_id}/cards")
def card_add(
    request: Request, db: DbDep, staff_id: RowId, csrf: Csrf = "", school: SchoolForm = None,
    uid: Annotated[str, Form(max_length=64)] = "", card_format: Annotated[str, Form(max_length=16)] = "hex",
) -> HTMLResponse:
    """A card for a staff member (``POST …/staff/{id}/cards``), written in any of the import's card formats
    (the decimal printed on the card, Wiegand…) and stored canonical; the gates get it with the roster."""
    check_csrf(request, csrf)
    principal = caller(request, db, SETTERS)
    row = school_of(db, principal, school)
    locale = web_session.locale(request)
    typed = {"uid": uid, "card_format": card_format}
    form = f"card-{staff_id}"
    if card_format not in cardnumber.FORMATS:
        return _staff_page(request, db, principal, row, status=422, error=t("web.import.bad_format", locale), typed=typed, form=form)
    try:
        # Read here: the page takes a card in any format (printed decimal, Wiegand…), the service hex only.
        canonical = canonical_card(uid, card_format)
    except LocalizedError as exc:
        return _staff_page(request, db, principal, row, status=422, error=t("staff.card_bad", locale, reason=exc.text(locale)),
                           typed=typed, form=form)
    except ValueError as exc:
        return _staff_page(request, db, principal, row, status=422, error=t("staff.card_bad", locale, reason=str(exc)), typed=typed, form=form)
    try:
        staff_service.add_card(db, school=row, staff_id=staff_id, uid=canonical, actor=principal.label)
    except LocalizedError as exc:
        db.rollback()
        status, message = _problem(exc, locale)
        return _staff_page(request, db, principal, row, status=status, error=message, typed=typed, form=form)
    return _staff_page(request, db, principal, row, status=201, done=t("web.people.card_added", locale, card=mask_card(canonical)))


@router.post("/admin/staff/{staff_id}/cards/remove")
def card_remove(
    request: Request, db: DbDep, staff_id: RowId, csrf: Csrf = "", school: SchoolForm = None,
    card: Annotated[int, Form(ge=1, le=MAX_ID)] = 0,
) -> HTMLResponse:
    """Remove a card (``POST …/staff/{id}/cards/remove``), named by its row: the page never holds its number."""
    check_csrf(request, csrf)
    principal = caller(request, db, SETTERS)
    row = school_of(db, principal, school)
    locale = web_session.locale(request)
    found = db.get(StaffCard, card)
    if found is None or found.school_id != row.id or found.staff_id != staff_id:
        raise PageError(404, "web.not_found")
    try:
        staff_service.remove_card(db, school=row, staff_id=staff_id, uid=found.uid, actor=principal.label)
    except LocalizedError as exc:
        db.rollback()
        status, message = _problem(exc, locale)
        return _staff_page(request, db, principal, row, status=status, error=message)
    return _staff_page(request, db, principal, row, done=t("web.people.card_removed", locale, card=mask_card(found.uid)))


# --- /admin/vendors -------------------------------------------------------------------------------


@dataclass
class ChainStep:
    step: str
    recorder: str  # the role that records it (P6.2)
    state: str  # approved, refused, next (waiting for its decision), later (after the next), closed (after a refusal)
    by: str = ""
    at: str = ""  # the school's local time
    note: str = ""


@dataclass
class VendorRow:
    id: int
    name: str
    licence: str
    description: str
    state: str  # pending, approved, refused
    next_step: str | None
    chain: list[ChainStep]
    mine: bool  # the caller records the next step


def _vendor_rows(db: Session, school: School, principal: Principal) -> list[VendorRow]:
    tz = clock.zone(school)
    rows = []
    for vendor in staff_service.list_vendors(db, school=school):
        public = staff_service.vendor_public(db, vendor)
        decided = {a.step: a for a in public.approvals}
        chain = []
        for step in staff_service.VENDOR_STEPS:
            recorder = staff_service.STEP_RECORDERS[step]
            if step in decided:
                a = decided[step]
                chain.append(ChainStep(step, recorder, "approved" if a.approved else "refused", a.decided_by,
                                       clock.as_utc(a.decided_at).astimezone(tz).strftime("%Y-%m-%d %H:%M"), a.note))
            else:
                chain.append(ChainStep(step, recorder, "next" if step == public.next_step else "closed" if vendor.state == "refused" else "later"))
        # P6.2: each step has its one recorder; the form is offered to them only (the service refuses the others).
        mine = public.next_step is not None and staff_service.STEP_RECORDERS[public.next_step] == principal.role.value
        rows.append(VendorRow(vendor.id, vendor.name, vendor.licence, vendor.description, vendor.state, public.next_step, chain, mine))
    return rows


def _vendors_page(request: Request, db: Session, principal: Principal, school: School, *, status: int = 200, error: str = "",
                  done: str = "", typed: dict | None = None, form: str = "") -> HTMLResponse:
    form = form if status != 404 else ""  # what was named is not on the page: the message goes on top
    return render(request, "vendors.html", status=status, principal=principal, school=school,
                  vendors=_vendor_rows(db, school, principal), recorders=staff_service.STEP_RECORDERS, may_add=principal.role in SETTERS,
                  error=error, done=done, typed=typed or {}, form=form)


@router.get("/admin/vendors")
def vendors_page(request: Request, db: DbDep, school: SchoolQuery = None) -> HTMLResponse:
    principal = caller(request, db, VIEWERS)
    return _vendors_page(request, db, principal, school_of(db, principal, school))


@router.post("/admin/vendors")
def vendor_add(
    request: Request, db: DbDep, csrf: Csrf = "", school: SchoolForm = None, name: Annotated[str, Form(max_length=200)] = "",
    licence: Annotated[str, Form(max_length=200)] = "", description: Text = "",
) -> HTMLResponse:
    """A third-party provider (``POST …/vendors``): its chain starts with the review panel (P6.2)."""
    check_csrf(request, csrf)
    principal = caller(request, db, SETTERS)
    row = school_of(db, principal, school)
    locale = web_session.locale(request)
    typed = {"name": name, "licence": licence, "description": description}
    if not name.strip():
        return _vendors_page(request, db, principal, row, status=422, error=t("web.people.name_needed", locale), typed=typed, form="add")
    vendor = staff_service.create_vendor(db, school=row, data=VendorCreate(name=name.strip(), licence=licence.strip(),
                                                                           description=description.strip()), actor=principal.label)
    return _vendors_page(request, db, principal, row, status=201, done=t("web.people.vendor_added", locale, name=vendor.name))


@router.post("/admin/vendors/{vendor_id}/approvals")
def vendor_decide(
    request: Request, db: DbDep, vendor_id: RowId, csrf: Csrf = "", school: SchoolForm = None,
    step: Annotated[str, Form(max_length=16)] = "", decision: Annotated[str, Form(max_length=8)] = "", note: Text = "",
) -> HTMLResponse:
    """One step's decision (``POST …/vendors/{id}/approvals``): the school admin the panel's and the Party
    organisation's, a district account the district's and the city's, in order; a refusal closes the chain."""
    check_csrf(request, csrf)
    principal = caller(request, db, VIEWERS)
    row = school_of(db, principal, school)
    locale = web_session.locale(request)
    form = f"step-{vendor_id}"
    if decision not in ("approve", "refuse"):
        return _vendors_page(request, db, principal, row, status=422, error=t("web.people.decision_needed", locale),
                             typed={"note": note}, form=form)
    try:
        vendor = staff_service.decide_step(db, school=row, vendor_id=vendor_id, step=step, approved=decision == "approve",
                                           note=note.strip(), actor=principal.label, role=principal.role.value)
    except LocalizedError as exc:
        db.rollback()
        status, message = _problem(exc, locale)
        return _vendors_page(request, db, principal, row, status=status, error=message, typed={"note": note}, form=form)
    return _vendors_page(request, db, principal, row, status=201,
                         done=t("web.people.step_recorded", locale, name=vendor.name, step=t(f"web.people.step.{step}", locale)))


# --- /admin/accounts ------------------------------------------------------------------------------


@dataclass
class AccountRow:
    id: int
    username: str
    role: str
    active: bool
    linked: str  # the guardian's or the staff member's name


def _accounts_page(request: Request, db: Session, principal: Principal, school: School, *, status: int = 200, error: str = "",
                   done: str = "", typed: dict | None = None, form: str = "", made: dict | None = None) -> HTMLResponse:
    form = form if status != 404 else ""  # what was named is not on the page: the message goes on top
    guardians = list(db.exec(select(Guardian).where(Guardian.school_id == school.id).order_by(col(Guardian.name), col(Guardian.id))))
    staff = list(db.exec(select(Staff).where(Staff.school_id == school.id).order_by(col(Staff.name), col(Staff.id))))
    names = {("g", g.id): g.name for g in guardians} | {("s", s.id): s.name for s in staff}
    rows = [AccountRow(u.id, u.username, u.role, u.active,
                       names.get(("g", u.guardian_id), "") if u.guardian_id else names.get(("s", u.staff_id), "") if u.staff_id else "")
            for u in users.list_users(db, actor=principal) if u.school_id == school.id]
    # A district account belongs to no school: only the district makes one (users.may_manage).
    roles = SCHOOL_ROLES + ((Role.DISTRICT.value,) if principal.role is Role.DISTRICT else ())
    return render(request, "accounts.html", status=status, principal=principal, school=school, rows=rows, roles=roles,
                  guardians=guardians, staff=staff, error=error, done=done, typed=typed or {}, form=form, made=made)


@router.get("/admin/accounts")
def accounts_page(request: Request, db: DbDep, school: SchoolQuery = None) -> HTMLResponse:
    principal = caller(request, db, VIEWERS)
    return _accounts_page(request, db, principal, school_of(db, principal, school))


def _link(value: str) -> int | None:
    return int(value) if value.strip().isdigit() else None


@router.post("/admin/accounts")
def account_add(
    request: Request, db: DbDep, csrf: Csrf = "", school: SchoolForm = None, username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "", role: Annotated[str, Form(max_length=16)] = "",
    guardian: Annotated[str, Form(max_length=20)] = "", staff: Annotated[str, Form(max_length=20)] = "",
) -> HTMLResponse:
    """A new account (``POST /api/v1/users``) of this school, or of no school for the district role, with
    the rules of ``users.create_user``: a school admin makes every role of their school but district; a
    guardian's account is linked to one of the school's guardians, a teacher's to one of its staff. An empty
    password is made here and shown once; a typed one is never shown back."""
    check_csrf(request, csrf)
    principal = caller(request, db, VIEWERS)
    row = school_of(db, principal, school)
    locale = web_session.locale(request)
    typed = {"username": username, "role": role, "guardian": guardian, "staff": staff}
    made_password = not password
    password = password or secrets.token_urlsafe(12)
    try:
        user = users.create_user(db, actor=principal, username=username.strip(), password=password, role=role,
                                 school=None if role == Role.DISTRICT.value else row.code,
                                 guardian_id=_link(guardian) if role == Role.GUARDIAN.value else None,
                                 staff_id=_link(staff) if role == Role.TEACHER.value else None)
    except LocalizedError as exc:
        db.rollback()
        status, message = _problem(exc, locale)
        return _accounts_page(request, db, principal, row, status=status, error=message, typed=typed, form="add")
    made = {"username": user.username, "password": password if made_password else ""}
    return _accounts_page(request, db, principal, row, status=201, made=made)


@router.post("/admin/accounts/{user_id}")
def account_edit(
    request: Request, db: DbDep, user_id: RowId, csrf: Csrf = "", school: SchoolForm = None,
    active: Annotated[bool, Form()] = False, password: Annotated[str, Form(max_length=256)] = "",
) -> HTMLResponse:
    """Deactivate or reactivate an account, or give it a new password (``PATCH /api/v1/users/{id}``); either
    ends its open logins. The role an account was made with stays (the API changes no role)."""
    check_csrf(request, csrf)
    principal = caller(request, db, VIEWERS)
    row = school_of(db, principal, school)
    locale = web_session.locale(request)
    target = db.get(User, user_id)
    if target is None or target.school_id != row.id:  # on this school's page, only this school's accounts
        raise PageError(404, "web.not_found")
    try:
        user = users.update_user(db, actor=principal, user_id=user_id, active=active, password=password or None)
    except LocalizedError as exc:
        db.rollback()
        status, message = _problem(exc, locale)
        return _accounts_page(request, db, principal, row, status=status, error=message, form=f"edit-{user_id}")
    return _accounts_page(request, db, principal, row, done=t("web.people.account_saved", locale, username=user.username))
