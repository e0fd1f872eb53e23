"""Setting a school up on pages, without curl (issue 14): /admin/import (upload, preview, every bad row
with its reason, confirm) and /admin/enrollments (bulk review, approval and the school's signature by
group, the notice's versions). Without a browser; tests/integration/test_pages_setup_browser.py has the
browser's part."""

from __future__ import annotations

import base64
import html
import re

from sqlmodel import col, select

from central.core.audit import AuditLog
from central.programme import enrollment
from central.programme.models import Enrollment, EnrollmentStep, NoticeSignature
from central.schools.models import Card, Guardian, School, Student

from .test_pages import csrf_of, log_in, pages  # noqa: F401  (pages: the fixture)

STUDENTS = "学号,姓名,年级,班级,卡号\nN1,新生甲,三年级,2班,04A1B2C3\nN2,新生乙,三年级,2班,\nA1,学生A1,三年级,1班,\n"
GUARDIANS = "姓名,关系,手机,卡号,学生学号,可接送,禁止接送\n孙母,母亲,13600001234,04D4E5F6,N1,是,否\n"


def _post(pages, csrf, **files):
    return pages.client.post("/admin/import", data={"csrf": csrf, "step": "preview", "card_format": "hex"},
                             files={name: (filename, body.encode("utf-8"), "text/csv") for name, (filename, body) in files.items()})


def test_an_import_is_previewed_then_confirmed(pages):
    log_in(pages.client, "admin1")
    csrf = csrf_of(pages.client.get("/admin/import").text)
    r = _post(pages, csrf, students=("学生.csv", STUDENTS), guardians=("家长.csv", GUARDIANS))
    assert r.status_code == 200, r.text
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', r.text))
    assert counts == {"students_created": "2", "students_updated": "1", "guardians_created": "1", "guardians_updated": "0",
                      "links": "1", "cards": "2", "applications": "0"}
    assert "新生甲" in r.text and "孙母" in r.text and "确认导入" in r.text
    with pages.session() as db:  # the preview wrote nothing
        assert db.exec(select(Student).where(Student.student_no == "N1")).first() is None
    # The preview page re-posts the very bytes it showed; confirming imports them.
    kept = dict(re.findall(r'name="(\w+_(?:name|data))" value="([^"]*)"', r.text))
    assert base64.b64decode(kept["students_data"]).decode() == STUDENTS and kept["guardians_name"] == "家长.csv"
    r = pages.client.post("/admin/import", data={"csrf": csrf, "step": "confirm", "card_format": "hex", **kept},
                          files={"students": ("", b"", "application/octet-stream")})
    assert r.status_code == 200 and 'id="import-done"' in r.text, r.text
    with pages.session() as db:
        school = db.get(School, pages.ids["s1"])
        new = db.exec(select(Student).where(Student.student_no == "N1")).one()
        assert (new.name, new.school_id) == ("新生甲", pages.ids["s1"])
        assert db.exec(select(Card).where(Card.uid == "04A1B2C3")).one().student_id == new.id
        assert db.exec(select(Guardian).where(Guardian.name == "孙母")).one().phone == "13600001234"
        assert school.roster_version >= 1  # the gates' roster moved with it
        audit = db.exec(select(AuditLog).where(AuditLog.entity == f"student:{new.id}")).one()
        assert (audit.action, audit.actor) == ("student.create", "user:admin1")


def test_a_bad_rows_reason_is_in_the_pages_language(pages):
    # The reasons come from the catalogue, the card's and the phone's (raised by their parsers) too.
    log_in(pages.client, "admin1")
    students = "学号,姓名,年级,班级,卡号\nN1,新生甲,三年级,2班,XYZ\n"
    guardians = "姓名,关系,手机,卡号,学生学号,可接送,禁止接送\n孙母,母亲,12345,,N1,是,否\n"

    def reasons() -> list[str]:
        csrf = csrf_of(pages.client.get("/admin/import").text)
        r = _post(pages, csrf, students=("学生.csv", students), guardians=("家长.csv", guardians))
        assert r.status_code == 422, r.text
        return [html.unescape(reason) for reason in re.findall(r'<tr data-row="\d*">(?:<td>[^<]*</td>){3}<td>([^<]*)</td>', r.text)]

    assert reasons() == ["'XYZ' 不是十六进制卡号", "'12345' 不是中国大陆手机号（以 13-19 开头的 11 位数字）"]
    pages.client.get("/admin/import?lang=en")
    assert reasons() == ["'XYZ' is not a hexadecimal card number",
                         "'12345' is not a Chinese mobile number (11 digits starting 13-19)"]


