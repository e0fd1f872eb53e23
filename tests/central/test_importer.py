"""Roster import: CSV/XLSX students and guardians, all or nothing (central.imports.importer.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pytest
from sqlmodel import Session, select

from central.core.db import make_engine, migrate
from central.imports.importer import (
    ImportRejected,
    ImportResult,
    RowError,
    import_roster,
)
from central.schools.models import Card, Guardian, GuardianLink, School, SchoolClass, Student

S_ZH = ["学号", "姓名", "年级", "班级", "卡号", "建档立卡"]
G_ZH = ["姓名", "关系", "手机", "卡号", "学生学号", "可接送", "禁止接送", "自行离校"]
S_EN = ["student_no", "name", "grade", "class", "card", "poverty_registered"]
G_EN = ["name", "relation", "phone", "card", "student_no", "may_pick_up", "barred", "may_leave_alone"]

STUDENTS = [
    ["1001", "张小明", "三年级", "2班", "04a1b2c3", "否"],
    ["1002", "张小红", "一年级", "1班", "04 A1 B2 C4", "是"],
    ["1003", "李华", "三年级", "2班", "", ""],
]
GUARDIANS = [
    ["王芳", "母亲", "138-0013-8000", "0A0B0C0D", "1001", "是", "否", ""],
    ["王芳", "母亲", "+86 13800138000", "0a0b0c0d", "1002", "", "", "是"],
    ["李强", "父亲", "13900139000", "", "1003", "否", "是", ""],
    ["赵敏", "外婆", "", "", "1003", "yes", "no", "n"],
]


@pytest.fixture
def session(tmp_path: Path):
    engine = make_engine("sqlite:///" + str(tmp_path / "t.sqlite3"))
    migrate(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8-sig") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def pair(tmp_path: Path, students=STUDENTS, guardians=GUARDIANS, s_header=S_ZH, g_header=G_ZH):
    return write_csv(tmp_path / "学生.csv", s_header, students), write_csv(tmp_path / "家长.csv", g_header, guardians)


def run(session, students, guardians, school="sx01", **kw) -> ImportResult:
    kw.setdefault("create_school", True)  # the first import of these tests makes the school
    return import_roster(session, school=school, students=students, guardians=guardians, **kw)


def rejected(session, students, guardians) -> list[RowError]:
    with pytest.raises(ImportRejected) as info:
        run(session, students, guardians)
    assert_nothing_written(session)
    return info.value.errors


def assert_nothing_written(session):
    for table in (School, SchoolClass, Student, Guardian, GuardianLink, Card):
        assert session.exec(select(table)).all() == [], table.__name__


def by(errors: list[RowError], row: int) -> list[RowError]:
    return [e for e in errors if e.row == row]


# --- good files ---------------------------------------------------------------------------


def test_chinese_csv_pair_imports(session, tmp_path):
    students, guardians = pair(tmp_path)
    result = run(session, students, guardians, school_name="实验小学")

    assert result == ImportResult(students_created=3, students_updated=0, guardians_created=3,
                                  guardians_updated=0, links=4, cards=3)
    school = session.exec(select(School)).one()
    assert (school.code, school.name) == ("sx01", "实验小学")
    assert {(c.grade, c.name) for c in session.exec(select(SchoolClass))} == {("三年级", "2班"), ("一年级", "1班")}
    s = {x.student_no: x for x in session.exec(select(Student))}
    assert s["1001"].name == "张小明" and s["1001"].class_id == s["1003"].class_id != s["1002"].class_id
    assert [s[n].poverty_registered for n in ("1001", "1002", "1003")] == [False, True, False]
    # 王芳's second row grants 1002 leaving alone (P9.4); nobody granted it to 1001.
    assert [s[n].may_leave_alone for n in ("1001", "1002", "1003")] == [False, True, False]

    # 王芳 is on two rows with two phone spellings: one Guardian, two links, one card.
    wang = session.exec(select(Guardian).where(Guardian.name == "王芳")).one()
    assert wang.phone == "13800138000"
    links = session.exec(select(GuardianLink).where(GuardianLink.guardian_id == wang.id)).all()
    assert {ln.student_id for ln in links} == {s["1001"].id, s["1002"].id}
    assert all(ln.relation == "母亲" and ln.may_pick_up and not ln.barred for ln in links)
    li = session.exec(select(Guardian).where(Guardian.name == "李强")).one()
    li_link = session.exec(select(GuardianLink).where(GuardianLink.guardian_id == li.id)).one()
    assert (li_link.may_pick_up, li_link.barred) == (False, True)
    zhao = session.exec(select(Guardian).where(Guardian.name == "赵敏")).one()
    assert zhao.phone == ""

    cards = {c.uid: c for c in session.exec(select(Card))}
    assert set(cards) == {"04A1B2C3", "04A1B2C4", "0A0B0C0D"}
    assert cards["04A1B2C3"].student_id == s["1001"].id and cards["04A1B2C3"].guardian_id is None
    assert cards["0A0B0C0D"].guardian_id == wang.id and cards["0A0B0C0D"].student_id is None
    assert all(c.school_id == school.id for c in cards.values())
    with Session(session.get_bind()) as other:  # committed: the CLI calls import_roster directly
        assert len(other.exec(select(Student)).all()) == 3


def test_english_headers_any_case(session, tmp_path):
    students, guardians = pair(tmp_path, s_header=[h.upper() for h in S_EN] + ["may_leave_alone"],
                               g_header=[h.title() for h in G_EN],
                               students=[r + ["yes"] for r in STUDENTS])
    result = run(session, students, guardians)
    assert (result.students_created, result.guardians_created, result.links) == (3, 3, 4)
    assert all(s.may_leave_alone for s in session.exec(select(Student)))
    assert session.exec(select(School)).one().name == "sx01"  # no school_name: the code


def test_gbk_csv(session, tmp_path):
    students = write_csv(tmp_path / "s.csv", S_ZH, STUDENTS, encoding="gbk")
    guardians = write_csv(tmp_path / "g.csv", G_ZH, GUARDIANS, encoding="gbk")
    assert run(session, students, guardians).students_created == 3
    assert {s.name for s in session.exec(select(Student))} == {"张小明", "张小红", "李华"}
    assert session.exec(select(GuardianLink)).all()


def test_utf8_without_bom(session, tmp_path):
    students = write_csv(tmp_path / "s.csv", S_ZH, STUDENTS, encoding="utf-8")
    run(session, students, None)
    assert session.exec(select(Student).where(Student.student_no == "1002")).one().name == "张小红"


def test_xlsx_pair_with_numeric_cells(session, tmp_path):
    def xlsx(name, header, rows):
        book = openpyxl.Workbook()
        book.active.append(header)
        for r in rows:
            book.active.append(r)
        book.create_sheet("ignored").append(["not", "read"])
        book.save(tmp_path / name)
        return tmp_path / name

    students = xlsx("s.xlsx", S_ZH, [[1001, "张小明", "三年级", "2班", 12345678, "否"],
                                     # Long numbers come back as floats ("1e+17"): still digits.
                                     [1002.0, "张小红", "一年级", "1班", 1e17, None]])
    guardians = xlsx("g.xlsx", G_ZH, [["王芳", "母亲", 13800138000, 87654321, 1001, "是", "否", None],
                                      ["王芳", "母亲", 13800138000, None, 1002, True, False, None]])
    result = run(session, students, guardians)

    assert (result.students_created, result.guardians_created, result.links, result.cards) == (2, 1, 2, 3)
    assert {s.student_no for s in session.exec(select(Student))} == {"1001", "1002"}
    assert {c.uid for c in session.exec(select(Card))} == {"12345678", "100000000000000000", "87654321"}
    assert session.exec(select(Guardian)).one().phone == "13800138000"


def test_guardians_alone_link_to_students_already_stored(session, tmp_path):
    students, guardians = pair(tmp_path)
    run(session, students, None)
    result = run(session, None, guardians)
    assert (result.students_created, result.guardians_created, result.links) == (0, 3, 4)
    assert session.exec(select(Student).where(Student.student_no == "1002")).one().may_leave_alone


# --- re-import ----------------------------------------------------------------------------


def test_reimport_updates_instead_of_duplicating(session, tmp_path):
    students, guardians = pair(tmp_path)
    run(session, students, guardians)

    changed_s = [["1001", "张晓明", "四年级", "1班", "04A1B2C9", "是"]] + STUDENTS[1:]
    changed_g = [["王芳", "妈妈", "13800138000", "", "1001", "否", "是", ""]] + GUARDIANS[1:]
    (tmp_path / "v2").mkdir()
    students, guardians = pair(tmp_path / "v2", changed_s, changed_g)
    result = run(session, students, guardians)

    assert result == ImportResult(students_created=0, students_updated=3, guardians_created=0,
                                  guardians_updated=3, links=4, cards=3)
    assert len(session.exec(select(Student)).all()) == 3
    assert len(session.exec(select(Guardian)).all()) == 3
    assert len(session.exec(select(GuardianLink)).all()) == 4
    s = session.exec(select(Student).where(Student.student_no == "1001")).one()
    klass = session.get(SchoolClass, s.class_id)
    assert (s.name, klass.grade, klass.name, s.poverty_registered) == ("张晓明", "四年级", "1班", True)
    # The new card replaced the old one; 王芳's card stays although her first row leaves it empty.
    assert {c.uid for c in session.exec(select(Card))} == {"04A1B2C9", "04A1B2C4", "0A0B0C0D"}
    wang = session.exec(select(Guardian).where(Guardian.name == "王芳")).one()
    link = session.exec(select(GuardianLink).where(GuardianLink.guardian_id == wang.id,
                                                   GuardianLink.student_id == s.id)).one()
    assert (link.relation, link.may_pick_up, link.barred) == ("妈妈", False, True)


def test_two_students_may_swap_cards(session, tmp_path):
    students, _ = pair(tmp_path)
    run(session, students, None)
    swapped = [["1001", "张小明", "三年级", "2班", "04A1B2C4", ""], ["1002", "张小红", "一年级", "1班", "04A1B2C3", ""]]
    run(session, write_csv(tmp_path / "swap.csv", S_ZH, swapped), None)
    owner = {c.uid: session.get(Student, c.student_id).student_no for c in session.exec(select(Card))}
    assert owner == {"04A1B2C4": "1001", "04A1B2C3": "1002"}


def test_card_already_held_by_someone_else_in_the_school(session, tmp_path):
    students, _ = pair(tmp_path)
    run(session, students, None)
    newcomer = write_csv(tmp_path / "new.csv", S_ZH, [["2001", "新同学", "一年级", "1班", "04a1b2c3", ""]])
    with pytest.raises(ImportRejected) as info:
        run(session, newcomer, None)
    [error] = info.value.errors
    assert (error.file, error.row, error.column) == ("new.csv", 2, "卡号")
    assert "04A1B2C3" in error.reason and "1001" in error.reason
    assert session.exec(select(Student).where(Student.student_no == "2001")).first() is None
    # Another school may use the same UID: cards are unique per school.
    assert run(session, newcomer, None, school="other").cards == 1


def test_failure_while_writing_leaves_nothing(session, tmp_path, monkeypatch):
    def disk_full():
        raise RuntimeError("disk full")

    monkeypatch.setattr(session, "commit", disk_full)
    with pytest.raises(RuntimeError):
        run(session, *pair(tmp_path))
    assert_nothing_written(session)


# --- refused files ------------------------------------------------------------------------


def test_one_bad_row_imports_nothing(session, tmp_path):
    bad = STUDENTS + [[""] * 6, ["1004", "", "二年级", "1班", "", ""]]  # a blank row is skipped, still counted
    [error] = rejected(session, *pair(tmp_path, students=bad))
    assert (error.file, error.row, error.column) == ("学生.csv", 6, "姓名")
    assert "empty" in error.reason


def test_every_bad_row_is_listed(session, tmp_path):
    students = STUDENTS + [
        ["1004", "甲", "", "1班", "XYZ", "也许"],  # row 5: no grade, card not hex, bad boolean
        ["1001", "乙", "一年级", "1班", "0102030", ""],  # row 6: repeated student_no, odd hex digits
    ]
    guardians = GUARDIANS + [["丙", "父亲", "12345", "", "", "是", "否", ""]]  # row 6: bad phone, no student_no
    errors = rejected(session, *pair(tmp_path, students=students, guardians=guardians))

    s5 = {e.column for e in by(errors, 5) if e.file == "学生.csv"}
    assert s5 == {"年级", "卡号", "建档立卡"}
    s6 = {e.column: e.reason for e in by(errors, 6) if e.file == "学生.csv"}
    assert set(s6) == {"学号", "卡号"} and "row 2" in s6["学号"]
    g6 = {e.column for e in by(errors, 6) if e.file == "家长.csv"}
    assert g6 == {"手机", "学生学号"}
    assert len(errors) == 7

    report = str(ImportRejected(errors))
    assert len(report.splitlines()) == 8
    assert "学生.csv row 5, column 建档立卡: '也许' is not yes/no" in report


def test_same_card_in_both_files_refused(session, tmp_path):
    guardians = GUARDIANS[:2] + [["李强", "父亲", "13900139000", "04-A1-B2-C3", "1003", "", "", ""]]
    [error] = rejected(session, *pair(tmp_path, guardians=guardians))
    assert (error.file, error.row, error.column) == ("家长.csv", 4, "卡号")
    assert "04A1B2C3" in error.reason and "学生.csv row 2" in error.reason


def test_one_guardian_given_two_cards_refused(session, tmp_path):
    guardians = [GUARDIANS[0], ["王芳", "母亲", "13800138000", "0A0B0C0E", "1002", "", "", ""]]
    [error] = rejected(session, *pair(tmp_path, guardians=guardians))
    assert (error.row, error.column) == (3, "卡号")


def test_barred_guardian_who_may_pick_up_refused(session, tmp_path):
    guardians = [["李强", "父亲", "", "", "1003", "是", "是", ""], ["李强", "父亲", "13900139001", "", "1001", "", "是", "是"]]
    errors = rejected(session, *pair(tmp_path, guardians=guardians))
    assert [(e.row, e.column) for e in errors] == [(2, "可接送"), (3, "自行离校")]
    assert "barred" in errors[0].reason


def test_unknown_student_no_refused(session, tmp_path):
    guardians = GUARDIANS + [["钱七", "父亲", "", "", "9999", "", "", ""]]
    [error] = rejected(session, *pair(tmp_path, guardians=guardians))
    assert (error.file, error.row, error.column) == ("家长.csv", 6, "学生学号")
    assert "9999" in error.reason


def test_repeated_guardian_student_pair_refused(session, tmp_path):
    guardians = GUARDIANS + [["王芳", "母亲", "13800138000", "", "1001", "否", "是", ""]]
    [error] = rejected(session, *pair(tmp_path, guardians=guardians))
    assert (error.row, error.column) == (6, "学生学号") and "row 2" in error.reason


def test_missing_column_refused(session, tmp_path):
    header = [h for h in S_ZH if h not in ("班级", "卡号")]
    students = write_csv(tmp_path / "s.csv", header, [r[:3] + r[5:] for r in STUDENTS])
    [error] = rejected(session, students, None)
    assert (error.file, error.row, error.column) == ("s.csv", 1, None)
    assert "班级/class" in error.reason and "卡号/card" in error.reason


def test_unknown_column_refused(session, tmp_path):
    students = write_csv(tmp_path / "s.csv", S_ZH + ["身份证号"], [r + ["x"] for r in STUDENTS])
    guardians = write_csv(tmp_path / "g.csv", [h.replace("手机", "手机号") for h in G_ZH], GUARDIANS)
    errors = rejected(session, students, guardians)
    assert [(e.file, e.row, e.column) for e in errors] == [("s.csv", 1, "身份证号"), ("g.csv", 1, "手机号"), ("g.csv", 1, None)]
    assert "手机/phone" in errors[2].reason


def test_unreadable_and_empty_files_refused(session, tmp_path):
    (tmp_path / "s.txt").write_text("学号\n")
    (tmp_path / "g.csv").write_bytes(b"")
    (tmp_path / "bad.xlsx").write_bytes(b"not a zip")
    errors = rejected(session, tmp_path / "s.txt", tmp_path / "g.csv")
    assert [(e.file, e.row) for e in errors] == [("s.txt", None), ("g.csv", None)]
    [error] = rejected(session, tmp_path / "bad.xlsx", None)
    assert error.file == "bad.xlsx" and "cannot read" in error.reason


# --- the small parsers --------------------------------------------------------------------


def test_value_under_no_header_refused(session, tmp_path):
    students = write_csv(tmp_path / "s.csv", S_ZH, STUDENTS[:2] + [STUDENTS[2] + ["", "走读"]])
    [error] = rejected(session, students, None)
    assert (error.row, error.column) == (4, "H") and "走读" in error.reason


def test_report_lists_rows_in_file_order(session, tmp_path):
    students = [["1001", "", "三年级", "2班", "", ""], ["1001", "乙", "三年级", "2班", "", ""]]
    guardians = [["钱七", "父亲", "", "", "9999", "", "", ""]]
    errors = rejected(session, *pair(tmp_path, students=students, guardians=guardians))
    assert [(e.file, e.row) for e in errors] == [("学生.csv", 2), ("学生.csv", 3), ("家长.csv", 2)]


# --- the school named by an import (issue 12) ---------------------------------------------


@pytest.mark.parametrize("code", ["示范 小学", "s 1", "a/b", "x" * 65, ""])
def test_a_school_id_kiosks_cannot_use_refuses_the_import_before_anything_is_written(session, tmp_path, code):
    from central.core.errors import Invalid

    students, guardians = pair(tmp_path)
    with pytest.raises((Invalid, ValueError)):
        run(session, students, guardians, school=code)
    assert_nothing_written(session)
    with Session(session.get_bind()) as other:  # nothing committed either
        assert other.exec(select(School)).all() == []


# --- legacy .xls and the optional 建档立卡 column (issue 18) ------------------------------

FIXTURES = Path(__file__).parent.parent / "fixtures" / "roster"  # made by tests/fixtures/make_xls.py


def test_legacy_xls_pair_with_numeric_and_boolean_cells(session):
    result = run(session, FIXTURES / "学生.xls", FIXTURES / "家长.xls")
    assert (result.students_created, result.guardians_created, result.links, result.cards) == (2, 1, 2, 3)
    students = {s.student_no: s for s in session.exec(select(Student))}
    assert set(students) == {"1001", "1002"}  # 1001.0 as Excel stores it, read as the number it is
    assert (students["1001"].poverty_registered, students["1002"].poverty_registered) == (False, True)  # 否; a TRUE cell
    assert {c.uid for c in session.exec(select(Card))} == {"12345678", "04A1B2C4", "87654321"}
    assert session.exec(select(Guardian)).one().phone == "13800138000"
    assert all(link.may_pick_up and not link.barred for link in session.exec(select(GuardianLink)))


def test_a_bad_xls_row_imports_nothing_and_says_why(session):
    errors = rejected(session, FIXTURES / "学生-错误.xls", None)
    assert [(e.file, e.row, e.column) for e in errors] == [("学生-错误.xls", 3, "姓名"), ("学生-错误.xls", 4, "建档立卡")]
    assert errors[0].reason == "is empty" and errors[1].reason == "'也许' is not yes/no (是/否)"


def test_without_the_poverty_column_new_students_are_not_registered_and_stored_ones_keep_theirs(session):
    run(session, FIXTURES / "学生.xls", None)  # 1001 否, 1002 是
    stored = session.exec(select(Student).where(Student.student_no == "1001")).one()
    stored.poverty_registered = True  # registered since, say by a later file
    session.add(stored)
    session.commit()
    result = run(session, FIXTURES / "学生-无建档立卡.xls", None)  # 1001 again, 1003 new; no 建档立卡 column
    assert (result.students_created, result.students_updated) == (1, 1)
    flags = {s.student_no: s.poverty_registered for s in session.exec(select(Student))}
    assert flags == {"1001": True, "1002": True, "1003": False}


def test_an_empty_poverty_cell_still_means_no(session, tmp_path):
    run(session, FIXTURES / "学生.xls", None)
    students = write_csv(tmp_path / "s.csv", S_ZH, [["1002", "张小红", "一年级", "1班", "", ""]])
    run(session, students, None)
    assert session.exec(select(Student).where(Student.student_no == "1002")).one().poverty_registered is False


def test_a_row_error_reads_in_either_language_and_stays_english_as_text(session):
    # The reasons are catalogue messages: str() and .reason keep the English the log and the tests read,
    # .text(locale) / .reason_in(locale) are what a page or the command line shows (the lists joined as each language does).
    errors = rejected(session, FIXTURES / "学生-错误.xls", None)
    assert str(errors[1]) == "学生-错误.xls row 4, column 建档立卡: '也许' is not yes/no (是/否)"
    assert errors[1].text("zh_CN") == "学生-错误.xls 第 4 行，建档立卡 列：'也许' 不是 是/否（yes/no）"
    assert errors[0].reason_in("zh_CN") == "为空" and errors[0].text("en") == "学生-错误.xls row 3, column 姓名: is empty"
