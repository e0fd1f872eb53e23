"""``/finance``: a school's money for a month, for finance and the school admin (issue 15) — thin pages
over the services the API calls, with the same role checks:

- the month's statements with what was paid and what is still owed (``statements.list_statements``, as
  ``GET /api/v1/schools/{school}/statements``), and finance's form to bill the month, or bill and issue
  it (``statements.bill_month``, as ``POST …/statements``);
- payments that matched nothing, waiting in suspense, each with finance's form to match it by hand to
  a statement's reference (``payments.match_by_hand``, as ``POST …/payments/{id}/match``);
- the fund's balances (``ledger.balances_public``) and finance's form to pay out what it owes — staff pay
  or refunds — from the bank (``ledger.record_payout``, as ``POST …/ledger/payouts``).

Statements carry the P7.3 flag and children's names: finance and the school admin only (``POVERTY_READERS``),
never the district, as through the API. Every read of the children's statements is logged. Only finance
acts; the school admin reads. Amounts are typed in yuan as finance writes them (``100.00``, ``¥1,000.50``)
and read to the fen exactly (``payments.parse_amount``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from central.accounts.access import POVERTY_READERS, Principal, Role
from central.billing import ledger, payments, rules, statements
from central.billing.models import PayoutIn
from central.billing.public import yuan
from central.core import clock
from central.core.errors import LocalizedError, Missing, status_of
from central.core.i18n import t
from central.schools.models import School
from central.web import session as web_session
from central.web.pages import DbDep, PageError, caller, check_csrf, render, school_of

router = APIRouter(include_in_schema=False)
READERS = POVERTY_READERS
MOST_FEN = 10_000_000_000  # PayoutIn's bound: 100 million yuan
ACTORS = frozenset({Role.FINANCE})
MonthText = Annotated[str | None, Query(max_length=7)]


def _month(request: Request, school: School, text: str | None) -> statements.Month:
    """The month asked for (``YYYY-MM``), else the school's current month; a month that is no month is
    refused with the reason."""
    if not text:
        today = clock.local_now(school).date()
        return statements.Month(today.year, today.month)
    try:
        return statements.Month.parse(text)
    except LocalizedError as exc:
        raise PageError(422, "web.finance.bad_month") from exc


def _page(request: Request, db: Session, principal: Principal, school: School, month: statements.Month, *,
          status: int = 200, error: str = "", done: str = "", form: dict | None = None) -> HTMLResponse:
    locale = web_session.locale(request)
    rows = statements.list_statements(db, school=school, month=month, principal=principal)
    balances = ledger.balances(db, school=school)
    totals = {name: sum(getattr(s, name) for s in rows) for name in ("charge_fen", "refund_fen", "paid_fen", "balance_fen")}
    payables = [(account, ledger.account_label(account, locale), balances[account]) for account in ledger.PAYABLES]
    return render(request, "finance.html", status=status, principal=principal, school=school, month=month.key, rows=rows,
                  totals=totals, unmatched=payments.unmatched(db, school=school), payables=payables,
                  balances=ledger.balances_public(db, school=school, locale=locale), may_act=principal.role in ACTORS,
                  error=error, done=done, form=form or {}, yuan=yuan)


def _refused(request: Request, db: Session, principal: Principal, school: School, month: statements.Month, exc: LocalizedError,
             form: dict | None = None) -> HTMLResponse:
    db.rollback()
    status = 404 if isinstance(exc, Missing) else status_of(exc)
    return _page(request, db, principal, school, month, status=status, error=exc.text(web_session.locale(request)), form=form)


@router.get("/finance")
def finance(request: Request, db: DbDep, school: Annotated[str | None, Query(max_length=64)] = None,
            month: MonthText = None) -> HTMLResponse:
    principal = caller(request, db, READERS)
    row = school_of(db, principal, school)
    return _page(request, db, principal, row, _month(request, row, month))


def _acting(request: Request, db: Session, csrf: str, school: str | None, month: str) -> tuple[Principal, School, statements.Month]:
    check_csrf(request, csrf)
    principal = caller(request, db, ACTORS)
    row = school_of(db, principal, school)
    return principal, row, _month(request, row, month)


@router.post("/finance/bill")
def bill(request: Request, db: DbDep, csrf: Annotated[str, Form(max_length=100)] = "",
         school: Annotated[str | None, Form(max_length=64)] = None, month: Annotated[str, Form(max_length=7)] = "",
         issue: Annotated[str, Form(max_length=5)] = "") -> HTMLResponse:
    """Bill the month (drafts), or bill and issue it: the API's ``POST …/statements``."""
    principal, row, when = _acting(request, db, csrf, school, month)
    settings = request.app.state.settings
    subsidy = rules.Subsidy(per_child_month_fen=settings.subsidy_per_child_month_fen, per_period_fen=settings.subsidy_per_period_fen)
    try:
        run = statements.bill_month(db, school=row, month=when, cap_fen=settings.fee_cap_fen, subsidy=subsidy,
                                    actor=principal.label, issue=issue == "yes")
    except LocalizedError as exc:
        return _refused(request, db, principal, row, when, exc)
    done = t("web.finance.billed", web_session.locale(request), month=when.key, created=run.created, updated=run.updated,
             issued=run.issued, kept=len(run.kept))
    return _page(request, db, principal, row, when, done=done)


