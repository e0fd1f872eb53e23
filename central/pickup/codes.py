"""Pickup helpers: one-time pickup codes, and the photos a kiosk shows when someone collects a child.

A one-time code (P9.4: every child leaves with someone authorised) is issued by a guardian of the
child, or by the school, for one named person, one child and one date, and is used once. Central
keeps no code: the issuer sees it once, and central stores only keyed digests of it (see
``gateway.pickup`` for why they are keyed and with what): one with a per-school key for checks made
at central, and one per kiosk, made with that kiosk's secret, for the kiosk to check offline. A
kiosk registered after a code was issued has no digest for it; the guard checks it online.

Photos are stored only as small JPEG thumbnails (metadata stripped); the upload itself is not kept.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import unicodedata
import warnings
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from io import BytesIO

import sqlalchemy as sa
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlmodel import Session, col, select

from central.accounts import access as accounts
from central.accounts.access import Principal, Role
from central.core import audit, clock
from central.core.errors import Conflict, Forbidden, Invalid, Missing, Unauthenticated
from central.core.events import CodeIssued, CodeUsed, RosterChanged, record
from central.pickup.models import (
    Photo,
    PhotoListed,
    PhotoPublic,
    PickupCode,
    PickupCodeIssued,
    PickupCodePublic,
    PickupKey,
)
from central.schools.links import link_acts_on
from central.schools.models import Guardian, GuardianLink, Kiosk, School, Student
from gateway import photos as kiosk_http
from gateway.pickup import code_digest, normalize_code

MAX_DAYS_AHEAD = 30  # a code is a one-off arrangement, not a standing permission (that is a guardian link)
MAX_WRONG_CODES = 5  # wrong codes tried for one child on one day before that day's codes are void
# A PNG or WebP is decoded whole (only JPEG decodes at reduced size), so the pixel cap is the memory
# a decode may take: 16 MP (a 12 MP phone photo with room) is about 64 MB as RGBA, where the old
# 40 MP let a 300 KB PNG cost 450 MB. Two decodes at once at most, one per core of a school server.
_DECODING = threading.BoundedSemaphore(2)
PHOTO_FORMATS = {"JPEG", "PNG", "WEBP"}


def name_key(name: str) -> str:
    """A name as compared against the barred: NFKC (full-width letters become plain ones), case
    folded, and only letters and digits kept, so spaces, punctuation and invisible characters
    (zero-width space and joiner, soft hyphen, BOM: Unicode categories Cf, Z*, P*, S*, C*) count for
    nothing. The check is "the barred name appears in the code's name": "王某先生" and "Mr. Wang Mou"
    hide no one. It may refuse an innocent name that contains a barred one; the refusal names what
    was typed and the school can issue the code (safety first, P2.3).
    """
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LN")


def _school_key(session: Session, school: School) -> bytes:
    row = session.get(PickupKey, school.id)
    if row is None:
        row = PickupKey(school_id=school.id, key=secrets.token_hex(32))
        session.add(row)
        session.flush()
    return bytes.fromhex(row.key)


def _public(code: PickupCode, student_no: str) -> PickupCodePublic:
    return PickupCodePublic(
        id=code.id,
        student=student_no,
        day=code.day,
        person=code.person,
        issued_by=code.issued_by,
        issued_at=clock.as_utc(code.issued_at),
        used_at=clock.as_utc(code.used_at),
        used_by=code.used_by,
        revoked=code.revoked_at is not None,
    )


def _audit_view(code: PickupCode) -> dict:
    return audit.snapshot(code, exclude={"code_hash", "kiosk_digests"})


def _link(session: Session, *, guardian_id: int, student_id: int) -> GuardianLink | None:
    return session.exec(
        select(GuardianLink).where(GuardianLink.guardian_id == guardian_id, GuardianLink.student_id == student_id)
    ).first()


def _may_issue(session: Session, *, principal: Principal, student: Student, today: date, day: date) -> None:
    if principal.role is Role.SCHOOL_ADMIN:
        return
    if principal.role is Role.GUARDIAN:
        link = _link(session, guardian_id=principal.guardian_id, student_id=student.id)
        # The link must hold now (who asks) and on the code's day (when it acts).
        if link_acts_on(link, today, pick_up=True) and link_acts_on(link, day, pick_up=True):
            return
    raise Forbidden("code_not_guardian")


def _issuer_may_act(session: Session, code: PickupCode) -> bool:
    """A guardian's code holds only while their link would let them take the child on the code's day."""
    if code.issuer_guardian_id is None:
        return True
    link = _link(session, guardian_id=code.issuer_guardian_id, student_id=code.student_id)
    return link_acts_on(link, code.day, pick_up=True)


def _revoke(session: Session, code: PickupCode, *, actor: Principal | str, why: str) -> None:
    before = _audit_view(code)
    code.revoked_at = clock.utcnow()
    session.add(code)
    after = {**_audit_view(code), "why": why}
    audit.record(session, actor=actor, action="pickup_code.revoke", entity=f"pickup_code:{code.id}", before=before, after=after, school_id=code.school_id)


def revoke_codes_of_link(session: Session, *, link: GuardianLink, actor: Principal | str) -> list[int]:
    """Void every live code this guardian issued for this child that the link no longer carries (P9.4).

    Called whenever a link changes (barred, ``may_pick_up`` lost, dates moved); flushes, and leaves the
    commit and the new roster version to the caller, which makes one at once.
    """
    live = session.exec(
        select(PickupCode).where(
            PickupCode.issuer_guardian_id == link.guardian_id,
            PickupCode.student_id == link.student_id,
            col(PickupCode.used_at).is_(None),
            col(PickupCode.revoked_at).is_(None),
        )
    ).all()
    gone = [code for code in live if not link_acts_on(link, code.day, pick_up=True)]
    for code in gone:
        _revoke(session, code, actor=actor, why="guardian_link_changed")
    session.flush()
    return [code.id for code in gone]


def issue_code(
    session: Session, *, principal: Principal, school: School, student: str, day: date, person: str, digits: int
) -> PickupCodeIssued:
    """Issue a code; the returned ``code`` is the only copy there will ever be."""
    child = accounts.find_student(session, principal=principal, school=school, student_no=student)
    person = " ".join(person.split())
    if not 1 <= len(person) <= 100:
        raise Invalid("code_person")
    today = clock.local_today(school)
    if day < today:
        raise Invalid("code_day_past", day=day.isoformat())
    if day > today + timedelta(days=MAX_DAYS_AHEAD):
        raise Invalid("code_day_far", days=MAX_DAYS_AHEAD)
    _may_issue(session, principal=principal, student=child, today=today, day=day)
    barred = session.exec(
        select(Guardian.name)
        .join(GuardianLink, col(GuardianLink.guardian_id) == Guardian.id)
        .where(GuardianLink.student_id == child.id, col(GuardianLink.barred).is_(True))
    ).all()
    # A custody bar (P9.4) is not sidestepped by writing the barred person's name on a code, nor by
    # writing it in full-width letters, with zero-width spaces, or with a title or suffix around it.
    wanted = name_key(person)
    if any((key := name_key(name)) and key in wanted for name in barred):
        raise Forbidden("code_barred_person", person=person)
    key = _school_key(session, school)
    taken = set(
        session.exec(
            select(PickupCode.code_hash).where(PickupCode.student_id == child.id, PickupCode.day == day)
        ).all()
    )
    while True:
        code = f"{secrets.randbelow(10**digits):0{digits}d}"
        code_hash = code_digest(key, school=school.code, verifier="", student=child.student_no, day=day, code=code)
        if code_hash not in taken:  # two live codes for one child and day must differ
            break
    kiosks = session.exec(select(Kiosk).where(Kiosk.school_id == school.id)).all()
    row = PickupCode(
        school_id=school.id,
        student_id=child.id,
        day=day,
        person=person,
        code_hash=code_hash,
        kiosk_digests={
            k.code: code_digest(bytes.fromhex(k.secret), school=school.code, verifier=k.code, student=child.student_no, day=day, code=code)
            for k in kiosks
        },
        issued_by=principal.label,
        issuer_guardian_id=principal.guardian_id if principal.role is Role.GUARDIAN else None,
        issued_at=clock.utcnow(),
    )
    session.add(row)
    session.flush()
    audit.record(session, actor=principal, action="pickup_code.issue", entity=f"pickup_code:{row.id}", after=_audit_view(row), school_id=school.id)
    record(session, RosterChanged(school.id))  # live codes travel in the roster (digests only)
    record(session, CodeIssued(school.id, row.id))  # the child's guardians are told (issue 16)
    session.commit()
    session.refresh(row)
    return PickupCodeIssued(**_public(row, child.student_no).model_dump(), code=code)


def list_codes(session: Session, *, principal: Principal, school: School, day: date | None = None) -> list[PickupCodePublic]:
    stmt = (
        select(PickupCode, Student.student_no)
        .join(Student, col(Student.id) == PickupCode.student_id)
        .where(PickupCode.school_id == school.id, accounts.student_filter(principal, school))
        .order_by(col(PickupCode.id))
    )
    if day is not None:
        stmt = stmt.where(PickupCode.day == day)
    return [_public(code, no) for code, no in session.exec(stmt)]


def _visible_code(session: Session, *, principal: Principal, school: School, code_id: int) -> tuple[PickupCode, Student]:
    hit = session.exec(
        select(PickupCode, Student)
        .join(Student, col(Student.id) == PickupCode.student_id)
        .where(PickupCode.id == code_id, PickupCode.school_id == school.id, accounts.student_filter(principal, school))
    ).first()
    if hit is None:
        raise Missing("code_missing", id=code_id)
    return hit


def revoke_code(session: Session, *, principal: Principal, school: School, code_id: int) -> PickupCodePublic:
    code, child = _visible_code(session, principal=principal, school=school, code_id=code_id)
    if principal.role is Role.GUARDIAN and code.issued_by != principal.label:
        raise Forbidden("code_not_guardian")
    if code.revoked_at is None and code.used_at is None:
        _revoke(session, code, actor=principal, why="revoked")
        record(session, RosterChanged(code.school_id))
        session.commit()
        session.refresh(code)
    return _public(code, child.student_no)


def redeem_code(session: Session, *, principal: Principal, school: School, student: str, code: str) -> PickupCodePublic:
    """Check a code at central (a guard online) and use it up: it never works a second time."""
    child = accounts.find_student(session, principal=principal, school=school, student_no=student)
    day = clock.local_today(school)
    key = _school_key(session, school)
    wanted = code_digest(key, school=school.code, verifier="", student=child.student_no, day=day, code=normalize_code(code))
    # Every try is charged to all of today's codes for the child before it is checked, in one
    # UPDATE … RETURNING: the row locks it takes serialise the tries for a child, so thirty guesses
    # at once count thirty and no more than MAX_WRONG_CODES of them are ever checked. A right code
    # gets its charge back below, in the same transaction.
    charged = session.execute(
        sa.update(PickupCode)
        .where(col(PickupCode.student_id) == child.id, col(PickupCode.day) == day)
        .values(wrong_tries=col(PickupCode.wrong_tries) + 1)
        .returning(col(PickupCode.id), col(PickupCode.wrong_tries), col(PickupCode.code_hash), col(PickupCode.revoked_at))
        .execution_options(synchronize_session=False)
    ).all()
    if any(tries > MAX_WRONG_CODES for _id, tries, _hash, _revoked in charged):
        session.rollback()
        raise Forbidden("pickup.code_locked")
    hit = next((row for row in charged if hmac.compare_digest(row[2], wanted)), None)
    if hit is None or hit[3] is not None:
        record(session, RosterChanged(school.id))  # a wrong try may have voided today's codes (MAX_WRONG_CODES)
        session.commit()  # the charge stands: a wrong try
        raise Invalid("pickup.code_wrong")
    session.execute(
        sa.update(PickupCode)
        .where(col(PickupCode.id).in_([row[0] for row in charged]))
        .values(wrong_tries=col(PickupCode.wrong_tries) - 1)
        .execution_options(synchronize_session=False)
    )
    found_code = session.exec(select(PickupCode).where(PickupCode.id == hit[0]).execution_options(populate_existing=True)).one()
    if not _issuer_may_act(session, found_code):
        # P9.4: the issuer's link as it is now, not as it was when the code was issued.
        _revoke(session, found_code, actor=principal, why="issuer_may_not_pick_up")
        record(session, RosterChanged(school.id))
        session.commit()
        raise Forbidden("pickup.code_issuer_refused")
    hit = found_code
    before = _audit_view(hit)
    now = clock.utcnow()
    # Conditional update: of two guards redeeming at once, exactly one succeeds.
    done = session.execute(
        sa.update(PickupCode)
        .where(col(PickupCode.id) == hit.id, col(PickupCode.used_at).is_(None))
        .values(used_at=now, used_by=principal.label)
    )
    if done.rowcount != 1:
        session.rollback()
        session.refresh(hit)
        raise Conflict("pickup.code_used", at=clock.as_utc(hit.used_at).isoformat(timespec="seconds"))
    session.refresh(hit)
    audit.record(session, actor=principal, action="pickup_code.redeem", entity=f"pickup_code:{hit.id}", before=before, after=_audit_view(hit), school_id=school.id)
    record(session, RosterChanged(school.id))
    record(session, CodeUsed(school.id, hit.id))
    session.commit()
    return _public(hit, child.student_no)


def mark_used(session: Session, *, school: School, code_id: int, at: datetime, where: str) -> bool:
    """Record a kiosk's offline use of a code (from its pickup event); False if it was used before."""
    done = session.execute(
        sa.update(PickupCode)
        .where(col(PickupCode.id) == code_id, PickupCode.school_id == school.id, col(PickupCode.used_at).is_(None))
        .values(used_at=at, used_by=where)
    )
    if done.rowcount == 1:
        audit.record(session, actor=where, action="pickup_code.use", entity=f"pickup_code:{code_id}", after={"used_at": at, "used_by": where}, school_id=school.id)
    session.commit()
    return done.rowcount == 1


