"""Roster import: a school's students and guardians from CSV, XLSX or legacy XLS (ARCHITECTURE.md "Roster import").

All or nothing: the school (its id, and whether it exists or the import may create it) and every
row of both files are checked before anything is written, and a single bad row refuses the whole
import with every problem listed (``ImportRejected``). Everything is then written in one
transaction: ``import_roster`` commits it, or with ``commit=False`` leaves it to the caller (the
command line commits it together with the new roster version, so an error there stores nothing
either). Nothing absent from the files is deleted: leaving the service goes through enrollment
(P2.1), not the roster file.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import openpyxl
import xlrd
from openpyxl.utils import get_column_letter
from sqlmodel import Session, select

from central.core.cards import canonical_card, canonical_phone
from central.core.errors import Missing
from central.core.i18n import Items, LocalizedError, LocalizedValueError, Msg, t
from central.schools import registry
from central.schools.models import Card, Guardian, GuardianLink, School, SchoolClass, Student
from hardware import cardnumber

# Header as written (Chinese or English, compared case-insensitively) -> field.
STUDENT_HEADERS = {"学号": "student_no", "姓名": "name", "年级": "grade", "班级": "class", "卡号": "card",
                   "建档立卡": "poverty_registered", "自行离校": "may_leave_alone", "报名": "applied"}
GUARDIAN_HEADERS = {"姓名": "name", "关系": "relation", "手机": "phone", "卡号": "card", "学生学号": "student_no",
                    "可接送": "may_pick_up", "禁止接送": "barred", "自行离校": "may_leave_alone"}
# 建档立卡 may be absent: a new student is then not registered, a stored one keeps what is stored.
OPTIONAL_COLUMNS = {"may_leave_alone", "applied", "poverty_registered"}
# Column widths of central/schools/models.py, checked here so a long cell is a row error, not a DB error.
LIMITS = {"student_no": 32, "name": 100, "grade": 32, "class": 64, "relation": 32}
TRUE = {"是", "yes", "y", "true", "1"}
FALSE = {"否", "no", "n", "false", "0"}


@dataclass(frozen=True)
class RowError:
    """One problem of a file: where it is, and why as a catalogue message (``message``, its key and params).

    ``reason`` and ``str()`` are the English text (the log, ``ImportRejected``'s own text);
    ``reason_in(locale)`` and ``text(locale)`` are what a page or the command line shows its reader.
    """

    file: str
    row: int | None  # 1-based as a spreadsheet shows it: the header is row 1
    column: str | None  # the header as written in the file
    message: Msg

    @property
    def reason(self) -> str:
        return self.reason_in("en")

    def reason_in(self, locale: str) -> str:
        return t(self.message.key, locale, **self.message.params)

    def text(self, locale: str) -> str:
        """The whole line: file, row, column and reason, in ``locale``."""
        where = (t("import.where_file", locale, file=self.file) if self.row is None
                 else t("import.where_row", locale, file=self.file, row=self.row))
        if self.column:
            return t("import.problem_at_column", locale, where=where, column=self.column, reason=self.reason_in(locale))
        return t("import.problem_at", locale, where=where, reason=self.reason_in(locale))

    def __str__(self) -> str:
        return self.text("en")


def _problem(exc: Exception) -> Msg:
    """A parser's error as a message: a catalogue one as itself, any other (a library's) as its own words."""
    if isinstance(exc, LocalizedError):
        return Msg(exc.key, exc.params)
    return Msg("import.as_said", {"problem": str(exc)})


class ImportRejected(Exception):
    """The files were refused; nothing was written. ``errors`` lists every problem found."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = list(errors)
        lines = [f"Roster import refused, nothing was imported ({len(self.errors)} problem(s)):"]
        super().__init__("\n".join(lines + [f"  - {e}" for e in self.errors]))


@dataclass
class ImportResult:
    """What the files set: ``*_updated`` counts existing people matched, ``links``/``cards`` those in the files."""

    students_created: int = 0
    students_updated: int = 0
    guardians_created: int = 0
    guardians_updated: int = 0
    links: int = 0
    cards: int = 0
    applications: int = 0  # written applications received (报名 = 是): each waits for review (P2.1)


# --- reading ------------------------------------------------------------------------------


def read_rows(path: Path) -> list[list[str]]:
    """The cells of a CSV, XLSX or XLS file (its first sheet) as text, header first: what the import reads."""
    return _read_rows(path)