@router.post("/finance/match")
def match(request: Request, db: DbDep, csrf: Annotated[str, Form(max_length=100)] = "",
          school: Annotated[str | None, Form(max_length=64)] = None, month: Annotated[str, Form(max_length=7)] = "",
          payment: Annotated[int, Form(ge=1, le=2**31 - 1)] = 1, reference: Annotated[str, Form(max_length=200)] = "") -> HTMLResponse:
    """Match a payment waiting in suspense to an issued statement by its reference."""
    principal, row, when = _acting(request, db, csrf, school, month)
    try:
        matched = payments.match_by_hand(db, school=row, payment_id=payment, reference=reference, actor=principal.label)
    except LocalizedError as exc:
        return _refused(request, db, principal, row, when, exc, form={"payment": payment, "reference": reference})
    done = t("web.finance.matched", web_session.locale(request), amount=yuan(matched.amount_fen), reference=matched.statement)
    return _page(request, db, principal, row, when, done=done)


@router.post("/finance/payout")
def payout(request: Request, db: DbDep, csrf: Annotated[str, Form(max_length=100)] = "",
           school: Annotated[str | None, Form(max_length=64)] = None, month: Annotated[str, Form(max_length=7)] = "",
           payable: Annotated[str, Form(max_length=32)] = "", amount: Annotated[str, Form(max_length=32)] = "",
           memo: Annotated[str, Form(max_length=200)] = "", ref: Annotated[str, Form(max_length=64)] = "") -> HTMLResponse:
    """Pay out from the bank what the fund owes (staff pay, refunds); never more than it owes."""
    principal, row, when = _acting(request, db, csrf, school, month)
    locale = web_session.locale(request)
    form = {"payable": payable, "amount": amount, "memo": memo, "ref": ref}
    try:
        fen = payments.parse_amount(amount)
    except payments.AmountError as exc:
        return _page(request, db, principal, row, when, status=422, error=t(str(exc), locale, amount=amount), form=form)
    if fen > MOST_FEN:
        return _page(request, db, principal, row, when, status=422, error=t("web.finance.too_much", locale, amount=amount), form=form)
    if not memo.strip():
        return _page(request, db, principal, row, when, status=422, error=t("web.finance.memo_needed", locale), form=form)
    try:
        entry = ledger.record_payout(db, school=row, data=PayoutIn(payable=payable, amount_fen=fen, memo=memo.strip(), ref=ref.strip()),
                                     actor=principal.label)
    except LocalizedError as exc:
        return _refused(request, db, principal, row, when, exc, form=form)
    done = t("web.finance.paid_out", locale, amount=yuan(fen), account=ledger.account_label(payable, locale), seq=entry.seq)
    return _page(request, db, principal, row, when, status=201, done=done)
