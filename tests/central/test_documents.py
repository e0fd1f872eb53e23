"""Statements and report tables as documents (central/billing/documents.py).

The PDFs are read back two ways: as text (pdfium and pypdf, through the font's ToUnicode map) and as
a picture (pdfium renders the page). Text alone would pass a PDF of empty boxes, since the text
layer does not need the glyphs; so the picture test finds where the child's name is drawn and
checks that ink is there, and that two different names give different ink (empty boxes, or
one fallback glyph, would look the same). Expected strings and amounts are written out by hand.
"""

from __future__ import annotations

import io
import re
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pypdf
import pypdfium2 as pdfium
import pytest
from sgtest import require_chinese_font
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen

from central.billing import documents
from central.billing.documents import (
    FontFile,
    Money,
    StatementDocument,
    StatementLine,
    find_font,
    statement_pdf,
    statements_pdf,
    statements_xlsx,
    table_pdf,
    table_xlsx,
    yuan,
)
from central.core.config import Settings
from central.core.errors import Unavailable, status_of
from central.core.i18n import Msg

@pytest.fixture(autouse=True)
def _chinese_font():
    require_chinese_font()


NOTO = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")

ZHANG = StatementDocument(
    school_name="希望小学",
    student_name="张小明",
    student_no="2026001",
    class_name="三年级（2）班",
    month=date(2026, 12, 1),
    reference="SG202612-000123",
    lines=(StatementLine("课后服务费（2026年12月）", 10_000), StatementLine("退费（12月28日退出）", -1_234)),
    issued_on=date(2026, 12, 1),
    due_on=date(2026, 12, 15),
    pay_to=("户名：希望小学课后服务专户", "账号：6228 4800 1234 5678"),
)
WANG = StatementDocument(  # P7.3: exempt, pays 0
    school_name="希望小学",
    student_name="王小红",
    student_no="2026002",
    month=date(2026, 12, 1),
    reference="SG202612-000124",
    lines=(StatementLine("课后服务费（2026年12月）", 0),),
    exempt=True,
    forgone_fen=10_000,
)


def pdfium_texts(pdf: bytes) -> list[str]:
    doc = pdfium.PdfDocument(pdf)
    try:
        return [doc[i].get_textpage().get_text_range() for i in range(len(doc))]
    finally:
        doc.close()


def pypdf_texts(pdf: bytes) -> list[str]:
    # pypdf 7 misreads a CID font whose codes go through an embedded CMap (fpdf2's CFF subset): it
    # spaces out the glyphs (widths looked up by code, not CID) or puts a NUL before each; poppler's
    # pdftotext, MuPDF and pdfium read the same file exactly. Compare without those; pdfium's text is exact.
    return [re.sub(r"[\s\x00]+", "", page.extract_text()) for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]


@pytest.fixture(scope="module")
def two_statements() -> bytes:
    return statements_pdf([ZHANG, WANG])


# --- amounts ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("fen", "shown"),
    [
        (0, "¥0.00"),
        (1, "¥0.01"),
        (10, "¥0.10"),
        (10_000, "¥100.00"),
        (123_456, "¥1,234.56"),
        (12_345_678_901, "¥123,456,789.01"),
        (-5, "-¥0.05"),
        (-1_234, "-¥12.34"),
    ],
)
def test_yuan_shows_fen_exactly(fen: int, shown: str) -> None:
    assert yuan(fen) == shown


# --- the statement PDF -----------------------------------------------------------------------------

def test_a_statement_reads_in_chinese(two_statements: bytes) -> None:
    zhang, wang = pdfium_texts(two_statements)
    for expected in (
        "希望小学", "课后服务费缴费通知单", "学生姓名", "张小明", "学号", "2026001", "三年级（2）班",
        "月份", "2026年12月", "开具日期", "2026年12月1日", "缴费截止日期", "2026年12月15日",
        "课后服务费（2026年12月）", "¥100.00", "退费（12月28日退出）", "-¥12.34", "合计", "¥87.66",
        "缴费参考号", "SG202612-000123", "户名：希望小学课后服务专户", "账号：6228 4800 1234 5678",
    ):
        assert expected in zhang, expected
    assert "附言（备注）中填写缴费参考号 SG202612-000123" in zhang.replace("\r\n", "").replace("\n", "")
    assert "免收" not in zhang and "王小红" not in zhang  # one child per page
    for expected in ("王小红", "2026002", "SG202612-000124", "本月免收课后服务费", "免收金额 ¥100.00", "¥0.00", "本月无需缴费"):
        assert expected in wang, expected
    assert "缴费方式" not in wang  # nothing to pay, no instructions
    assert "第 1 页" not in zhang  # each page goes to another family


