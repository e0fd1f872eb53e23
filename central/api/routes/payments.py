"""Payments (issue 15): finance records one by hand or imports a bank / WeChat Pay / Alipay statement
file (CSV, with a column mapping); each is matched to a statement by its reference. Finance and the
school admin see what did not match."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile, status

from central.accounts.access import POVERTY_READERS, Principal
from central.api.deps import ERROR_RESPONSES, IdPath, SchoolDep, SessionDep, require_role
from central.billing import payments
from central.billing.models import MatchIn, PaymentIn, PaymentPublic
from central.core.i18n import pick_locale

router = APIRouter(prefix="/schools/{school}", tags=["payments"], responses=ERROR_RESPONSES)
Finance = Annotated[Principal, Depends(require_role("finance"))]
Reader = Annotated[Principal, Depends(require_role(*POVERTY_READERS))]


@router.post("/payments", status_code=status.HTTP_201_CREATED)
def record_payment(school: SchoolDep, body: PaymentIn, session: SessionDep, user: Finance) -> PaymentPublic:
    """A payment by hand: ``channel`` bank, wechat, alipay or cash; matched at once if its reference
    names an issued statement (exactly, or inside a longer memo)."""
    return payments.record_payment(session, school=school, data=body, actor=user.label)


@router.post("/payments/import")
def import_payments(
    school: SchoolDep, request: Request, session: SessionDep, user: Finance,
    file: Annotated[UploadFile, File(description="The statement file, CSV (UTF-8 or GBK)")],
    channel: Annotated[str, Form(description="bank, wechat, alipay or cash")],
    reference_column: Annotated[str, Form(min_length=1, max_length=100, description="the column of the reference or memo")],
    amount_column: Annotated[str, Form(min_length=1, max_length=100)],
    date_column: Annotated[str, Form(min_length=1, max_length=100)],
    payer_column: Annotated[str | None, Form(max_length=100)] = None,
    txn_column: Annotated[str | None, Form(max_length=100, description="the file's transaction id: dedupes by it")] = None,
) -> payments.PaymentImport:
    """Bad rows are listed by line with what is wrong; the good ones are kept. A file imported again
    adds nothing it added before."""
    mapping = payments.ColumnMapping(reference=reference_column, amount=amount_column, date=date_column,
                                     payer=payer_column or None, txn_id=txn_column or None)
    locale = pick_locale(request.query_params.get("lang"), request.headers.get("accept-language"))
    return payments.import_payments(session, school=school, data=file.file.read(), mapping=mapping, channel=channel,
                                    filename=file.filename or "", actor=user.label, locale=locale)


@router.get("/payments/unmatched")
def unmatched(school: SchoolDep, session: SessionDep, user: Reader) -> list[PaymentPublic]:
    return payments.unmatched(session, school=school)


@router.post("/payments/{payment_id}/match")
def match_payment(school: SchoolDep, payment_id: IdPath, body: MatchIn, session: SessionDep, user: Finance) -> PaymentPublic:
    """Finance matches a payment that matched nothing to an issued statement by hand: it leaves the
    fund's suspense account for the statement. A payment already matched is refused (409)."""
    return payments.match_by_hand(session, school=school, payment_id=payment_id, reference=body.reference, actor=user.label)
