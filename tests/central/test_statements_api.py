"""Statements over HTTP (central/api/routes/statements.py): finance bills a month and reads it with the
school admin, as JSON, as XLSX with Chinese headers, and what is still owed. Who else may not is
written in tests/central/test_role_matrix.py."""

from __future__ import annotations

from datetime import UTC, date, datetime
from io import BytesIO

import pypdfium2 as pdfium
import pytest
from openpyxl import load_workbook
from sgtest import require_chinese_font

from central.billing.models import FeePlan
from central.programme.models import CareSession, Term
from central.schools.models import Student


def _september(world) -> None:
    """A term with a monthly plan of 80 CNY; groupA (A1) meets on 2 and 3 September, groupB (B1) on the
    2nd; B1's family is registered poor (P7.3)."""
    ids = world.ids
    with world.session() as session:
        term = Term(school_id=ids["s1"], name="2030 秋", starts_on=date(2030, 9, 1), ends_on=date(2031, 1, 15), created_by="t")
        session.add(term)
        session.flush()
        session.add(FeePlan(school_id=ids["s1"], term_id=term.id, kind="monthly", amount_fen=8_000, set_by="t"))
        for group, day in (("groupA", 2), ("groupA", 3), ("groupB", 2)):
            starts = datetime(2030, 9, day, 8, 0, tzinfo=UTC)
            session.add(CareSession(school_id=ids["s1"], group_id=ids[group], day=date(2030, 9, day), starts_at=starts,
                                    ends_at=starts.replace(hour=9, minute=20), place="101", created_by="t"))
        b1 = session.get(Student, ids["B1"])
        b1.poverty_registered = True
        session.add(b1)
        session.commit()


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_finance_bills_a_month_and_the_admin_reads_it_and_what_is_owed(world):
    _september(world)
    made = world.client.post("/api/v1/schools/s1/statements?month=2030-09", headers=world.as_("finance1"))
    assert made.status_code == 200, made.text
    assert (made.json()["created"], made.json()["charge_fen"], made.json()["forgone_fen"]) == (2, 8_000, 8_000)
    again = world.client.post("/api/v1/schools/s1/statements?month=2030-09&issue=true", headers=world.as_("finance1"))
    assert (again.json()["created"], again.json()["unchanged"], again.json()["issued"]) == (0, 2, 2)
    listed = world.client.get("/api/v1/schools/s1/statements?month=2030-09", headers=world.as_("admin1")).json()
    assert [(s["student"], s["service_days"], s["exempt"], s["charge_fen"], s["state"], s["balance_fen"]) for s in listed] == [
        ("A1", 2, False, 8_000, "issued", 8_000), ("B1", 1, True, 0, "issued", 0)]
    owed = world.client.get("/api/v1/schools/s1/statements/outstanding?month=2030-09", headers=world.as_("finance1")).json()
    assert [(s["student"], s["balance_fen"]) for s in owed] == [("A1", 8_000)]
    assert world.client.get("/api/v1/schools/s1/statements?month=2030-10", headers=world.as_("finance1")).json() == []


def test_the_xlsx_has_one_row_per_child_under_chinese_headers(world):
    _september(world)
    world.client.post("/api/v1/schools/s1/statements?month=2030-09", headers=world.as_("finance1"))
    got = world.client.get("/api/v1/schools/s1/statements.xlsx?month=2030-09", headers=world.as_("finance1"))
    assert got.status_code == 200
    assert got.headers["content-disposition"] == 'attachment; filename="statements-s1-2030-09.xlsx"'
    sheet = load_workbook(BytesIO(got.content)).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0] == ["缴费编号", "学号", "姓名", "收费方式", "服务日数", "出勤天数", "建档立卡免费", "应收（元）",
                       "减免金额（元）", "财政补助（元）", "退出日期", "应退（元）", "已缴（元）", "欠缴（元）", "状态"]
    assert [row[1:] for row in rows[1:]] == [
        ["A1", "学生A1", "按月", 2, 0, "否", 80, 0, 0, None, 0, 0, 80, "草稿"],
        ["B1", "学生B1", "按月", 1, 0, "是", 0, 80, 0, None, 0, 0, 0, "草稿"],
    ]
    assert rows[1][0].startswith("SG203009-") and sheet.cell(2, 8).number_format == "0.00"


def test_the_families_pdf_holds_each_issued_statement_in_chinese(world):
    require_chinese_font()
    _september(world)
    world.client.post("/api/v1/schools/s1/statements?month=2030-09&issue=true", headers=world.as_("finance1"))
    got = world.client.get("/api/v1/schools/s1/statements.pdf?month=2030-09", headers=world.as_("admin1"))
    assert (got.status_code, got.headers["content-type"]) == (200, "application/pdf")
    pdf = pdfium.PdfDocument(got.content)
    pages = ["".join(pdf[i].get_textpage().get_text_range().split()) for i in range(len(pdf))]
    assert len(pages) == 2  # A1 and B1, one page each
    assert "学生A1" in pages[0] and "课后服务费（2030-09）" in pages[0] and "¥80.00" in pages[0]
    assert "学生B1" in pages[1] and "¥0.00" in pages[1]


def test_a_month_that_is_no_month_is_refused(world):
    for month in ("2030-13", "2030-9", "1999-12"):
        r = world.client.get(f"/api/v1/schools/s1/statements?month={month}&lang=en", headers=world.as_("finance1"))
        assert r.status_code == 422, month