def test_pypdf_reads_the_same_chinese(two_statements: bytes) -> None:
    zhang, wang = pypdf_texts(two_statements)
    for expected in ("希望小学", "张小明", "2026年12月", "¥87.66", "SG202612-000123", "缴费参考号"):
        assert expected in zhang, expected
    assert "免收金额¥100.00" in wang


def test_the_font_is_embedded_as_a_subset(two_statements: bytes) -> None:
    reader = pypdf.PdfReader(io.BytesIO(two_statements))
    assert len(reader.pages) == 2
    assert reader.pages[0].mediabox.width == pytest.approx(595.28, abs=0.1)  # A4
    assert reader.pages[0].mediabox.height == pytest.approx(841.89, abs=0.1)
    fonts = []
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descendant = font["/DescendantFonts"][0].get_object()
            descriptor = descendant["/FontDescriptor"].get_object()
            assert any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")), font["/BaseFont"]
            assert "/ToUnicode" in font  # text can be searched and copied
            fonts.append(str(font["/BaseFont"]))
    assert fonts and all(re.fullmatch(r"/[A-Z]{6}\+NotoSansCJKSC", name) for name in fonts), fonts
    # The whole face is 19 MB; a subset of the few dozen characters used is a few kB.
    assert len(two_statements) < 100_000


def _ink(image, box) -> int:
    """Pixels darker than mid-grey inside box (left, top, right, bottom) of a greyscale image."""
    return sum(1 for value in image.crop(box).get_flattened_data() if value < 128)


def test_the_name_is_drawn_in_chinese_glyphs(two_statements: bytes) -> None:
    doc = pdfium.PdfDocument(two_statements)
    try:
        crops = _name_crops(doc)
    finally:
        doc.close()
    # Different characters draw differently (a missing glyph is the same empty box whatever the character).
    differing = sum(1 for a, b in zip(crops[0].get_flattened_data(), crops[1].get_flattened_data()) if abs(a - b) > 64)
    assert differing > 200, differing


def _name_crops(doc) -> list:
    scale = 2.0
    crops = []
    for index, name in ((0, "张小明"), (1, "王小红")):
        page = doc[index]
        height = page.get_size()[1]
        found = page.get_textpage().search(name).get_next()
        assert found is not None, name
        start, count = found
        assert count == 3
        boxes = [page.get_textpage().get_charbox(start + i) for i in range(count)]
        left, right = min(b[0] for b in boxes), max(b[2] for b in boxes)
        bottom, top = min(b[1] for b in boxes), max(b[3] for b in boxes)
        box = (int(left * scale), int((height - top) * scale), int(right * scale) + 1, int((height - bottom) * scale) + 1)
        image = page.render(scale=scale).to_pil().convert("L")
        ink = _ink(image, box)
        area = (box[2] - box[0]) * (box[3] - box[1])
        # Glyphs, not nothing and not a filled block: three Chinese characters at 11 pt ink a part of their box.
        assert 0.08 * area < ink < 0.6 * area, (name, ink, area)
        # The same box lower down the page, where nothing is written, is blank paper.
        shift = int(450 * scale)
        assert _ink(image, (box[0], box[1] + shift, box[2], box[3] + shift)) == 0
        crops.append(image.crop(box).resize((96, 32)))
    return crops


def test_a_statement_in_english() -> None:
    (page,) = pdfium_texts(statement_pdf(ZHANG, locale="en"))
    for expected in (
        "After-school service fee statement", "Student", "张小明", "Student no.", "Month", "2026-12",
        "Pay by", "2026-12-15", "Item", "Amount", "Total", "¥87.66", "Payment reference", "SG202612-000123",
        "How to pay",
    ):
        assert expected in page, expected
    assert "缴费参考号" not in page


def test_a_character_the_font_lacks_is_refused_not_drawn_as_a_box() -> None:
    rare = StatementDocument(
        school_name="希望小学", student_name="张\U0010fffd", student_no="1", month=date(2026, 12, 1),
        reference="SG202612-000125", lines=(StatementLine("课后服务费", 10_000),),
    )
    with pytest.raises(Unavailable) as caught:
        statement_pdf(rare)
    assert caught.value.key == "doc.font_lacks"
    assert "U+10FFFD" in str(caught.value) and str(NOTO) in str(caught.value)
    assert status_of(caught.value) == 503
    assert "lacks these characters" in caught.value.text("en")