def test_bad_rows_are_each_named_and_nothing_is_imported(pages):
    log_in(pages.client, "admin1")
    csrf = csrf_of(pages.client.get("/admin/import").text)
    bad = "学号,姓名,年级,班级,卡号\nN1,,三年级,2班,\nN2,新生乙,三年级,2班,04A1B2C3\nN3,新生丙,三年级,2班,04A1B2C3\n"
    r = _post(pages, csrf, students=("学生.csv", bad))
    assert r.status_code == 422
    rows = re.findall(r'<tr data-row="(\d*)"><td>([^<]*)</td><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td>', r.text)
    assert [(row, file, column) for row, file, column, _reason in rows] == [("2", "学生.csv", "姓名"), ("4", "学生.csv", "卡号")]
    assert rows[1][3] == "卡 04A1B2C3 也出现在 学生.csv 第 3 行"  # the card is given twice: the reason names the other row
    assert "确认导入" not in r.text
    with pages.session() as db:
        assert db.exec(select(Student).where(col(Student.student_no).in_(["N1", "N2", "N3"]))).all() == []
    # Not a roster file at all, and no file: the page says what is wrong.
    r = _post(pages, csrf, students=("名单.pdf", "%PDF"))
    assert r.status_code == 422 and "名单.pdf 不是 CSV、XLSX 或 XLS 文件" in r.text
    r = pages.client.post("/admin/import", data={"csrf": csrf, "step": "preview"}, files={"students": ("", b"", "text/csv")})
    assert r.status_code == 422 and "请选择学生名单或家长名单文件" in r.text


def test_only_the_school_admin_imports_and_the_form_needs_its_token(pages):
    log_in(pages.client, "teacherA")
    assert pages.client.get("/admin/import").status_code == 403
    csrf = csrf_of(pages.client.get("/teacher").text)
    assert _post(pages, csrf, students=("s.csv", STUDENTS)).status_code == 403
    log_in(pages.client, "admin1")
    assert _post(pages, "forged", students=("s.csv", STUDENTS)).status_code == 403
    assert pages.client.get("/admin/import?school=s2").status_code == 404
    with pages.session() as db:
        assert db.exec(select(Student).where(Student.student_no == "N1")).first() is None


def _applications(pages, *students: str) -> list[int]:
    with pages.session() as db:
        school = db.get(School, pages.ids["s1"])
        ids = []
        for no in students:
            row = enrollment.record_application(db, school=school, student_id=pages.ids[no], group_id=pages.ids["groupA"],
                                                application=f"{no} 申请参加", actor="test")
            ids.append(row.id)
        return ids


def test_the_queue_is_reviewed_approved_and_signed_in_bulk_by_group(pages):
    with pages.session() as db:
        for e in db.exec(select(Enrollment).where(Enrollment.student_id == pages.ids["C1"])):
            db.delete(e)
        db.commit()
    (first,) = _applications(pages, "C1")
    log_in(pages.client, "admin1")
    html = pages.client.get("/admin/enrollments").text
    assert re.findall(r'data-enrollment="(\d+)" data-student="([^"]+)"', html) == [(str(first), "C1")]
    csrf = csrf_of(html)
    # The whole group's applications reviewed at once, then approved.
    r = pages.client.post("/admin/enrollments", data={"csrf": csrf, "action": "review", "id": [str(first)], "note": "班主任同意"})
    assert r.status_code == 200 and 'data-done="1" data-refused="0"' in r.text
    r = pages.client.post("/admin/enrollments", data={"csrf": csrf, "action": "approve", "id": [str(first)]})
    assert r.status_code == 200 and 'data-done="1"' in r.text
    # No notice yet: the school's signature is refused with the reason; a notice is published.
    r = pages.client.post("/admin/enrollments", data={"csrf": csrf, "action": "sign", "id": [str(first)]})
    assert r.status_code == 409 and "尚未发布告知书" in r.text
    r = pages.client.post("/admin/enrollments/notice", data={"csrf": csrf, "text": "告知书正文 v1"}, follow_redirects=False)
    assert r.status_code == 303
    r = pages.client.post("/admin/enrollments", data={"csrf": csrf, "action": "sign", "id": [str(first)], "signer": "示范小学"})
    assert r.status_code == 200 and 'data-done="1"' in r.text and "当前版本：第 1 版" in r.text
    with pages.session() as db:
        steps = [(s.to_state, s.actor) for s in db.exec(select(EnrollmentStep).where(EnrollmentStep.enrollment_id == first)
                                                         .order_by(col(EnrollmentStep.id)))]
        assert steps == [("applied", "test"), ("class_reviewed", "user:admin1"), ("approved", "user:admin1")]
        sig = db.exec(select(NoticeSignature).where(NoticeSignature.enrollment_id == first)).one()
        assert (sig.party, sig.signer, sig.recorded_by) == ("school", "示范小学", "user:admin1")
    # A step the enrollment is past is refused for that one, named with its reason; the others go on.
    (second,) = _applications(pages, "B1")
    r = pages.client.post("/admin/enrollments", data={"csrf": csrf, "action": "review", "id": [str(first), str(second)]})
    assert r.status_code == 409 and 'data-done="1" data-refused="1"' in r.text and f'data-refused="{first}"' in r.text


def test_the_enrollments_page_is_the_school_admins(pages):
    for user, status in (("teacherA", 403), ("guard1", 403), ("parentA", 403)):
        log_in(pages.client, user)
        assert pages.client.get("/admin/enrollments").status_code == status
    log_in(pages.client, "admin1")
    assert pages.client.get("/admin/enrollments?school=s2").status_code == 404
    assert pages.client.post("/admin/enrollments", data={"csrf": "forged", "action": "review", "id": ["1"]}).status_code == 403
