"""Payments (issue 15): money received for the service, recorded by hand or imported from a bank /
WeChat Pay / Alipay statement file, and matched to a statement by its reference.

- A statement file is CSV with a column mapping (which column holds the reference or memo, the amount,
  the date, the payer, and the file's transaction id). The header is the first line that has every
  mapped column, so the summary lines WeChat Pay and Alipay put above it are passed over. Amounts
  (``100.00``, ``¥1,000.50``) become fen exactly (``Decimal``, never a float). A bad row is reported by
  its line number with what is wrong; the good rows are kept.
- A file imported twice adds nothing: each row's key is the file's transaction id when that column is
  mapped, else its (date, amount, reference, payer); a key already stored (or met earlier in the same
  file) is a duplicate. Payments recorded by hand have no key: two equal ones by hand are two payments.
- Matching: the reference exactly (``SG202612-000123``, any case), or found inside a longer memo; only
  an issued statement of the school matches (a draft's reference was never given to anyone). What does
  not match is listed as unmatched.

``match_payment`` is the money event "payment matched": the ledger posts there. A payment that matches
nothing is money in the bank whose statement is not known yet: ``hold_in_suspense`` books it to the
fund's ``suspense`` account, and ``match_by_hand`` (finance) moves it from there onto a statement.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlmodel import Session, SQLModel, col, select

from central.billing import ledger
from central.billing.models import CHANNELS, LedgerEntry, Payment, PaymentIn, PaymentPublic, Statement
from central.billing.statements import ISSUED
from central.core import clock
from central.core.errors import Conflict, Invalid, Missing
from central.core.i18n import t
from central.schools.models import School

REFERENCE = re.compile(r"SG\d{6}-\d{6,}")
_GROUPED = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")
_PLAIN = re.compile(r"^\d+(\.\d+)?$")
_DAY = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T].*)?$|^(\d{4})(\d{2})(\d{2})$")
_CURRENCY = ("¥", "￥", "CNY", "RMB", "元")


class AmountError(ValueError):
    """An amount that is no positive sum of money in yuan with at most two decimals."""


def parse_amount(text: str) -> int:
    """``"100.00"``, ``"¥1,000.50"``, ``"+35"`` → fen, exactly. Refused: empty, negative (money paid out),
    zero, a third decimal, a misplaced thousands separator."""
    value = text.strip().replace(" ", "").replace("\u00a0", "")
    for sign in _CURRENCY:
        value = value.replace(sign, "")
    value = value.removeprefix("+")
    if value.startswith("-") or (value.startswith("(") and value.endswith(")")):
        raise AmountError("payment.amount_out")
    if not (_PLAIN.match(value) or _GROUPED.match(value)):
        raise AmountError("payment.amount")
    try:
        yuan = Decimal(value.replace(",", ""))
    except InvalidOperation as exc:  # pragma: no cover - the patterns above admit only digits
        raise AmountError("payment.amount") from exc
    if yuan.as_tuple().exponent < -2:
        raise AmountError("payment.amount_fen")
    fen = int(yuan * 100)
    if fen <= 0:
        raise AmountError("payment.amount_zero")
    return fen


def parse_day(text: str) -> date:
    """``2026-12-03``, ``2026/12/3``, ``2026-12-03 10:22:11``, ``2026年12月3日``, ``20261203``."""
    hit = _DAY.match(text.strip())
    if hit is None:
        raise ValueError(text)
    parts = [int(g) for g in hit.groups() if g is not None]
    return date(*parts)


def find_reference(text: str) -> str | None:
    """The statement reference in a transfer's reference or memo: the whole text, or inside it."""
    hit = REFERENCE.search(text.upper())
    return hit.group(0) if hit else None


# --- reading a statement file --------------------------------------------------------------------------


class ColumnMapping(SQLModel):
    """Which column of the file holds what (its header text, as written in the file)."""

    reference: str
    amount: str
    date: str
    payer: str | None = None
    txn_id: str | None = None


@dataclass(frozen=True)
class FileRow:
    line: int
    reference: str
    amount_fen: int
    paid_on: date
    payer: str
    txn_id: str | None

    @property
    def dedupe_key(self) -> str:
        if self.txn_id is not None:
            return f"txn:{self.txn_id}"
        whole = "\x1f".join([self.paid_on.isoformat(), str(self.amount_fen), self.reference, self.payer])
        return "row:" + hashlib.sha256(whole.encode()).hexdigest()


@dataclass(frozen=True)
class RowProblem:
    line: int
    key: str
    params: dict = field(default_factory=dict)


