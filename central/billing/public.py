"""The service fund on the school's public page (P7.5: "spending is published regularly and overseen by
the parents' committee"): income and spending per P7.5 use for a period, totals only — never a memo,
a name or an entry, so no family, child or member of staff can be read from it."""

from __future__ import annotations

from calendar import monthrange
from datetime import date

from sqlmodel import Session

from central.billing import ledger
from central.core.i18n import t
from central.programme.public import Section
from central.schools.models import School


def period(text: str | None, *, today: date) -> tuple[date, date]:
    """``YYYY`` (the year) or ``YYYY-MM`` (the month) as first and last date; none: this year up to today."""
    if not text:
        return date(today.year, 1, 1), today
    year, _, month = text.partition("-")
    if month:
        return date(int(year), int(month), 1), date(int(year), int(month), monthrange(int(year), int(month))[1])
    return date(int(year), 1, 1), date(int(year), 12, 31)


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def section(session: Session, *, school: School, locale: str, start: date, end: date) -> Section:
    summary = ledger.spending_summary(session, school=school, start=start, end=end)
    line = lambda account, fen: t("pub.spending_line", locale, label=ledger.account_label(account, locale), amount=yuan(fen))  # noqa: E731
    lines = [t("pub.spending_rule", locale)]
    lines += [line(account, fen) for account, fen in summary.income.items()]
    lines += [line(category, fen) for category, fen in summary.spent.items()]
    lines.append(t("pub.spending_total", locale, amount=yuan(summary.total_spent)))
    return Section(t("pub.spending", locale, start=start.isoformat(), end=end.isoformat()), lines)
