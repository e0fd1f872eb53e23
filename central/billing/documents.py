"""Documents for people: a child's monthly statement (PDF, in Chinese by default) and finance's lists
(XLSX, and PDF for reports), rendered from plain dataclasses — no database here; the billing
service and the reports fill them in.

- Money arrives as integer fen and is shown as yuan with two decimals, formatted from the integer
  (``divmod``), never through a float. An XLSX amount is a number of yuan in a ``#,##0.00`` format:
  spreadsheets hold numbers as doubles, and the double nearest the exact yuan gives the fen back
  exactly (``round(value * 100)``) for any amount a school has.
- Every label comes from the message catalogue (keys ``doc.*``), zh_CN unless the caller asks for en.
- A PDF embeds the subset of a Chinese font it uses, so it reads the same on any phone or printer.
  The font is Debian's ``fonts-noto-cjk`` (Noto Sans CJK SC, found by fontconfig or at its known
  path) or the file ``SCHOOLGATE_DOCUMENT_FONT`` names. fpdf2 embeds its CFF outlines as a
  ``CIDFontType0C`` subset (checked to render in pdfium, poppler and MuPDF). With no Chinese font, or a
  character the font lacks (a rare name), rendering fails with ``Unavailable`` naming what is
  missing: a PDF of empty boxes is never written.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path

from fontTools.ttLib import TTCollection, TTFont, TTLibError
from fpdf import FPDF
from fpdf.enums import Align, TableBordersLayout, XPos, YPos
from fpdf.fonts import FontFace
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from central.core.config import Settings
from central.core.errors import Unavailable
from central.core.i18n import DEFAULT_LOCALE, Items, Msg, t

Text = str | Msg
"""A label: plain text (a name, a school's own words) or a catalogue message rendered in the document's language."""


@dataclass(frozen=True)
class StatementLine:
    """One line of a statement: what is charged (or credited, negative) and its amount in fen."""

    label: Text
    amount_fen: int


@dataclass(frozen=True)
class StatementDocument:
    """A child's statement for one month, as the family reads it.

    ``month`` is any day of the month billed (shown as 2026年12月). ``reference`` is what the family
    writes in the transfer's memo (``SG202612-000123``). ``exempt`` (P7.3, a registered poor family)
    adds the exemption note with ``forgone_fen``, what the plan would have charged. ``pay_to`` are the
    school's own payment details (account name, bank, account number, a WeChat/Alipay payee), one
    line each, shown under the general instruction of how to pay.
    """

    school_name: str
    student_name: str
    student_no: str
    month: date
    reference: str
    lines: tuple[StatementLine, ...]
    class_name: str = ""
    exempt: bool = False
    forgone_fen: int = 0
    issued_on: date | None = None
    due_on: date | None = None
    pay_to: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_fen(self) -> int:
        """What the family owes for the month: the sum of the lines (never given separately, so it cannot disagree)."""
        return sum(line.amount_fen for line in self.lines)


@dataclass(frozen=True)
class Money:
    """A cell of a table that is an amount: fen in, shown as ¥ yuan (PDF) or a 0.00 yuan number (XLSX)."""

    fen: int


Cell = str | int | Decimal | date | Money | Msg | None
"""What a generic table's cell may hold; ``None`` is an empty cell. A float is refused: amounts are ``Money``."""


# ---------------------------------------------------------------------------------------------------
# Amounts and dates as text


def yuan(fen: int) -> str:
    """``123456`` → ``¥1,234.56``; ``-5`` → ``-¥0.05``. Exact: integer arithmetic only."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def yuan_number(fen: int) -> Decimal:
    """The exact number of yuan for a spreadsheet cell: ``1005`` → ``Decimal('10.05')`` (stored as the nearest double)."""
    return Decimal(fen).scaleb(-2)


def month_text(day: date, locale: str = DEFAULT_LOCALE) -> str:
    return t("doc.month", locale, year=day.year, month=day.month)


def date_text(day: date, locale: str = DEFAULT_LOCALE) -> str:
    return t("doc.date", locale, year=day.year, month=day.month, day=day.day)


def _text(value: Text, locale: str) -> str:
    return t(value.key, locale, **value.params) if isinstance(value, Msg) else value


def _cell_text(value: Cell, locale: str) -> str:
    if value is None:
        return ""
    if isinstance(value, Money):
        return yuan(value.fen)
    if isinstance(value, Msg):
        return _text(value, locale)
    if isinstance(value, date):
        return date_text(value, locale)
    if isinstance(value, bool | float):
        raise TypeError(f"a table cell may not be a {type(value).__name__} ({value!r}): give text, an int or Money")
    return str(value)


# ---------------------------------------------------------------------------------------------------
# The font


@dataclass(frozen=True)
class FontFile:
    """A font face to embed: a file, and the face's number inside a collection (``.ttc``)."""

    path: Path
    index: int = 0


# Families asked of fontconfig, best first: Noto Sans CJK SC is what the project installs
# (fonts-noto-cjk); the others are Chinese fonts a machine may have instead.
_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "AR PL UMing CN")
# Where Debian's packages put them, for a machine without fontconfig's fc-match.
KNOWN_FONTS = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),
)
# A face that lacks any of these is not a Chinese font for our documents.
_PROBE = "学校课后服务费缴通知单姓名号月合计元"