def kiosk_codes(session: Session, *, school: School, kiosk: str, today: date | None = None) -> list[dict]:
    """Live codes from today on, as one kiosk checks them: its digest, never a code."""
    return [
        {**{k: v for k, v in code.items() if k != "digests"}, "digest": code["digests"][kiosk]}
        for code in roster_codes(session, school=school, today=today)
        if kiosk in code["digests"]
    ]


def roster_codes(session: Session, *, school: School, today: date | None = None) -> list[dict]:
    """Live codes for the school's roster snapshot: per code, each kiosk's digest (``digests``)."""
    today = today or clock.local_today(school)
    rows = session.exec(
        select(PickupCode, Student.student_no)
        .join(Student, col(Student.id) == PickupCode.student_id)
        .where(
            PickupCode.school_id == school.id,
            PickupCode.day >= today,
            col(PickupCode.used_at).is_(None),
            col(PickupCode.revoked_at).is_(None),
            PickupCode.wrong_tries < MAX_WRONG_CODES,
        )
        .order_by(col(PickupCode.id))
    ).all()
    issuers = {c.issuer_guardian_id for c, _no in rows} - {None}
    links = {
        (link.guardian_id, link.student_id): link
        for link in session.exec(select(GuardianLink).where(col(GuardianLink.guardian_id).in_(issuers)))
    } if issuers else {}

    def stands(c: PickupCode) -> bool:
        # Belt and braces beside revoke_codes_of_link: a code whose issuer's link would not let them
        # take the child that day never reaches a gate, whoever changed the link and how.
        return c.issuer_guardian_id is None or link_acts_on(links.get((c.issuer_guardian_id, c.student_id)), c.day, pick_up=True)

    return [
        {
            "id": c.id, "student": no, "day": c.day.isoformat(), "person": c.person,
            **({"issuer": f"g{c.issuer_guardian_id}"} if c.issuer_guardian_id is not None else {}),
            "digests": dict(sorted(c.kiosk_digests.items())),
        }
        for c, no in rows
        if stands(c)
    ]


