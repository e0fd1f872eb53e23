"""Setting a school up without curl (issue 14): ``/admin/import`` and ``/admin/enrollments``.

``/admin/import``: the school admin uploads the students' and the guardians' files (CSV, XLSX or XLS, as
``schoolgate central import``), sees a preview (the rows as read, and what the import would create and
update), or every bad row with its reason, and then confirms. The preview runs the importer itself
(``central.imports.importer.import_roster``) and rolls back; the confirmation runs it again on the same
bytes (re-posted by the page, so any central process may take it) and commits with the new roster version,
published to the gates. Nothing is kept between the two steps on the server.

``/admin/enrollments``: the queue of open enrollments by state and group, with bulk review, approval and
the school's signature of the current notice by group or class (``central.programme.enrollment``, each one
audited as its own step), the notice's versions and publishing a new one.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from central.accounts.access import Principal, Role
from central.api.roster_sync import refresh_and_publish
from central.core.i18n import LocalizedError, t
from central.imports import importer
from central.programme import enrollment
from central.programme.models import Enrollment, InterestGroup, Notice
from central.schools.models import School, SchoolClass, Student
from central.web import session as web_session
from central.web.pages import DbDep, PageError, caller, check_csrf, render, school_of
from hardware import cardnumber

router = APIRouter(include_in_schema=False)
ADMINS = frozenset({Role.SCHOOL_ADMIN})
SUFFIXES = (".csv", ".xlsx", ".xlsm", ".xls")
#: rows of each file the preview shows (all are checked)
PREVIEW_ROWS = 50
FILES = ("students", "guardians")


# --- /admin/import ------------------------------------------------------------------------------


@dataclass
class Upload:
    file: str  # "students" or "guardians"
    name: str  # the name as uploaded (its suffix says how to read it)
    data: bytes

    @property
    def encoded(self) -> str:
        return base64.b64encode(self.data).decode()


def _suffix(name: str) -> str:
    return Path(name).suffix.lower()


def _import_page(request: Request, principal: Principal, school: School, *, status: int = 200, **context) -> HTMLResponse:
    return render(request, "import.html", status=status, principal=principal, school=school, formats=cardnumber.FORMATS, **context)


@router.get("/admin/import")
def import_page(request: Request, db: DbDep, school: Annotated[str | None, Query(max_length=64)] = None) -> HTMLResponse:
    principal = caller(request, db, ADMINS)
    return _import_page(request, principal, school_of(db, principal, school), card_format="hex")


async def _uploads(form_files: dict[str, UploadFile | None], kept: dict[str, tuple[str, str]], locale: str) -> tuple[list[Upload], list[str]]:
    """The files of this post: uploaded now, or re-posted by the preview page (name, base64)."""
    found, problems = [], []
    for file in FILES:
        upload = form_files.get(file)
        if upload is not None and upload.filename:
            name, data = upload.filename, await upload.read()
        elif kept.get(file) and kept[file][0]:
            name = kept[file][0]
            try:
                data = base64.b64decode(kept[file][1], validate=True)
            except (binascii.Error, ValueError):
                problems.append(t("web.import.bad_upload", locale, file=name))
                continue
        else:
            continue
        if _suffix(name) not in SUFFIXES:
            problems.append(t("web.import.bad_type", locale, file=name))
            continue
        found.append(Upload(file, name, data))
    return found, problems


def _run(db: Session, school: School, uploads: list[Upload], card_format: str, *, commit: bool, request: Request):
    """The importer on these bytes: rolled back (the preview) or committed with the new roster version."""
    with tempfile.TemporaryDirectory(prefix="schoolgate-import-") as folder:
        paths: dict[str, Path | None] = dict.fromkeys(FILES)
        rows: dict[str, list[list[str]]] = {}
        for up in uploads:
            # Its own name, so every bad row is named by the file the admin chose.
            (Path(folder) / up.file).mkdir()
            path = Path(folder) / up.file / Path(up.name.replace("\\", "/")).name
            path.write_bytes(up.data)
            paths[up.file] = path
            try:
                rows[up.file] = importer.read_rows(path)
            except Exception:  # noqa: BLE001 — unreadable: the importer below names the problem
                rows[up.file] = []
        try:
            result = importer.import_roster(db, school=school.code, students=paths["students"], guardians=paths["guardians"],
                                            card_format=card_format, commit=False)
            if commit:
                refresh_and_publish(request.app, db, school)  # commits the rows and the roster version together
            else:
                db.rollback()
        except BaseException:
            db.rollback()
            raise
    return result, rows


@router.post("/admin/import")
async def import_post(
    request: Request, db: DbDep, csrf: Annotated[str, Form(max_length=100)] = "", school: Annotated[str | None, Form(max_length=64)] = None,
    step: Annotated[str, Form(max_length=16)] = "preview", card_format: Annotated[str, Form(max_length=16)] = "hex",
    students: Annotated[UploadFile | None, File()] = None, guardians: Annotated[UploadFile | None, File()] = None,
    students_name: Annotated[str, Form(max_length=255)] = "", students_data: Annotated[str, Form()] = "",
    guardians_name: Annotated[str, Form(max_length=255)] = "", guardians_data: Annotated[str, Form()] = "",
) -> Response:
    """``step=preview``: check the files and show what they would do (nothing is written); ``step=confirm``
    (from the preview page, the same files re-posted): import them."""
    check_csrf(request, csrf)
    principal = caller(request, db, ADMINS)
    row = school_of(db, principal, school)
    locale = web_session.locale(request)
    if card_format not in cardnumber.FORMATS:
        return _import_page(request, principal, row, status=422, card_format="hex", problems=[t("web.import.bad_format", locale)])
    uploads, problems = await _uploads({"students": students, "guardians": guardians},
                                       {"students": (students_name, students_data), "guardians": (guardians_name, guardians_data)}, locale)
    if not problems and not uploads:
        problems = [t("web.import.no_file", locale)]
    if problems:
        return _import_page(request, principal, row, status=422, card_format=card_format, problems=problems)
    confirm = step == "confirm"
    try:
        result, rows = _run(db, row, uploads, card_format, commit=confirm, request=request)
    except importer.ImportRejected as exc:
        return _import_page(request, principal, row, status=422, card_format=card_format, errors=exc.errors)
    except LocalizedError as exc:
        return _import_page(request, principal, row, status=422, card_format=card_format, problems=[exc.text(locale)])
    except ValueError as exc:  # a file unreadable as its type says
        return _import_page(request, principal, row, status=422, card_format=card_format, problems=[str(exc)])
    if confirm:
        return _import_page(request, principal, row, card_format=card_format, done=result)
    previews = {up.file: {"name": up.name, "header": rows[up.file][:1], "rows": rows[up.file][1:PREVIEW_ROWS + 1],
                          "more": max(0, len(rows[up.file]) - 1 - PREVIEW_ROWS)} for up in uploads}
    return _import_page(request, principal, row, card_format=card_format, result=result, previews=previews, uploads=uploads)


# --- /admin/enrollments ---------------------------------------------------------------------------

QUEUE = (enrollment.APPLIED, enrollment.CLASS_REVIEWED, enrollment.APPROVED)
#: bulk action -> the state an enrollment must be in for it
ACTIONS = {"review": enrollment.APPLIED, "approve": enrollment.CLASS_REVIEWED, "sign": enrollment.APPROVED}


@dataclass
class QueueRow:
    id: int
    student: str
    name: str
    school_class: str
    class_id: int
    group: str
    group_id: int | None
    application: str
    signed: list[str]


def _queue(db: Session, school: School, class_id: int | None, group_id: int | None) -> dict[str, list[tuple[str, list[QueueRow]]]]:
    """state -> [(group name, rows)] of the open enrollments not active yet, in the order they came."""
    notice = enrollment.current_notice(db, school=school)
    groups = {g.id: g.name for g in db.exec(select(InterestGroup).where(InterestGroup.school_id == school.id))}
    classes = {c.id: f"{c.grade}{c.name}" for c in db.exec(select(SchoolClass).where(SchoolClass.school_id == school.id))}
    stmt = (select(Enrollment, Student).join(Student, col(Student.id) == Enrollment.student_id)
            .where(Enrollment.school_id == school.id, col(Enrollment.state).in_(QUEUE)).order_by(col(Enrollment.id)))
    if class_id is not None:
        stmt = stmt.where(Student.class_id == class_id)
    if group_id is not None:
        stmt = stmt.where(Enrollment.group_id == group_id)
    found: dict[str, dict[str, list[QueueRow]]] = {state: defaultdict(list) for state in QUEUE}
    for e, s in db.exec(stmt):
        signed = []
        if e.state == enrollment.APPROVED and notice is not None:
            signed = [sig.party for sig in enrollment.public(db, e).signatures if sig.notice_version == notice.version]
        group = groups.get(e.group_id, "") if e.group_id else ""
        found[e.state][group].append(QueueRow(e.id, s.student_no, s.name, classes.get(s.class_id, ""), s.class_id, group, e.group_id,
                                              e.application, signed))
    return {state: sorted(by_group.items()) for state, by_group in found.items()}


def _enrollments_page(request: Request, db: Session, principal: Principal, school: School, *, status: int = 200,
                      class_id: int | None = None, group_id: int | None = None, **context) -> HTMLResponse:
    notices = list(db.exec(select(Notice).where(Notice.school_id == school.id).order_by(col(Notice.version).desc())))
    groups = list(db.exec(select(InterestGroup).where(InterestGroup.school_id == school.id).order_by(col(InterestGroup.name))))
    classes = list(db.exec(select(SchoolClass).where(SchoolClass.school_id == school.id).order_by(col(SchoolClass.grade), col(SchoolClass.name))))
    return render(request, "enrollments.html", status=status, principal=principal, school=school, queue=_queue(db, school, class_id, group_id),
                  notices=notices, notice=notices[0] if notices else None, groups=groups, classes=classes, class_id=class_id,
                  group_id=group_id, **context)


@router.get("/admin/enrollments")
def enrollments_page(
    request: Request, db: DbDep, school: Annotated[str | None, Query(max_length=64)] = None,
    class_id: Annotated[int | None, Query(alias="class", ge=1, le=2**31)] = None,
    group: Annotated[int | None, Query(ge=1, le=2**31)] = None,
) -> HTMLResponse:
    principal = caller(request, db, ADMINS)
    return _enrollments_page(request, db, principal, school_of(db, principal, school), class_id=class_id, group_id=group)


@router.post("/admin/enrollments")
async def enrollments_bulk(request: Request, db: DbDep) -> Response:
    """A bulk step on the enrollments ticked (``id``, repeated): review, approve (into their group, or the
    one chosen), or the school's signature of the current notice. Each enrollment is its own step: one
    refused (its state moved on, the group is full) is named with the reason, the others are done."""
    form = await request.form()
    check_csrf(request, form.get("csrf", ""))
    principal = caller(request, db, ADMINS)
    row = school_of(db, principal, form.get("school") or None)
    locale = web_session.locale(request)
    action = form.get("action", "")
    if action not in ACTIONS:
        raise PageError(422, "web.enrollments.bad_action")
    try:
        ids = [int(v) for v in form.getlist("id")]
        group_id = int(form.get("group_id")) if form.get("group_id") else None
    except ValueError:
        raise PageError(422, "web.enrollments.bad_action") from None
    note = str(form.get("note", ""))[:1000]
    signer = str(form.get("signer", "")).strip() or row.name
    notice = enrollment.current_notice(db, school=row)
    done, refused = 0, []
    for enrollment_id in ids[:500]:
        try:
            if action == "review":
                enrollment.review(db, school=row, enrollment_id=enrollment_id, actor=principal.label, note=note)
            elif action == "approve":
                enrollment.approve(db, school=row, enrollment_id=enrollment_id, actor=principal.label, group_id=group_id, note=note)
            else:
                if notice is None:
                    raise PageError(409, "web.enrollments.no_notice")
                enrollment.sign(db, school=row, enrollment_id=enrollment_id, party="school", signer=signer, notice_version=notice.version,
                                actor=principal.label, role=principal.role.value)
            done += 1
        except LocalizedError as exc:
            db.rollback()
            refused.append((enrollment_id, exc.text(locale)))
    return _enrollments_page(request, db, principal, row, status=200 if not refused else 409,
                             outcome={"action": action, "done": done, "refused": refused})


@router.post("/admin/enrollments/notice")
def publish_notice(
    request: Request, db: DbDep, text: Annotated[str, Form(max_length=20000)] = "", csrf: Annotated[str, Form(max_length=100)] = "",
    school: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    """A new version of the notice (告知书): signatures of older versions no longer count."""
    check_csrf(request, csrf)
    principal = caller(request, db, ADMINS)
    row = school_of(db, principal, school)
    if not text.strip():
        return _enrollments_page(request, db, principal, row, status=422, error=t("web.enrollments.notice_empty", web_session.locale(request)))
    enrollment.publish_notice(db, school=row, text=text.strip(), actor=principal.label)
    return RedirectResponse(f"/admin/enrollments?school={quote(row.code)}", status_code=303)

