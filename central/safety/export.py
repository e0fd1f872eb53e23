"""The safety list as a spreadsheet (CSV and XLSX), headers and kinds in the reader's language.

Every text cell that a spreadsheet would read as a formula (it starts with ``=``, ``+``, ``-`` or
``@``; a tab or carriage return too, as OWASP lists) is written with a leading ``'``: what a gate or a
guard typed (a reason, a note, a card number) is data, never a formula that runs on the principal's
machine.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from central.core import clock
from central.core.i18n import t
from central.safety.items import Item
from central.schools.models import School

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ("key", "kind", "reason", "at", "gate", "student", "name", "guardian", "operator", "card", "note", "detail",
           "count", "state", "review_note", "review_by", "review_at")


def escape(value: object) -> object:
    """A cell's value as written: text a spreadsheet would take for a formula gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _when(value: datetime | None, school: School) -> str:
    return clock.to_local(value, school).strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def rows(items: Iterable[Item], *, school: School, locale: str) -> list[list[object]]:
    """The header and one row per item, escaped; times in the school's zone."""
    out: list[list[object]] = [[t(f"safety.col.{name}", locale) for name in COLUMNS]]
    for i in items:
        review = i.review or {}
        out.append([escape(v) for v in (
            i.key, t(f"safety.kind.{i.kind}", locale), i.reason or "", _when(i.at, school), i.kiosk or "",
            i.student or "", i.name or "", i.guardian or "", i.operator or "", i.card or "", i.note or "", i.detail or "",
            i.count, t(f"safety.state.{i.state}", locale), review.get("note", ""), review.get("by", ""),
            _when(review.get("at"), school),
        )])
    return out


def to_csv(items: Iterable[Item], *, school: School, locale: str) -> bytes:
    """UTF-8 with a byte order mark, so a spreadsheet opens the Chinese right."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows(items, school=school, locale=locale))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(items: Iterable[Item], *, school: School, locale: str) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = t("safety.title", locale)[:31]
    table = rows(items, school=school, locale=locale)
    for r, values in enumerate(table, start=1):
        for c, value in enumerate(values, start=1):
            cell = sheet.cell(r, c)
            cell.value = value
            if isinstance(value, str):
                cell.data_type = "s"  # never a formula, even one the escape above did not foresee
            if r == 1:
                cell.font = Font(bold=True)
    for c in range(1, len(COLUMNS) + 1):
        sheet.column_dimensions[get_column_letter(c)].width = 18
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