def _read_rows(path: Path) -> list[list[str]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        data = path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            # Excel on Chinese Windows saves CSV as GBK; GB18030 decodes GBK identically and
            # also the rare name characters GBK lacks.
            try:
                text = data.decode("gb18030")
            except UnicodeDecodeError:
                raise LocalizedValueError("import.not_utf8_or_gbk") from None
        return [[c.strip() for c in r] for r in csv.reader(io.StringIO(text, newline=""))]
    if suffix in (".xlsx", ".xlsm"):
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            return [[_cell_text(v) for v in r] for r in book.worksheets[0].iter_rows(values_only=True)]
        finally:
            book.close()
    if suffix == ".xls":
        return _read_xls(path)
    if not suffix:
        raise LocalizedValueError("import.no_file_type")
    raise LocalizedValueError("import.bad_file_type", suffix=suffix)


def _read_xls(path: Path) -> list[list[str]]:
    """The first sheet of a legacy Excel 97-2003 workbook (BIFF, still common in Chinese schools)."""
    book = xlrd.open_workbook(str(path), on_demand=True)
    try:
        sheet = book.sheet_by_index(0)
        rows = []
        for r in range(sheet.nrows):
            # xlrd gives numbers as floats and booleans as 0/1 (their cell type says which).
            rows.append([_cell_text(bool(c.value) if c.ctype == xlrd.XL_CELL_BOOLEAN else c.value)
                         for c in sheet.row(r)])
        return rows
    finally:
        book.release_resources()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a student or card number typed as a number, not "12345.0"
    return str(value).strip()


def _columns(file: str, header: list[str], aliases: dict[str, str], errors: list[RowError]) -> dict[str, tuple]:
    """Field -> (index, header as written); problems with the header row are added to ``errors``."""
    known = {k.lower(): v for k, v in aliases.items()} | {v: v for v in aliases.values()}
    found: dict[str, tuple[int, str]] = {}
    for i, text in enumerate(header):
        if not text:
            continue
        name = known.get(text.lower())
        if name is None:
            errors.append(RowError(file, 1, text, Msg("import.unknown_column", {"expected": _names(aliases, aliases.values())})))
        elif name in found:
            errors.append(RowError(file, 1, text, Msg("import.same_column", {"other": found[name][1]})))
        else:
            found[name] = (i, text)
    missing = [f for f in dict.fromkeys(aliases.values()) if f not in found and f not in OPTIONAL_COLUMNS]
    if missing:
        errors.append(RowError(file, 1, None, Msg("import.missing_columns", {"columns": _names(aliases, missing)})))
    return found


def _names(aliases: dict[str, str], fields) -> Items:
    return Items(tuple(f"{zh}/{en}" for zh, en in aliases.items() if en in set(fields)))


# --- one row of each file -----------------------------------------------------------------


@dataclass
class _Cells:
    file: str
    row: int
    values: dict[str, str]
    headers: dict[str, str]
    errors: list[RowError]
    card_format: str = "hex"

    def fail(self, name: str, reason: Msg) -> None:
        self.errors.append(RowError(self.file, self.row, self.headers.get(name, name), reason))

    def text(self, name: str, *, required: bool = False) -> str:
        value = self.values.get(name, "")
        if required and not value:
            self.fail(name, Msg("import.empty"))
        elif name in LIMITS and len(value) > LIMITS[name]:
            self.fail(name, Msg("import.too_long", {"limit": LIMITS[name]}))
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.values.get(name, "").lower()
        if value in TRUE or value in FALSE:
            return value in TRUE
        if value:
            self.fail(name, Msg("import.not_yes_no", {"value": value}))
        return default

    def card(self) -> str:
        try:
            return canonical_card(self.values["card"], self.card_format) if self.values.get("card") else ""
        except ValueError as e:
            self.fail("card", _problem(e))
            return ""


@dataclass
class _StudentRow:
    row: int
    student_no: str
    name: str
    grade: str
    class_name: str
    card: str
    poverty_registered: bool | None  # None: the file has no 建档立卡 column
    may_leave_alone: bool
    applied: bool = False  # the guardian's written application is in: record it, never more (P2.1)


@dataclass
class _GuardianRow:
    row: int
    name: str
    relation: str
    phone: str
    card: str
    student_no: str
    may_pick_up: bool
    barred: bool
    may_leave_alone: bool


def _student(c: _Cells) -> _StudentRow:
    return _StudentRow(c.row, c.text("student_no", required=True), c.text("name", required=True),
                       c.text("grade", required=True), c.text("class", required=True), c.card(),
                       c.flag("poverty_registered", False) if "poverty_registered" in c.headers else None,
                       c.flag("may_leave_alone", False), c.flag("applied", False))


def _guardian(c: _Cells) -> _GuardianRow:
    name, relation, student_no = c.text("name", required=True), c.text("relation"), c.text("student_no", required=True)
    try:
        phone = canonical_phone(c.values.get("phone", ""))
    except ValueError as e:
        c.fail("phone", _problem(e))
        phone = ""
    barred = c.flag("barred", False)
    # A barred guardian left blank under may_pick_up is simply not allowed to pick up.
    may_pick_up = c.flag("may_pick_up", not barred)
    leave_alone = c.flag("may_leave_alone", False)
    if barred and may_pick_up:
        c.fail("may_pick_up", Msg("import.barred_picks_up"))
    if barred and leave_alone:
        c.fail("may_leave_alone", Msg("import.barred_leave_alone"))
    return _GuardianRow(c.row, name, relation, phone, c.card(), student_no, may_pick_up, barred, leave_alone)


@dataclass
class _File:
    name: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # field -> header as written
    rows: list = field(default_factory=list)

    def column(self, name: str) -> str:
        return self.headers.get(name, name)


def _parse(path: Path | None, aliases: dict[str, str], parse_row, errors: list[RowError], card_format: str = "hex") -> _File:
    if path is None:
        return _File()
    try:
        rows = _read_rows(path)
    except Exception as e:  # a damaged XLSX raises zipfile, XML and KeyError alike: all mean "unreadable"
        errors.append(RowError(path.name, None, None, Msg("import.unreadable", {"problem": _problem(e)})))
        return _File(path.name)
    if not rows:
        errors.append(RowError(path.name, None, None, Msg("import.file_empty")))
        return _File(path.name)
    before = len(errors)
    columns = _columns(path.name, rows[0], aliases, errors)
    out = _File(path.name, {name: text for name, (_, text) in columns.items()})
    if len(errors) > before:
        return out  # with a wrong header row the cells cannot be read
    used = {i for i, _ in columns.values()}
    for number, cells in enumerate(rows[1:], start=2):
        if not any(cells):
            continue  # spreadsheets keep blank formatted rows at the end
        for i in (i for i, v in enumerate(cells) if v and i not in used):  # data a missing header would drop
            errors.append(RowError(path.name, number, get_column_letter(i + 1), Msg("import.under_no_header", {"value": cells[i]})))
        values = {name: cells[i] if i < len(cells) else "" for name, (i, _) in columns.items()}
        out.rows.append(parse_row(_Cells(path.name, number, values, out.headers, errors, card_format)))
    return out


# --- the import ---------------------------------------------------------------------------


def import_roster(session: Session, *, school: str, students: Path | None, guardians: Path | None,
                  school_name: str | None = None, card_format: str | dict[str, str] = "hex",
                  create_school: bool = False, timezone: str = registry.DEFAULT_ZONE, commit: bool = True) -> ImportResult:
    """Check the school and both files, then upsert classes, students, guardians, links and cards, and commit.

    The school must exist, unless ``create_school`` says to create it (named ``school_name``, in
    ``timezone``); an existing school is used as it is. A guardian is one person per (name, phone)
    within the school. A card given in a file replaces that person's previous card(s); an empty card
    cell leaves them as they are. ``card_format`` is how both files write card numbers, or per file as
    ``{"students": ..., "guardians": ...}`` (``hex`` where not given); see ``canonical_card``.
    ``commit=False`` flushes instead of committing: the caller's commit stores it all or nothing.

    Raises:
        central.core.errors.Invalid: the school id (or the new school's name or zone) is not valid.
        central.core.errors.Missing: no such school, and ``create_school`` is not set.
        ImportRejected: any row of either file is bad.
        In every case the session is rolled back and nothing is written.
    """
    if not school or (students is None and guardians is None):
        raise ValueError("give a school code and a students file, a guardians file or both")
    formats = card_format if isinstance(card_format, dict) else {"students": card_format, "guardians": card_format}
    for file, name in formats.items():
        if file not in ("students", "guardians") or name not in cardnumber.FORMATS:
            raise ValueError(f"card format {file}={name!r}: the files are students and guardians, the formats "
                             + ", ".join(cardnumber.FORMATS))
    try:
        result = _import(session, school, students, guardians, school_name, formats, create_school, timezone)
        if commit:
            session.commit()
        return result
    except BaseException:
        session.rollback()
        raise


def _import(session: Session, code: str, students: Path | None, guardians: Path | None,
            school_name: str | None, formats: dict[str, str], create_school: bool, timezone: str) -> ImportResult:
    # The school first: an id kiosks cannot use in a topic, or a school nobody created, refuses the
    # import before a row is read, so nothing is written (issue 12).
    registry.check_school(code=code, name=school_name if create_school else None, timezone=timezone)
    school = session.exec(select(School).where(School.code == code)).first()
    if school is None and not create_school:
        raise Missing("import_no_school", school=code)
    errors: list[RowError] = []
    sfile = _parse(students, STUDENT_HEADERS, _student, errors, formats.get("students", "hex"))
    gfile = _parse(guardians, GUARDIAN_HEADERS, _guardian, errors, formats.get("guardians", "hex"))
    if any(e.row in (None, 1) for e in errors):
        raise ImportRejected(errors)  # a file unread or with a wrong header: cross-file checks would mislead

    sid = school.id if school else -1
    db = _People(
        {s.student_no: s for s in session.exec(select(Student).where(Student.school_id == sid))},
        {(g.name, g.phone): g for g in session.exec(select(Guardian).where(Guardian.school_id == sid))},
    )

    # Who each card goes to in the files: person -> uid, and uid -> (person, file, row).
    card_of: dict[tuple, str] = {}
    holder: dict[str, tuple[tuple, _File, int]] = {}

    def give_card(person: tuple, uid: str, file: _File, row: int) -> None:
        if uid in holder and holder[uid][0] != person:
            errors.append(RowError(file.name, row, file.column("card"),
                                   Msg("import.card_twice", {"card": uid, "file": holder[uid][1].name, "other_row": holder[uid][2]})))
        elif person in card_of and card_of[person] != uid:
            errors.append(RowError(file.name, row, file.column("card"),
                                   Msg("import.person_two_cards", {"card": card_of[person]})))
        else:
            holder.setdefault(uid, (person, file, row))
            card_of[person] = uid

    first_row: dict[str, int] = {}
    for s in sfile.rows:
        if s.student_no in first_row:
            errors.append(RowError(sfile.name, s.row, sfile.column("student_no"),
                                   Msg("import.student_twice", {"student_no": s.student_no, "other_row": first_row[s.student_no]})))
        first_row.setdefault(s.student_no, s.row)
        if s.card:
            give_card(("student", s.student_no), s.card, sfile, s.row)
    first_link: dict[tuple, int] = {}
    for g in gfile.rows:
        link = (g.name, g.phone, g.student_no)
        if link in first_link:
            errors.append(RowError(gfile.name, g.row, gfile.column("student_no"),
                                   Msg("import.link_twice", {"student_no": g.student_no, "other_row": first_link[link]})))
        first_link.setdefault(link, g.row)
        if g.student_no and g.student_no not in first_row and g.student_no not in db.students:
            errors.append(RowError(gfile.name, g.row, gfile.column("student_no"),
                                   Msg("import.no_student", {"student_no": g.student_no, "school": code})))
        if g.card:
            give_card(("guardian", g.name, g.phone), g.card, gfile, g.row)

    # A card already in the school is free if it is the same person's, or if its owner is
    # given another card by these files (the old one is then replaced, so swaps work).
    for card in session.exec(select(Card).where(Card.school_id == sid)):
        if card.uid in holder:
            person, file, row = holder[card.uid]
            owner = db.owner(card)
            if owner != person and owner not in card_of:
                errors.append(RowError(file.name, row, file.column("card"),
                                       Msg("import.card_taken", {"card": card.uid, "owner": _owner(owner), "school": code})))

    if errors:
        errors.sort(key=lambda e: (e.file != sfile.name, e.row or 0))  # stable: columns stay in order
        raise ImportRejected(errors)
    return _write(session, code, school, school_name, timezone, sfile.rows, gfile.rows, db, card_of)


def _owner(person: tuple) -> Msg:
    if person[0] == "student":
        return Msg("import.owner_student", {"student_no": person[1]})
    return Msg("import.owner_guardian", {"name": person[1], "phone": person[2]})


@dataclass
class _People:
    """The school's students by student_no and guardians by (name, phone)."""

    students: dict[str, Student]
    guardians: dict[tuple[str, str], Guardian]

    def ids(self, person: tuple) -> dict[str, int | None]:
        if person[0] == "student":
            return {"student_id": self.students[person[1]].id, "guardian_id": None}
        return {"student_id": None, "guardian_id": self.guardians[person[1:]].id}

    @cached_property
    def _by_id(self) -> dict[tuple[int | None, int | None], tuple]:
        return {(s.id, None): ("student", no) for no, s in self.students.items()} | {
            (None, g.id): ("guardian", *key) for key, g in self.guardians.items()}

    def owner(self, card: Card) -> tuple:
        """The person a stored card belongs to, as ("student", no) or ("guardian", name, phone)."""
        return self._by_id[(card.student_id, card.guardian_id)]


def _write(session: Session, code: str, school: School | None, school_name: str | None, timezone: str,
           srows: list[_StudentRow], grows: list[_GuardianRow], db: _People, card_of: dict[tuple, str]) -> ImportResult:
    result = ImportResult()
    if school is None:  # checked above: the import was told to create it
        school = registry.create_school(session, actor=session.info.get("actor", "import"), code=code, name=school_name,
                                        timezone=timezone, commit=False)
    classes = {(c.grade, c.name): c for c in session.exec(
        select(SchoolClass).where(SchoolClass.school_id == school.id))}
    for s in srows:
        klass = classes.get((s.grade, s.class_name))
        if klass is None:
            klass = SchoolClass(school_id=school.id, grade=s.grade, name=s.class_name)
            classes[(s.grade, s.class_name)] = klass
            session.add(klass)
            session.flush()
        student = db.students.get(s.student_no)
        if student is None:
            student = db.students[s.student_no] = Student(school_id=school.id, class_id=klass.id,
                                                          student_no=s.student_no, name=s.name)
            result.students_created += 1
        else:
            result.students_updated += 1
        student.name, student.class_id = s.name, klass.id
        if s.poverty_registered is not None:  # without the column a new student is not, a stored one keeps it
            student.poverty_registered = s.poverty_registered
        student.may_leave_alone = s.may_leave_alone
        session.add(student)
    # P9.4: written permission to leave alone may come on any guardian's row instead.
    for g in grows:
        if g.may_leave_alone:
            db.students[g.student_no].may_leave_alone = True
    session.flush()
    result.applications = record_applications(session, school, [(s, db.students[s.student_no]) for s in srows if s.applied])

    named = {(g.name, g.phone) for g in grows}
    result.guardians_updated = len(named & db.guardians.keys())
    result.guardians_created = len(named) - result.guardians_updated
    stored_links = select(GuardianLink).join(Student, Student.id == GuardianLink.student_id)
    links = {(ln.guardian_id, ln.student_id): ln for ln in session.exec(stored_links.where(Student.school_id == school.id))}
    for g in grows:
        guardian = db.guardians.get((g.name, g.phone))
        if guardian is None:
            guardian = db.guardians[(g.name, g.phone)] = Guardian(school_id=school.id, name=g.name, phone=g.phone)
            session.add(guardian)
            session.flush()
        student = db.students[g.student_no]
        link = links.get((guardian.id, student.id)) or GuardianLink(guardian_id=guardian.id, student_id=student.id)
        link.relation, link.may_pick_up, link.barred = g.relation, g.may_pick_up, g.barred
        links[(guardian.id, student.id)] = link
        session.add(link)
        if link.id is not None:
            from central.pickup import (
                codes as pickup,  # here, like enrollment below: keeps the importer's imports light
            )

            pickup.revoke_codes_of_link(session, link=link, actor="import")  # P9.4: a bar arriving by import
        result.links += 1

    # Replace each carded person's old cards: delete them all first, so swapping two cards is no conflict.
    owners = {tuple(db.ids(person).values()): person for person in card_of}
    kept = set()
    for card in session.exec(select(Card).where(Card.school_id == school.id)):
        person = owners.get((card.student_id, card.guardian_id))
        if person is not None and card.uid != card_of[person]:
            session.delete(card)
        elif person is not None:
            kept.add(card.uid)
    session.flush()
    for person, uid in card_of.items():
        if uid not in kept:
            session.add(Card(school_id=school.id, uid=uid, **db.ids(person)))
        result.cards += 1
    session.flush()
    return result


def record_applications(session: Session, school: School, rows: list[tuple[_StudentRow, Student]]) -> int:
    """A bulk import creates applications, never active enrollments (P2.1): one for each student marked
    as applied who has no open enrollment yet, so importing the same file twice adds nothing."""
    from central.programme import enrollment  # here, like pickup above: keeps the importer's imports light

    made = 0
    for row, student in rows:
        if not enrollment.has_open(session, student_id=student.id):
            enrollment.record_application(session, school=school, student_id=student.id, actor="import",
                                          application=f"written application, imported from row {row.row}", commit=False)
            made += 1
    return made