# --- photos ----------------------------------------------------------------------------------------


def make_thumbnail(data: bytes, *, max_px: int, max_bytes: int, max_pixels: int) -> tuple[bytes, int, int]:
    """A small JPEG of an uploaded photo: turned upright, metadata (EXIF, GPS) dropped, longest side ``max_px``.

    CPU-bound and slow for a big photo: call it from a worker thread, never on the event loop. An
    image of more than ``max_pixels`` is refused from its header, before any pixel is decoded.
    """
    if len(data) > max_bytes:
        raise Invalid("photo_too_large", max=max_bytes)
    try:
        with warnings.catch_warnings(), _DECODING:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data)) as img:
                if img.format not in PHOTO_FORMATS:
                    raise Invalid("photo_unreadable")
                if img.width * img.height > max_pixels:
                    raise Invalid("photo_too_many_pixels", width=img.width, height=img.height, max=max_pixels)
                img.draft("RGB", (max_px * 2, max_px * 2))  # JPEG: decode at reduced size, far less memory
                upright = ImageOps.exif_transpose(img).convert("RGB")
                upright.thumbnail((max_px, max_px))
                out = BytesIO()
                upright.save(out, "JPEG", quality=80, optimize=True)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError, SyntaxError, ValueError):
        raise Invalid("photo_unreadable") from None
    return out.getvalue(), upright.width, upright.height