def _text(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # bank exports in China are often GBK
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise Invalid("payment.encoding")


def _lines(reader):
    """The file's rows; a line csv cannot read (a field past its limit) refuses the file, naming the line."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise Invalid("payment.csv", line=reader.line_num, problem=str(exc)) from exc


def read_statement_file(data: bytes, mapping: ColumnMapping) -> tuple[list[FileRow], list[RowProblem]]:
    """The good rows and the bad ones (by line number, header line 1 of the file) of a CSV statement file."""
    wanted = {"reference": mapping.reference, "amount": mapping.amount, "date": mapping.date}
    wanted |= {k: v for k, v in (("payer", mapping.payer), ("txn_id", mapping.txn_id)) if v}
    reader = csv.reader(io.StringIO(_text(data).replace("\x00", ""), newline=""))
    where: dict[str, int] | None = None
    rows, problems = [], []
    for cells in _lines(reader):
        cells = [c.strip().strip("\t").strip() for c in cells]
        line = reader.line_num
        if where is None:
            if all(name.strip() in cells for name in wanted.values()):
                where = {k: cells.index(name.strip()) for k, name in wanted.items()}
            continue
        if not any(cells):
            continue
        if len(cells) <= max(where.values()):
            problems.append(RowProblem(line, "payment.row_short", {"columns": len(cells)}))
            continue
        get = {k: cells[i] for k, i in where.items()}
        try:
            amount = parse_amount(get["amount"])
        except AmountError as exc:
            problems.append(RowProblem(line, str(exc), {"amount": get["amount"]}))
            continue
        try:
            paid_on = parse_day(get["date"])
        except ValueError:
            problems.append(RowProblem(line, "payment.date", {"date": get["date"]}))
            continue
        txn = get.get("txn_id")
        if mapping.txn_id and not txn:
            problems.append(RowProblem(line, "payment.no_txn", {"column": mapping.txn_id}))
            continue
        rows.append(FileRow(line, get["reference"][:500], amount, paid_on, get.get("payer", "")[:200],
                            txn[:100] if txn else None))
    if where is None:
        raise Invalid("payment.no_header", columns=", ".join(wanted.values()))
    return rows, problems


# --- recording and matching ------------------------------------------------------------------------------


def suspense_ref(payment: Payment) -> str:
    """The ledger's ref of a payment received and not matched yet (booked to ``suspense``)."""
    return f"payment:{payment.id}"


def match_payment(session: Session, *, school: School, payment: Payment, statement: Statement, actor: str,
                  held: bool = False) -> None:
    """Money event "payment matched": the payment settles (part of) the statement. (Ledger: kind
    ``payment``, ref the statement's reference, ``payment.amount_fen``: from the bank as it arrives, or
    out of ``suspense`` where it was ``held`` since it came in unmatched.)"""
    payment.statement_id, payment.matched_at = statement.id, clock.utcnow()
    session.add(payment)
    if payment.amount_fen > 0:  # P7.5: the money is in the fund's bank account, no longer owed
        source = "suspense" if held else "bank"
        ledger.post(session, school=school, kind="payment", ref=statement.reference, actor=actor, memo=payment.channel,
                    lines=[ledger.Line(source, payment.amount_fen), ledger.Line("receivable", credit_fen=payment.amount_fen)])


def hold_in_suspense(session: Session, *, school: School, payment: Payment, actor: str) -> None:
    """Money event "payment received, not matched": it is in the bank, and whose it is waits in
    ``suspense`` until finance matches it (``match_by_hand``). (Ledger: kind ``payment``, ref
    ``payment:<id>``.)"""
    if payment.amount_fen > 0:
        ledger.post(session, school=school, kind="payment", ref=suspense_ref(payment), actor=actor, memo=payment.channel,
                    lines=[ledger.Line("bank", payment.amount_fen), ledger.Line("suspense", credit_fen=payment.amount_fen)])


def _held(session: Session, school: School, payment: Payment) -> bool:
    """Whether the payment sits in suspense (a payment stored before suspense was kept never went in)."""
    return session.exec(select(LedgerEntry.id).where(
        LedgerEntry.school_id == school.id, LedgerEntry.kind == "payment", LedgerEntry.ref == suspense_ref(payment))).first() is not None


def match_by_hand(session: Session, *, school: School, payment_id: int, reference: str, actor: str) -> PaymentPublic:
    """Finance matches a payment that matched nothing (a memo with a typo, a name for a reference) to an
    issued statement of the school: it moves out of suspense onto the statement. Refused: a payment of
    no such id at the school (404), one already matched (409), a reference that is no issued statement
    of the school (404, or 409 for a draft). The payment's change is audited with the actor."""
    payment = session.get(Payment, payment_id)
    if payment is None or payment.school_id != school.id:
        raise Missing("payment.missing", id=payment_id)
    if payment.statement_id is not None:
        raise Conflict("payment.matched_already", id=payment_id)
    ref = find_reference(reference) or reference.strip().upper()
    statement = session.exec(select(Statement).where(Statement.school_id == school.id, Statement.reference == ref)).first()
    if statement is None:
        raise Missing("payment.no_statement", reference=reference.strip())
    if statement.state != ISSUED:
        raise Conflict("payment.statement_draft", reference=statement.reference)
    match_payment(session, school=school, payment=payment, statement=statement, actor=actor,
                  held=_held(session, school, payment))
    session.commit()
    return public(session, [payment])[0]


def _statements_by_reference(session: Session, school: School, refs: set[str]) -> dict[str, Statement]:
    if not refs:
        return {}
    rows = session.exec(select(Statement).where(Statement.school_id == school.id, col(Statement.reference).in_(sorted(refs)),
                                                Statement.state == ISSUED))
    return {s.reference: s for s in rows}


def _match(session: Session, school: School, payments: list[Payment], actor: str) -> int:
    refs = {p.id: find_reference(p.reference) for p in payments}
    found = _statements_by_reference(session, school, {r for r in refs.values() if r})
    matched = 0
    for payment in payments:
        statement = found.get(refs[payment.id] or "")
        if statement is not None:
            match_payment(session, school=school, payment=payment, statement=statement, actor=actor)
            matched += 1
        else:
            hold_in_suspense(session, school=school, payment=payment, actor=actor)
    return matched


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise Invalid("payment.channel", channel=channel, choices=" / ".join(CHANNELS))


def record_payment(session: Session, *, school: School, data: PaymentIn, actor: str) -> PaymentPublic:
    """A payment recorded by hand (cash at the office, a transfer seen in the bank), matched at once."""
    _check_channel(data.channel)
    row = Payment(school_id=school.id, reference=data.reference.strip(), amount_fen=data.amount_fen, paid_on=data.paid_on,
                  channel=data.channel, payer=data.payer.strip(), source="hand", recorded_by=actor)
    session.add(row)
    session.flush()
    _match(session, school, [row], actor)
    session.commit()
    return public(session, [row])[0]


class ImportProblem(SQLModel):
    line: int
    problem: str


class PaymentImport(SQLModel):
    added: int = 0
    duplicates: int = 0  # rows already imported (this file before, or earlier in it)
    matched: int = 0
    problems: list[ImportProblem] = []


def import_payments(session: Session, *, school: School, data: bytes, mapping: ColumnMapping, channel: str,
                    filename: str, actor: str, locale: str = "zh_CN") -> PaymentImport:
    """Import a statement file: the good rows are stored (those not stored before) and matched; the bad
    ones are reported by line. One transaction."""
    _check_channel(channel)
    rows, problems = read_statement_file(data, mapping)
    keys = {r.dedupe_key for r in rows}
    stored = set()
    key_list = sorted(keys)
    for i in range(0, len(key_list), 500):
        stored |= set(session.exec(select(Payment.dedupe_key).where(
            Payment.school_id == school.id, col(Payment.dedupe_key).in_(key_list[i:i + 500]))))
    result = PaymentImport()
    added = []
    for row in rows:
        if row.dedupe_key in stored:
            result.duplicates += 1
            continue
        stored.add(row.dedupe_key)
        payment = Payment(school_id=school.id, reference=row.reference, amount_fen=row.amount_fen, paid_on=row.paid_on,
                          channel=channel, payer=row.payer, txn_id=row.txn_id, dedupe_key=row.dedupe_key,
                          source=f"file:{filename}"[:200], recorded_by=actor)
        session.add(payment)
        added.append(payment)
    session.flush()
    result.added = len(added)
    result.matched = _match(session, school, added, actor)
    session.commit()
    result.problems = [ImportProblem(line=p.line, problem=t(p.key, locale, line=p.line, **p.params)) for p in problems]
    return result


def public(session: Session, rows: list[Payment]) -> list[PaymentPublic]:
    ids = {r.statement_id for r in rows if r.statement_id is not None}
    refs = dict(session.exec(select(Statement.id, Statement.reference).where(col(Statement.id).in_(ids))).all()) if ids else {}
    return [PaymentPublic.model_validate(r, update={"statement": refs.get(r.statement_id)}) for r in rows]


def unmatched(session: Session, *, school: School) -> list[PaymentPublic]:
    rows = session.exec(select(Payment).where(Payment.school_id == school.id, col(Payment.statement_id).is_(None))
                        .order_by(Payment.paid_on, Payment.id)).all()
    return public(session, list(rows))
