"""A school's service fund ledger (issue 15, P7.5): finance records spending and reverses mistakes; the
school admin and the district read it. There is no route that changes or removes an entry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from central.accounts.access import Principal
from central.api.deps import ERROR_RESPONSES, IdPath, SchoolDep, SessionDep, require_role
from central.billing import ledger
from central.billing.models import BalancePublic, LedgerEntryPublic, LedgerPage, PayoutIn, ReverseIn, SpendingIn
from central.core.i18n import pick_locale

router = APIRouter(prefix="/schools/{school}/ledger", tags=["ledger"], responses=ERROR_RESPONSES)
Finance = Annotated[Principal, Depends(require_role("finance"))]
# The school admin oversees the fund and the district inspects it (P7.5, P8.2); neither posts.
Reader = Annotated[Principal, Depends(require_role("finance", "school_admin", "district"))]


@router.get("")
def list_entries(
    school: SchoolDep, session: SessionDep, user: Reader,
    after: Annotated[int, Query(ge=0, le=2**31 - 1, description="the seq of the last entry already read")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> LedgerPage:
    """The school's entries in the order they were posted, with their lines."""
    return ledger.entries(session, school=school, after=after, limit=limit)


@router.get("/balances")
def list_balances(school: SchoolDep, request: Request, session: SessionDep, user: Reader) -> list[BalancePublic]:
    """Each account of the fund and its balance in fen, on the side it grows on."""
    locale = pick_locale(request.query_params.get("lang"), request.headers.get("accept-language"))
    return ledger.balances_public(session, school=school, locale=locale)


@router.post("/spending", status_code=status.HTTP_201_CREATED)
def record_spending(school: SchoolDep, body: SpendingIn, session: SessionDep, user: Finance) -> LedgerEntryPublic:
    """Money paid from the bank for one of P7.5's uses; any other category (a "management fee") is refused."""
    return ledger.record_spending(session, school=school, data=body, actor=user.label)


@router.post("/payouts", status_code=status.HTTP_201_CREATED)
def record_payout(school: SchoolDep, body: PayoutIn, session: SessionDep, user: Finance) -> LedgerEntryPublic:
    """Money paid from the bank for what the fund owes: staff pay (``staff_pay_payable``) or refunds to
    families (``refunds_payable``); more than the account owes is refused (409)."""
    return ledger.record_payout(session, school=school, data=body, actor=user.label)


@router.post("/{entry_id}/reverse", status_code=status.HTTP_201_CREATED)
def reverse_entry(school: SchoolDep, entry_id: IdPath, body: ReverseIn, session: SessionDep, user: Finance) -> LedgerEntryPublic:
    """A correction: a new entry with the same lines on the other sides; an entry is reversed once."""
    return ledger.record_reversal(session, school=school, entry_id=entry_id, data=body, actor=user.label)