def _guardian(session: Session, *, principal: Principal, school: School, guardian_id: int) -> Guardian:
    guardian = session.get(Guardian, guardian_id)
    visible = (
        guardian is not None
        and guardian.school_id == school.id
        and principal.may_use_school(school.code)
        and (principal.role is not Role.GUARDIAN or principal.guardian_id == guardian_id)
        and (principal.role is not Role.TEACHER or _teacher_needs(session, principal=principal, school=school, guardian_id=guardian_id))
    )
    if not visible:
        raise Missing("no_guardian", guardian=guardian_id)
    return guardian


def _teacher_needs(session: Session, *, principal: Principal, school: School, guardian_id: int) -> bool:
    """A teacher sees the photo of a guardian linked to a child of their own groups, barred ones
    included: who hands a child over at the room door must know both who may take the child and who
    must not. Not the other guardians of the school (the guard and the school admin see those)."""
    children = select(Student.id).where(accounts.student_filter(principal, school))
    hit = session.exec(
        select(GuardianLink.id).where(GuardianLink.guardian_id == guardian_id, col(GuardianLink.student_id).in_(children))
    ).first()
    return hit is not None


def _owner(session: Session, *, principal: Principal, school: School, student: str | None, guardian_id: int | None) -> tuple[str, int, int]:
    """("student"|"guardian", owner id, school id) of a photo the caller may see."""
    if student is not None:
        child = accounts.find_student(session, principal=principal, school=school, student_no=student)
        return "student", child.id, child.school_id
    guardian = _guardian(session, principal=principal, school=school, guardian_id=guardian_id)
    return "guardian", guardian.id, guardian.school_id