# --- finding the font ------------------------------------------------------------------------------

def latin_font(path: Path) -> Path:
    """A real TrueType font with only A: readable, not Chinese."""
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder([".notdef", "A"])
    builder.setupCharacterMap({ord("A"): "A"})
    pen = TTGlyphPen(None)
    pen.moveTo((0, 0)), pen.lineTo((500, 0)), pen.lineTo((250, 700)), pen.closePath()
    builder.setupGlyf({".notdef": TTGlyphPen(None).glyph(), "A": pen.glyph()})
    builder.setupHorizontalMetrics({".notdef": (500, 0), "A": (500, 0)})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": "OnlyA", "styleName": "Regular"})
    builder.setupOS2()
    builder.setupPost()
    builder.save(str(path))
    return path


@pytest.fixture
def fresh_font_search():
    find_font.cache_clear()
    yield
    find_font.cache_clear()


def test_the_noto_simplified_chinese_face_is_found_and_chosen_in_its_collection(fresh_font_search) -> None:
    assert find_font() == FontFile(NOTO, 2)  # fontconfig's answer (or the known path): face 2 is SC
    assert find_font(NOTO) == FontFile(NOTO, 2)  # a configured .ttc: its "… SC" face by name
    assert find_font(NOTO, 0) == FontFile(NOTO, 0)  # the face asked for
    assert documents.settings_font(Settings(document_font=NOTO, document_font_index=3)) == FontFile(NOTO, 3)


def test_a_configured_font_that_is_missing_unreadable_or_not_chinese_is_named(fresh_font_search, tmp_path: Path) -> None:
    with pytest.raises(Unavailable) as caught:
        find_font(tmp_path / "nope.ttf")
    assert caught.value.key == "doc.font_unreadable" and str(tmp_path / "nope.ttf") in str(caught.value)
    (tmp_path / "text.ttf").write_text("not a font")
    with pytest.raises(Unavailable) as caught:
        find_font(tmp_path / "text.ttf")
    assert caught.value.key == "doc.font_unreadable"
    with pytest.raises(Unavailable) as caught:
        find_font(latin_font(tmp_path / "a.ttf"))
    assert caught.value.key == "doc.font_not_chinese" and "a.ttf" in str(caught.value)
    with pytest.raises(Unavailable) as caught:
        find_font(NOTO, 10)  # the collection has 10 faces (Sans and Sans Mono, JP KR SC TC HK)
    assert caught.value.key == "doc.font_unreadable"


def test_no_chinese_font_anywhere_says_what_to_install(fresh_font_search, tmp_path: Path, monkeypatch) -> None:
    latin = latin_font(tmp_path / "a.ttf")
    # fontconfig answers every family with its best match, which may have no Chinese at all.
    monkeypatch.setattr(documents, "_fc_match", lambda family: FontFile(latin))
    monkeypatch.setattr(documents, "KNOWN_FONTS", (tmp_path / "gone.ttc", latin))
    with pytest.raises(Unavailable) as caught:
        find_font()
    assert caught.value.key == "doc.font_missing"
    assert "fonts-noto-cjk" in str(caught.value) and "SCHOOLGATE_DOCUMENT_FONT" in str(caught.value)
    assert str(tmp_path / "gone.ttc") in str(caught.value)
    assert "install fonts-noto-cjk" in caught.value.text("en")
    with pytest.raises(Unavailable):
        statements_pdf([ZHANG])  # never a PDF without a font for it


# --- XLSX ------------------------------------------------------------------------------------------

