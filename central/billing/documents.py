"""Documents for people: a child's monthly statement (PDF, in Chinese by default) and finance's lists
(XLSX), rendered from plain dataclasses — no database here; the billing service fills them in.

Money arrives as integer fen and is shown as yuan with two decimals, formatted from the integer
(``divmod``), never through a float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from central.core.i18n import Msg

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