def _fc_match(family: str) -> FontFile | None:
    if shutil.which("fc-match") is None:
        return None
    try:
        out = subprocess.run(
            ["fc-match", "-f", "%{file}\n%{index}", f"{family}:lang=zh-cn"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    path, _, index = out.partition("\n")
    if not path:
        return None
    return FontFile(Path(path), int(index) if index.strip().isdigit() else 0)


def _simplified_face(path: Path) -> int:
    """The face of a collection meant for Simplified Chinese (``… SC``, ``… CN``, ``… GB``), else the first."""
    if path.suffix.lower() not in (".ttc", ".otc"):
        return 0
    with path.open("rb") as file, TTCollection(file, lazy=True) as collection:
        for number, face in enumerate(collection.fonts):
            family = face["name"].getBestFamilyName() or ""
            if family.endswith((" SC", " CN", " GB")):
                return number
    return 0


# What fontTools raises on a file that is not a font, a truncated one, or a face number past the last.
_FONT_ERRORS = (OSError, TTLibError, AssertionError, IndexError, KeyError, ValueError)


@cache
def _cmap(font: FontFile) -> frozenset[int]:
    """The characters a face has glyphs for."""
    # The file opened here, so it is closed even when fontTools refuses it half-way.
    with font.path.open("rb") as file, TTFont(file, fontNumber=font.index, lazy=True) as face:
        return frozenset((face.getBestCmap() or {}).keys())


def _readable(font: FontFile) -> bool:
    try:
        _cmap(font)
    except _FONT_ERRORS:
        return False
    return True


def _covers(font: FontFile, text: str) -> bool:
    cmap = _cmap(font)
    return all(ord(char) in cmap for char in text)


@cache
def find_font(path: Path | None = None, index: int | None = None) -> FontFile:
    """The Chinese font documents embed.

    Args:
        path: a font file to use (``SCHOOLGATE_DOCUMENT_FONT``); otherwise fontconfig's match for Noto
            Sans CJK SC (and a few other Chinese families), then Debian's known paths.
        index: the face inside a collection (``.ttc``); ``None`` takes the Simplified Chinese one.

    Raises:
        Unavailable: the given file cannot be read or has no Chinese (``doc.font_unreadable``,
            ``doc.font_not_chinese``), or no Chinese font was found at all (``doc.font_missing``).
    """
    if path is not None:
        try:
            font = FontFile(path, _simplified_face(path) if index is None else index)
            _cmap(font)
        except _FONT_ERRORS as exc:
            raise Unavailable("doc.font_unreadable", path=str(path)) from exc
        if not _covers(font, _PROBE):
            raise Unavailable("doc.font_not_chinese", path=str(path))
        return font
    candidates = [found for family in _FAMILIES if (found := _fc_match(family))]
    for font in candidates:
        if _readable(font) and _covers(font, _PROBE):
            return font
    for known in KNOWN_FONTS:
        try:
            font = FontFile(known, _simplified_face(known))
        except _FONT_ERRORS:
            continue
        if _readable(font) and _covers(font, _PROBE):
            return font
    raise Unavailable("doc.font_missing", paths=Items(tuple(str(known) for known in KNOWN_FONTS)))


def settings_font(settings: Settings) -> FontFile:
    """The font the settings name (``SCHOOLGATE_DOCUMENT_FONT``, ``…_INDEX``), or the one found; see ``find_font``."""
    return find_font(settings.document_font, settings.document_font_index)


# ---------------------------------------------------------------------------------------------------
# PDF

_FAMILY = "cjk"
_GREY = 90
_HEAD_FILL = 230


class _Pdf(FPDF):
    """An A4 page with the embedded Chinese font; remembers every character drawn, to check the font has it."""

    def __init__(self, font: FontFile, locale: str, *, landscape: bool = False, numbered: bool = True) -> None:
        super().__init__(orientation="L" if landscape else "P", unit="mm", format="A4")
        self.locale = locale
        self.numbered = numbered
        self.drawn: set[str] = set()
        self.set_margins(18, 16, 18)
        self.set_auto_page_break(True, margin=18)
        self.add_font(_FAMILY, "", str(font.path), collection_font_number=font.index)
        self.font_file = font
        self.set_font(_FAMILY, size=10.5)

    def normalize_text(self, text: str) -> str:
        self.drawn.update(text)
        return super().normalize_text(text)

    def footer(self) -> None:
        if not self.numbered:
            return
        self.set_y(-12)
        self.set_font(_FAMILY, size=8)
        self.set_text_color(_GREY)
        self.cell(0, 5, t("doc.page", self.locale, page=self.page_no(), pages="{nb}"), align=Align.C)
        self.set_text_color(0)

    def bytes(self) -> bytes:
        missing = sorted({char for char in self.drawn if not char.isspace()} - {chr(code) for code in _cmap(self.font_file)})
        if missing:
            raise Unavailable(
                "doc.font_lacks", path=str(self.font_file.path),
                chars=" ".join(f"{char} (U+{ord(char):04X})" for char in missing),
            )
        return bytes(self.output())

    def __enter__(self) -> _Pdf:
        return self

    def __exit__(self, *exc: object) -> None:
        for font in self.fonts.values():
            if hasattr(font, "ttfont"):
                font.ttfont.close()  # fpdf2 reads the face lazily and leaves its file open


def _font(font: FontFile | None) -> FontFile:
    return font if font is not None else find_font()


def _statement_page(pdf: _Pdf, doc: StatementDocument) -> None:
    loc = pdf.locale
    pdf.add_page()
    width = pdf.epw
    pdf.set_font(_FAMILY, size=18)
    pdf.multi_cell(width, 9, doc.school_name, align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FAMILY, size=14)
    pdf.cell(width, 9, t("doc.statement.title", loc), align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)

    pdf.set_font(_FAMILY, size=11)
    facts: list[tuple[str, str]] = [
        (t("doc.student_name", loc), doc.student_name),
        (t("doc.student_no", loc), doc.student_no),
    ]
    if doc.class_name:
        facts.append((t("doc.class_name", loc), doc.class_name))
    facts.append((t("doc.month_label", loc), month_text(doc.month, loc)))
    if doc.issued_on:
        facts.append((t("doc.issued_on", loc), date_text(doc.issued_on, loc)))
    if doc.due_on:
        facts.append((t("doc.due_on", loc), date_text(doc.due_on, loc)))
    with pdf.table(
        col_widths=(30, 70), width=width * 0.7, align=Align.L, first_row_as_headings=False,
        borders_layout=TableBordersLayout.NONE, line_height=7, text_align=(Align.L, Align.L),
    ) as table:
        for label, value in facts:
            row = table.row()
            row.cell(label)
            row.cell(value)
    pdf.ln(4)

    head = FontFace(emphasis="", fill_color=_HEAD_FILL)
    with pdf.table(
        col_widths=(70, 30), line_height=8, headings_style=head, text_align=(Align.L, Align.R),
        padding=(0, 2),
    ) as table:
        row = table.row()
        row.cell(t("doc.item", loc))
        row.cell(t("doc.amount", loc), align=Align.R)
        for line in doc.lines:
            row = table.row()
            row.cell(_text(line.label, loc))
            row.cell(yuan(line.amount_fen))
        row = table.row(style=FontFace(fill_color=245))
        row.cell(t("doc.total", loc))
        row.cell(yuan(doc.total_fen))
    pdf.ln(3)

    pdf.set_font(_FAMILY, size=10.5)
    if doc.exempt:
        pdf.multi_cell(width, 6, t("doc.statement.exempt", loc, forgone=yuan(doc.forgone_fen)),
                       align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)

    pdf.set_font(_FAMILY, size=12)
    pdf.cell(width, 10, f"{t('doc.reference', loc)}  {doc.reference}", border=1, align=Align.C,
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    pdf.set_font(_FAMILY, size=10.5)
    if doc.total_fen > 0:
        pdf.multi_cell(width, 6, t("doc.statement.how_to_pay", loc, reference=doc.reference),
                       align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        for detail in doc.pay_to:
            pdf.multi_cell(width, 6, detail, align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    else:
        pdf.multi_cell(width, 6, t("doc.statement.nothing_due", loc), align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    pdf.set_font(_FAMILY, size=9)
    pdf.set_text_color(_GREY)
    pdf.multi_cell(width, 5, t("doc.statement.footer", loc), align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)


def statements_pdf(docs: Iterable[StatementDocument], *, locale: str = DEFAULT_LOCALE, font: FontFile | None = None) -> bytes:
    """Many statements in one A4 PDF, each starting on its own page (one page unless it has many lines).

    Raises:
        Unavailable: no Chinese font, or a character the font lacks (see ``find_font``).
    """
    # Each page goes to another family: no "page 3 of 40" on it.
    with _Pdf(_font(font), locale, numbered=False) as pdf:
        pdf.set_title(t("doc.statement.title", locale))
        for doc in docs:
            _statement_page(pdf, doc)
        if pdf.page_no() == 0:
            pdf.add_page()
        return pdf.bytes()


def statement_pdf(doc: StatementDocument, *, locale: str = DEFAULT_LOCALE, font: FontFile | None = None) -> bytes:
    """One child's statement for a month as an A4 PDF, in Chinese unless ``locale`` says en."""
    return statements_pdf([doc], locale=locale, font=font)


def table_pdf(
    title: Text,
    header: Sequence[Text],
    rows: Iterable[Sequence[Cell]],
    *,
    notes: Sequence[Text] = (),
    locale: str = DEFAULT_LOCALE,
    font: FontFile | None = None,
    landscape: bool | None = None,
) -> bytes:
    """A titled table on A4 (landscape past 6 columns unless told), the header repeated on every page,
    amounts (``Money``) and numbers right-aligned, then the notes.

    Raises:
        Unavailable: no Chinese font, or a character the font lacks.
        ValueError: a row whose length differs from the header's.
    """
    names = [_text(name, locale) for name in header]
    body = [list(row) for row in rows]
    for number, row in enumerate(body, start=1):
        if len(row) != len(names):
            raise ValueError(f"row {number} has {len(row)} cells, the header {len(names)}")
    texts = [[_cell_text(value, locale) for value in row] for row in body]
    # A column of numbers and amounts (empty cells aside) is right-aligned.
    numeric = [
        any(row[i] is not None for row in body) and all(isinstance(row[i], int | Decimal | Money) or row[i] is None for row in body)
        for i in range(len(names))
    ]
    title_text = _text(title, locale)
    wide = len(names) > 6 if landscape is None else landscape
    with _Pdf(_font(font), locale, landscape=wide) as pdf:
        pdf.set_title(title_text)
        pdf.add_page()
        pdf.set_font(_FAMILY, size=15)
        pdf.multi_cell(pdf.epw, 8, title_text, align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(3)
        pdf.set_font(_FAMILY, size=9 if len(names) > 8 else 10)
        with pdf.table(
            line_height=6.5, headings_style=FontFace(emphasis="", fill_color=_HEAD_FILL),
            text_align=tuple(Align.R if number else Align.L for number in numeric), padding=(0.8, 1.5),
            repeat_headings=1,
        ) as table:
            heading = table.row()
            for name in names:
                heading.cell(name, align=Align.C)
            for row in texts:
                cells = table.row()
                for text in row:
                    cells.cell(text)
        if notes:
            pdf.ln(4)
            pdf.set_font(_FAMILY, size=9.5)
            for note in notes:
                pdf.multi_cell(pdf.epw, 5.5, _text(note, locale), align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        return pdf.bytes()


# ---------------------------------------------------------------------------------------------------
# XLSX

_MONEY_FORMAT = "#,##0.00"
_BAD_SHEET_CHARS = str.maketrans({char: " " for char in "[]:*?/\\"})


def _sheet_title(text: str) -> str:
    return text.translate(_BAD_SHEET_CHARS).strip()[:31] or "Sheet"


def _xlsx_value(value: Cell, locale: str) -> tuple[object, str | None]:
    """A cell's value and number format: amounts as exact yuan numbers, dates as dates."""
    if isinstance(value, Money):
        return yuan_number(value.fen), _MONEY_FORMAT
    if isinstance(value, date):
        return value, "yyyy-mm-dd"
    if isinstance(value, Msg):
        return _text(value, locale), None
    if isinstance(value, bool | float):
        raise TypeError(f"a table cell may not be a {type(value).__name__} ({value!r}): give text, an int or Money")
    return value, None


def _write_table(sheet, header: Sequence[str], rows: Iterable[Sequence[Cell]], *, first_row: int, locale: str) -> int:
    """The header at ``first_row`` and the rows under it; returns the last row written."""
    widths = [max(8, 2 * len(name) + 2) for name in header]
    for column, name in enumerate(header, start=1):
        cell = sheet.cell(first_row, column, name)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center")
    last = first_row
    for last, row in enumerate(rows, start=first_row + 1):
        if len(row) != len(header):
            raise ValueError(f"row {last - first_row} has {len(row)} cells, the header {len(header)}")
        for column, value in enumerate(row, start=1):
            written, number_format = _xlsx_value(value, locale)
            cell = sheet.cell(last, column, written)
            if number_format:
                cell.number_format = number_format
            if isinstance(written, str):
                # CJK characters are about two columns wide.
                widths[column - 1] = min(60, max(widths[column - 1], sum(2 if ord(c) > 0x2E80 else 1 for c in written) + 2))
    for column, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = width
    sheet.freeze_panes = sheet.cell(first_row + 1, 1)
    return last


def _workbook_bytes(book: Workbook) -> bytes:
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def table_xlsx(
    title: Text,
    header: Sequence[Text],
    rows: Iterable[Sequence[Cell]],
    *,
    notes: Sequence[Text] = (),
    locale: str = DEFAULT_LOCALE,
) -> bytes:
    """One sheet named after the title: the title in A1, the header in row 2, the rows from row 3
    (amounts as yuan numbers in a 0.00 format, exact), the notes after a blank row."""
    title_text = _text(title, locale)
    book = Workbook()
    sheet = book.active
    sheet.title = _sheet_title(title_text)
    sheet.cell(1, 1, title_text).font = Font(bold=True, size=14)
    last = _write_table(sheet, [_text(name, locale) for name in header], rows, first_row=2, locale=locale)
    for offset, note in enumerate(notes, start=2):
        sheet.cell(last + offset, 1, _text(note, locale))
    return _workbook_bytes(book)


def statements_xlsx(docs: Iterable[StatementDocument], *, locale: str = DEFAULT_LOCALE) -> bytes:
    """Finance's list of a month's statements: a sheet with one row per statement (total, exemption,
    what was forgone) and a sheet with every line; amounts as exact yuan numbers (0.00)."""
    docs = list(docs)
    book = Workbook()
    summary = book.active
    summary.title = _sheet_title(t("doc.sheet.statements", locale))
    exempt_words = (t("doc.no", locale), t("doc.yes", locale))
    _write_table(
        summary,
        [t(key, locale) for key in (
            "doc.reference", "doc.student_no", "doc.student_name", "doc.class_name", "doc.month_label",
            "doc.total_yuan", "doc.exempt", "doc.forgone", "doc.issued_on", "doc.due_on",
        )],
        (
            (
                # The month as 2026-12 in any language: a column finance sorts and filters.
                doc.reference, doc.student_no, doc.student_name, doc.class_name or None, f"{doc.month:%Y-%m}",
                Money(doc.total_fen), exempt_words[doc.exempt], Money(doc.forgone_fen) if doc.exempt else None,
                doc.issued_on, doc.due_on,
            )
            for doc in docs
        ),
        first_row=1, locale=locale,
    )
    lines = book.create_sheet(_sheet_title(t("doc.sheet.lines", locale)))
    _write_table(
        lines,
        [t(key, locale) for key in ("doc.reference", "doc.student_no", "doc.student_name", "doc.item", "doc.amount_yuan")],
        (
            (doc.reference, doc.student_no, doc.student_name, _text(line.label, locale), Money(line.amount_fen))
            for doc in docs for line in doc.lines
        ),
        first_row=1, locale=locale,
    )
    return _workbook_bytes(book)