def _photo_of(session: Session, kind: str, owner: int) -> Photo | None:
    column = Photo.student_id if kind == "student" else Photo.guardian_id
    return session.exec(select(Photo).where(column == owner)).first()


def _photo_public(photo: Photo) -> PhotoPublic:
    return PhotoPublic(width=photo.width, height=photo.height, etag=photo.etag, uploaded_at=clock.as_utc(photo.uploaded_at))


def put_photo(
    session: Session,
    *,
    principal: Principal,
    school: School,
    data: bytes,
    max_px: int,
    max_bytes: int,
    max_pixels: int,
    student: str | None = None,
    guardian_id: int | None = None,
) -> PhotoPublic:
    kind, owner, school_id = _owner(session, principal=principal, school=school, student=student, guardian_id=guardian_id)
    thumb, width, height = make_thumbnail(data, max_px=max_px, max_bytes=max_bytes, max_pixels=max_pixels)
    for last_try in (False, True):
        photo = _photo_of(session, kind, owner)
        before = audit.snapshot(photo)
        if photo is None:
            photo = Photo(school_id=school_id, **{f"{kind}_id": owner}, data=b"", width=0, height=0, etag="", uploaded_by="", uploaded_at=clock.utcnow())
        photo.data, photo.width, photo.height = thumb, width, height
        photo.etag = hashlib.sha256(thumb).hexdigest()[:32]
        photo.uploaded_by, photo.uploaded_at = principal.label, clock.utcnow()
        session.add(photo)
        try:
            session.flush()
            break
        except sa.exc.IntegrityError:
            # Two first photos of one owner at once: both found none, and the other's row landed
            # first (one photo per owner). This one replaces it, as a later upload does.
            session.rollback()
            if last_try:
                raise
    audit.record(session, actor=principal, action="photo.put", entity=f"{kind}_photo:{owner}", before=before, after=audit.snapshot(photo), school_id=school_id)
    session.commit()
    session.refresh(photo)
    return _photo_public(photo)