def test_the_statements_xlsx_holds_the_exact_amounts() -> None:
    big = StatementDocument(
        school_name="希望小学", student_name="李大", student_no="2026003", month=date(2026, 12, 1),
        reference="SG202612-000125", lines=(StatementLine("课后服务费", 12_345_678_901), StatementLine(Msg("doc.total"), 7)),
    )
    data = statements_xlsx([ZHANG, WANG, big])
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["账单", "明细"]
    rows = [[cell.value for cell in row] for row in book["账单"].iter_rows()]
    assert rows[0] == ["缴费参考号", "学号", "学生姓名", "班级", "月份", "应缴合计（元）", "免收（建档立卡）", "免收金额（元）", "开具日期", "缴费截止日期"]
    assert rows[1][:8] == ["SG202612-000123", "2026001", "张小明", "三年级（2）班", "2026-12", 87.66, "否", None]
    assert rows[1][8:] == [datetime(2026, 12, 1), datetime(2026, 12, 15)]
    assert rows[2][:8] == ["SG202612-000124", "2026002", "王小红", None, "2026-12", 0, "是", 100]
    assert Decimal(str(rows[3][5])) == Decimal("123456789.08")
    assert book["账单"]["F2"].number_format == "#,##0.00"
    lines = [[cell.value for cell in row] for row in book["明细"].iter_rows()]
    assert lines[0] == ["缴费参考号", "学号", "学生姓名", "项目", "金额（元）"]
    assert [(row[0], row[3], Decimal(str(row[4]))) for row in lines[1:]] == [
        ("SG202612-000123", "课后服务费（2026年12月）", Decimal("100")),
        ("SG202612-000123", "退费（12月28日退出）", Decimal("-12.34")),
        ("SG202612-000124", "课后服务费（2026年12月）", Decimal("0")),
        ("SG202612-000125", "课后服务费", Decimal("123456789.01")),
        ("SG202612-000125", "合计", Decimal("0.07")),  # a Msg label, in the workbook's language
    ]
    # A spreadsheet number is a double: each amount is the double nearest its exact yuan (openpyxl
    # writes 0.07 as 0.07000000000000001, the same double), so reading it gives the fen back exactly.
    values = [float(row[4]) for row in lines[1:]]
    assert [round(value * 100) for value in values] == [10_000, -1_234, 0, 12_345_678_901, 7]


def test_the_statements_xlsx_in_english() -> None:
    book = openpyxl.load_workbook(io.BytesIO(statements_xlsx([ZHANG], locale="en")))
    assert book.sheetnames == ["Statements", "Lines"]
    assert [cell.value for cell in book["Statements"][1]][:6] == ["Payment reference", "Student no.", "Student", "Class", "Month", "Total due (CNY)"]
    assert book["Statements"]["G2"].value == "no"


# --- generic tables --------------------------------------------------------------------------------

HEADER = ("学校", "服务天数", "学生数", "收费", "免收金额", "日期", "备注")
REPORT_ROWS = [
    (f"第{n}小学", 22, 1000 + n, Money(100_000 * n + 7), Money(0), date(2026, 12, n % 28 + 1), "补课日" if n == 3 else None)
    for n in range(1, 31)
]


def test_a_table_pdf_spans_pages_with_its_header_on_each() -> None:
    data = table_pdf("2026年度课后服务报告", HEADER, REPORT_ROWS, notes=("注：金额单位为元。", Msg("doc.statement.nothing_due")))
    pages = pdfium_texts(data)
    assert len(pages) >= 2
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert reader.pages[0].mediabox.width > reader.pages[0].mediabox.height  # 7 columns: landscape
    assert "2026年度课后服务报告" in pages[0]
    for number, page in enumerate(pages, start=1):
        assert "服务天数" in page and "免收金额" in page, number  # the header repeated
        assert f"第 {number} 页，共 {len(pages)} 页" in page
    everything = "".join(pages)
    for expected in ("第1小学", "¥1,000.07", "¥0.00", "1001", "2026年12月2日", "补课日", "第30小学", "¥30,000.07"):
        assert expected in everything, expected
    assert "注：金额单位为元。" in pages[-1] and "本月无需缴费。" in pages[-1]


def test_a_table_xlsx_keeps_types_and_exact_amounts() -> None:
    data = table_xlsx(Msg("doc.sheet.statements"), HEADER, REPORT_ROWS[:3], notes=("注：金额单位为元。",))
    sheet = openpyxl.load_workbook(io.BytesIO(data))["账单"]
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0][0] == "账单"
    assert rows[1] == list(HEADER)
    assert rows[2] == ["第1小学", 22, 1001, 1000.07, 0, datetime(2026, 12, 2), None]
    assert rows[4][6] == "补课日"
    assert Decimal(str(rows[4][3])) == Decimal("3000.07") and sheet["D5"].number_format == "#,##0.00"
    assert rows[5] == [None] * 7 and rows[6][0] == "注：金额单位为元。"


@pytest.mark.parametrize("render", [table_xlsx, table_pdf])
@pytest.mark.parametrize("bad", [1.5, True])
def test_a_float_is_no_amount(render, bad) -> None:
    with pytest.raises(TypeError, match="give text, an int or Money"):
        render("t", ("a",), [(bad,)])


@pytest.mark.parametrize("render", [table_xlsx, table_pdf])
def test_a_row_must_match_the_header(render) -> None:
    with pytest.raises(ValueError, match="row 2 has 1 cells, the header 2"):
        render("t", ("a", "b"), [("x", "y"), ("x",)])
