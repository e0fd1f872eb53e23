"""A month's reconciliation (issue 15): the lines finance sees and acts on, per child —

- **billed, never attended**: a statement, and no check-in all month (a place paid for and unused, or
  an enrollment that should have ended);
- **attended, not billed**: check-ins in the month and no statement (a child let in without an
  enrollment, or a month not billed yet);
- **withdrawn mid-month**: the refund P7.4 gives now, what the statement records, what was paid and
  what is to be given back (never more than was paid);
- **exempt** (P7.3): what the month forgave.

``reconcile_month`` is the rule, pure: the month's statements, the days each child came and the
withdrawals in, the lines out. ``monthly`` reads one school's month (attendance and withdrawals fresh
from the records, not from what a statement froze when it was issued) and applies it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from sqlmodel import Session, SQLModel, col, select

from central.billing import rules
from central.billing.models import Statement
from central.billing.statements import ARRIVALS, Month, month_facts, paid_by_statement, settle, utc_range
from central.core import clock
from central.core.i18n import t
from central.kiosks.models import Event
from central.schools.models import School, Student

KINDS = ("billed_not_attended", "attended_not_billed", "withdrawn", "exempt")


@dataclass(frozen=True)
class Billed:
    """One statement of the month as the rule needs it."""

    student: str
    name: str
    reference: str
    charge_fen: int
    exempt: bool = False
    forgone_fen: int = 0
    refund_fen: int = 0  # recorded on the statement
    paid_fen: int = 0


@dataclass(frozen=True)
class Left:
    """A child out of the service from ``withdrawn_on`` (first day out), and the refund P7.4 gives now."""

    student: str
    name: str
    withdrawn_on: date
    refund_fen: int


class MonthLine(SQLModel):
    kind: str  # one of KINDS
    student: str
    name: str
    reference: str | None = None
    charge_fen: int = 0
    days_attended: int = 0
    forgone_fen: int = 0
    withdrawn_on: date | None = None
    refund_fen: int = 0  # P7.4, worked out now
    recorded_refund_fen: int = 0  # on the statement: below refund_fen until the month is billed again
    paid_fen: int = 0
    refund_payable_fen: int = 0  # to give back: never more than was paid
    text: str = ""


class MonthlyReconciliation(SQLModel):
    school: str
    month: str
    lines: list[MonthLine] = []
    counts: dict[str, int] = {}


def reconcile_month(billed: list[Billed], attended: dict[str, int], names: dict[str, str], left: list[Left]) -> list[MonthLine]:
    """The rule: each line of the month, by kind then student number."""
    by_student = {b.student: b for b in billed}
    lines = []
    for b in billed:
        if attended.get(b.student, 0) == 0:
            lines.append(MonthLine(kind="billed_not_attended", student=b.student, name=b.name, reference=b.reference,
                                   charge_fen=b.charge_fen, paid_fen=b.paid_fen))
    for student, days in attended.items():
        if days and student not in by_student:
            lines.append(MonthLine(kind="attended_not_billed", student=student, name=names.get(student, ""), days_attended=days))
    for out in left:
        b = by_student.get(out.student)
        charge, paid, recorded = (b.charge_fen, b.paid_fen, b.refund_fen) if b else (0, 0, 0)
        due = min(out.refund_fen, charge)
        lines.append(MonthLine(
            kind="withdrawn", student=out.student, name=out.name, reference=b.reference if b else None, charge_fen=charge,
            withdrawn_on=out.withdrawn_on, refund_fen=due, recorded_refund_fen=recorded, paid_fen=paid,
            refund_payable_fen=settle(charge_fen=charge, refund_fen=due, paid_fen=paid).refund_payable_fen,
        ))
    for b in billed:
        if b.exempt:
            lines.append(MonthLine(kind="exempt", student=b.student, name=b.name, reference=b.reference, forgone_fen=b.forgone_fen))
    for line in lines:
        if line.kind != "attended_not_billed":
            line.days_attended = attended.get(line.student, 0)
    return sorted(lines, key=lambda line: (KINDS.index(line.kind), line.student))


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def describe(line: MonthLine, locale: str) -> str:
    """The line as a finance user reads it."""
    return t(f"recon.{line.kind}", locale, name=line.name, student=line.student, reference=line.reference or "-",
             charge=_yuan(line.charge_fen), days=line.days_attended, forgone=_yuan(line.forgone_fen),
             withdrawn_on=line.withdrawn_on.isoformat() if line.withdrawn_on else "", refund=_yuan(line.refund_fen),
             recorded=_yuan(line.recorded_refund_fen), paid=_yuan(line.paid_fen), payable=_yuan(line.refund_payable_fen))


def monthly(session: Session, *, school: School, month: Month, locale: str = "zh_CN") -> MonthlyReconciliation:
    """One school's month: its statements against the check-ins and withdrawals recorded now."""
    rows = session.exec(
        select(Statement, Student).join(Student, col(Student.id) == Statement.student_id)
        .where(Statement.school_id == school.id, Statement.month == month.key)
    ).all()
    paid = paid_by_statement(session, [s.id for s, _ in rows])
    billed = [Billed(student=st.student_no, name=st.name, reference=s.reference, charge_fen=s.charge_fen, exempt=s.exempt,
                     forgone_fen=s.forgone_fen, refund_fen=s.refund_fen, paid_fen=paid.get(s.id, 0)) for s, st in rows]
    zone = clock.zone(school)
    start, end = utc_range(school, month)
    days: dict[str, set[date]] = defaultdict(set)
    for student_no, at in session.exec(
        select(Event.student, Event.at).where(Event.school_id == school.id, col(Event.at) >= start, col(Event.at) < end,
                                              col(Event.kind).in_(ARRIVALS), col(Event.student).is_not(None))
    ):
        days[student_no].add(clock.as_utc(at).astimezone(zone).date())
    names = dict(session.exec(select(Student.student_no, Student.name).where(
        Student.school_id == school.id, col(Student.student_no).in_(sorted(days)))).all()) if days else {}
    facts, students = month_facts(session, school=school, month=month)
    statements = {s.student_id: s for s, _ in rows}
    left = []
    for student_id, child in facts.items():
        if child.withdrawn_on is None:
            continue
        s = statements.get(student_id)
        refund = 0
        if s is not None and s.plan_kind == rules.PlanKind.MONTHLY and s.charge_fen:
            refund = rules.refund(monthly_fee_fen=s.charge_fen, paid_fen=s.charge_fen, service_days=child.service_days,
                                  withdrawn_on=child.withdrawn_on - timedelta(days=1))
        student = students[student_id]
        left.append(Left(student=student.student_no, name=student.name, withdrawn_on=child.withdrawn_on, refund_fen=refund))
    lines = reconcile_month(billed, {no: len(d) for no, d in days.items()}, names, left)
    for line in lines:
        line.text = describe(line, locale)
    counts = {kind: sum(1 for line in lines if line.kind == kind) for kind in KINDS}
    return MonthlyReconciliation(school=school.code, month=month.key, lines=lines, counts=counts)