def get_photo(session: Session, *, principal: Principal, school: School, student: str | None = None, guardian_id: int | None = None) -> Photo:
    kind, owner, _ = _owner(session, principal=principal, school=school, student=student, guardian_id=guardian_id)
    photo = _photo_of(session, kind, owner)
    if photo is None:
        raise Missing("photo_missing")
    if kind == "student":
        accounts.log_child_reads(session, principal=principal, students=[session.get(Student, owner)], what="student_photo")
    return photo


def delete_photo(session: Session, *, principal: Principal, school: School, student: str | None = None, guardian_id: int | None = None) -> None:
    kind, owner, school_id = _owner(session, principal=principal, school=school, student=student, guardian_id=guardian_id)
    photo = _photo_of(session, kind, owner)
    if photo is None:
        raise Missing("photo_missing")
    audit.record(session, actor=principal, action="photo.delete", entity=f"{kind}_photo:{owner}", before=audit.snapshot(photo), school_id=school_id)
    session.delete(photo)
    session.commit()


# --- what kiosks fetch ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KioskCaller:
    school: School
    kiosk: Kiosk

    @property
    def label(self) -> str:
        return f"kiosk:{self.kiosk.code}"


def authenticate_kiosk(
    session: Session, *, school: str, kiosk: str, method: str, path: str, query: str, at: str | None, signature: str | None, skew_s: int
) -> KioskCaller:
    """A kiosk proves itself with an HMAC of the request made with its secret (``gateway.photos``)."""
    found = session.exec(select(School).where(School.code == school)).first()
    row = session.exec(select(Kiosk).where(Kiosk.school_id == found.id, Kiosk.code == kiosk)).first() if found else None
    try:
        when = int(at or "")
    except ValueError:
        when = None
    if row is None or when is None or signature is None or abs(clock.utcnow().timestamp() - when) > skew_s:
        raise Unauthenticated("kiosk_auth")
    expected = kiosk_http.request_signature(bytes.fromhex(row.secret), method=method, path=path, query=query, at=when)
    if not hmac.compare_digest(expected, signature.lower()):
        raise Unauthenticated("kiosk_auth")
    return KioskCaller(found, row)


def kiosk_photo_list(session: Session, *, caller: KioskCaller) -> list[PhotoListed]:
    rows = session.exec(
        select(Photo, Student.student_no)
        .outerjoin(Student, col(Student.id) == Photo.student_id)
        .where(Photo.school_id == caller.school.id)
        .order_by(col(Photo.id))
    )
    return [
        PhotoListed(kind="students", id=no, etag=p.etag) if p.student_id is not None else PhotoListed(kind="guardians", id=f"g{p.guardian_id}", etag=p.etag)
        for p, no in rows
    ]


def kiosk_photo(session: Session, *, caller: KioskCaller, kind: str, ref: str) -> Photo:
    if kind == "students":
        stmt = select(Photo).join(Student, col(Student.id) == Photo.student_id).where(
            Student.school_id == caller.school.id, Student.student_no == ref
        )
    elif kind == "guardians" and ref.startswith("g") and ref[1:].isdigit():
        stmt = select(Photo).where(Photo.school_id == caller.school.id, Photo.guardian_id == int(ref[1:]))
    else:
        raise Missing("photo_missing")
    photo = session.exec(stmt).first()
    if photo is None:
        raise Missing("photo_missing")
    return photo
