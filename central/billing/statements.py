"""Monthly statements (issue 15): for a school and a month, one statement per child in the service
that month — what the term's fee plan charges (P7.2, capped), 0 for a registered poor family with
what was forgone (P7.3), the child's subsidy (P7.1), and the refund of a withdrawal (P7.4).

``bill_child`` is the rule, pure: one child's month as ``ChildMonth`` (its service days, the days its
enrollment held, the days it checked in, exemption, withdrawal) and a plan in, the amounts out.
``bill_month`` reads a school's month and applies it to every child. The choices it makes are written
in docs/billing.md:

- service days are the days a session of the child's group was held (planned sessions: holidays take
  them away, make-up days add them, central/programme/schedule.py); a child is in the month if its
  enrollment held on one of them (``enrollment_in_service``, from its activation on);
- billing a month again never doubles a statement (one per school, child and month): a **draft** is
  worked out again, an **issued** one is kept as it was sent (its reference is in parents' hands and
  its charge in the ledger) — a run only adds a refund a withdrawal earned since, and lists an issued
  statement whose charge would now differ, for finance to correct by hand;
- P7.3 for a whole month: exempt if the family was registered on any day of the month (the flag's
  history is the audit log of the student's row);
- P7.4 counts the service days from the withdrawal's effective date (the first day the child is out)
  to the month's end; a per-day plan charges attended days only, so it has nothing to give back.

Three money events, one function each, so that posting to the ledger is one call in each:
``issue_statement`` (statement issued), ``grant_refund`` (refund due), and in payments.py
``match_payment`` (payment matched).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from io import BytesIO
from typing import NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from central.accounts.access import Principal, log_child_reads
from central.billing import ledger, rules
from central.billing.models import BillingRun, FeePlan, Payment, Statement, StatementPublic
from central.core import audit, clock
from central.core.audit import AuditLog
from central.core.bulk import copy_rows
from central.core.errors import Conflict, Invalid
from central.core.i18n import t
from central.kiosks.models import Event
from central.programme.models import CareSession, Enrollment, EnrollmentStep, Term, enrollment_in_service
from central.schools.models import School, Student

ARRIVALS = ("checkin", "override")  # as the day's reconciliation counts a child in (central/reconciliation/daily.py)
DRAFT, ISSUED = "draft", "issued"
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Month:
    """A calendar month of the school: its dates are the school's local dates."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        hit = MONTH.match(text.strip())
        if hit is None or not 2000 <= int(hit.group(1)) <= 2999:
            raise Invalid("statement.month", month=text)
        return cls(int(hit.group(1)), int(hit.group(2)))

    @property
    def key(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def next_first(self) -> date:
        return date(self.year + self.month // 12, self.month % 12 + 1, 1)

    @property
    def last(self) -> date:
        return self.next_first - timedelta(days=1)

    def __contains__(self, day: date) -> bool:
        return (day.year, day.month) == (self.year, self.month)


def reference(month: Month, statement_id: int) -> str:
    """What a parent writes in a transfer's memo: ``SG`` + YYYYMM + ``-`` + the id padded to 6 digits."""
    return f"SG{month.year:04d}{month.month:02d}-{statement_id:06d}"


# --- the rule -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildMonth:
    """One child's month as the rule needs it."""

    service_days: frozenset[date]  # the month's service days of the child's groups
    in_service: frozenset[date]  # of those, the days the child's enrollment held
    attended: frozenset[date]  # days the child checked in (any day; only service days in service count)
    exempt: bool = False  # P7.3 on any day of the month
    withdrawn_on: date | None = None  # P7.4: first day out (the withdrawal date, a day served, is the day before)


@dataclass(frozen=True)
class Bill:
    days_attended: int
    charge_fen: int
    forgone_fen: int
    subsidy_fen: int
    refund_fen: int


def bill_child(child: ChildMonth, plan: rules.FeePlan, *, cap_fen: int, subsidy: rules.Subsidy) -> Bill:
    """The rule for one child's month: the plan's charge, never above the cap (P7.2), 0 when exempt with
    what was forgone (P7.3), the subsidy per child (P7.1), and a withdrawal's refund (P7.4) — monthly fee
    × the service days from the first day out ÷ the month's service days, rounded down to the fen."""
    attended = len(child.attended & child.in_service)
    charge = rules.month_charge(plan, days_attended=attended, exempt=child.exempt, cap_fen=cap_fen)
    forgone = rules.forgone(plan, days_attended=attended, cap_fen=cap_fen) if child.exempt else 0
    refund = 0
    if child.withdrawn_on is not None and plan.kind is rules.PlanKind.MONTHLY and charge:
        # rules.refund counts the days after the last day the child may attend: the day before the first day out.
        refund = rules.refund(monthly_fee_fen=charge, paid_fen=charge, service_days=child.service_days,
                              withdrawn_on=child.withdrawn_on - timedelta(days=1))
    return Bill(days_attended=attended, charge_fen=charge, forgone_fen=forgone,
                subsidy_fen=rules.subsidy(subsidy, children=1, periods=0), refund_fen=refund)


@dataclass(frozen=True)
class Settlement:
    balance_fen: int  # still owed
    refund_payable_fen: int  # P7.4 money to give back: never more than was paid
    overpaid_fen: int  # paid beyond the charge


def settle(*, charge_fen: int, refund_fen: int, paid_fen: int) -> Settlement:
    """Where a statement stands: the family owes the charge less the refund; a refund is money back only
    as far as it was paid (P7.4: "gets the remaining fee back")."""
    net = charge_fen - refund_fen
    return Settlement(
        balance_fen=max(0, net - paid_fen),
        refund_payable_fen=min(refund_fen, max(0, paid_fen - net)),
        overpaid_fen=max(0, paid_fen - charge_fen),
    )


# --- money events: one function each, where the ledger posts ---------------------------------------


def issue_statement(session: Session, *, school: School, statement: Statement, actor: str) -> None:
    """Money event "statement issued": the charge is owed from now on and the reference may be given
    to the family. (Ledger: kind ``statement``, ref the statement's reference, ``charge_fen``.)"""
    ledger.post_many(session, school=school, postings=_issue(session, statement, actor), actor=actor)


def issue_statements(session: Session, *, school: School, rows: list[Statement], actor: str) -> None:
    """``issue_statement`` for many, their ledger entries posted in one batch (``ledger.post_many``)."""
    postings = [p for row in rows for p in _issue(session, row, actor)]
    ledger.post_many(session, school=school, postings=postings, actor=actor)


def _issue(session: Session, statement: Statement, actor: str) -> list[ledger.Posting]:
    if statement.state != DRAFT:
        raise Conflict("statement.not_draft", reference=statement.reference, state=statement.state)
    statement.state, statement.issued_by, statement.issued_at = ISSUED, actor, clock.utcnow()
    session.add(statement)
    return _postings(statement)


class _Made(NamedTuple):
    """A statement a run wrote past the ORM (PostgreSQL), as much of it as its ledger entries need."""

    id: int
    student_id: int
    reference: str
    month: str
    charge_fen: int
    subsidy_fen: int
    refund_fen: int
    withdrawn_on: date | None


def _postings(statement: Statement | _Made) -> list[ledger.Posting]:
    """P7.5: the fund's ledger books the charge (and the month's subsidy for the child) with the issue,
    and a P7.4 refund the statement already holds (the child left before the month was billed) as
    ``grant_refund`` books one found later: fee income given back, off what the family owes (nothing
    can have been paid on a statement not yet issued). So the ledger's fee income is the issued
    statements' charges less their refunds, however the refund came."""
    out = []
    if statement.charge_fen > 0:
        out.append(ledger.Posting("statement", statement.reference, memo=statement.month, lines=[
            ledger.Line("receivable", statement.charge_fen), ledger.Line("fee_income", credit_fen=statement.charge_fen)]))
    if statement.refund_fen > 0:
        out.append(ledger.Posting("refund", statement.reference, memo=statement.withdrawn_on.isoformat(), lines=[
            ledger.Line("fee_income", statement.refund_fen), ledger.Line("receivable", credit_fen=statement.refund_fen)]))
    if statement.subsidy_fen > 0:
        out.append(ledger.Posting("subsidy", statement.reference, memo=statement.month, lines=[
            ledger.Line("subsidy_receivable", statement.subsidy_fen),
            ledger.Line("subsidy_income", credit_fen=statement.subsidy_fen)]))
    return out


def grant_refund(session: Session, *, school: School, statement: Statement, refund_fen: int, withdrawn_on: date,
                 actor: str) -> int:
    """Money event "refund due" (P7.4) on an issued statement: the refund a withdrawal earned, recorded
    once; a later run with a larger one records the difference. Returns the fen added. (Ledger: kind
    ``refund``, ref the statement's reference, the returned amount.)"""
    added = refund_fen - statement.refund_fen
    if added <= 0:
        return 0
    # P7.4 in the ledger: fee income given back — off what the family still owes, the rest owed back to them.
    unpaid = statement.charge_fen - statement.refund_fen - paid_by_statement(session, [statement.id]).get(statement.id, 0)
    off_owed = max(0, min(added, unpaid))
    back = [ledger.Line(account, credit_fen=fen) for account, fen in (("receivable", off_owed), ("refunds_payable", added - off_owed)) if fen]
    ledger.post(session, school=school, kind="refund", ref=statement.reference, actor=actor, memo=withdrawn_on.isoformat(),
                lines=[ledger.Line("fee_income", added), *back])
    statement.refund_fen, statement.withdrawn_on, statement.updated_at = refund_fen, withdrawn_on, clock.utcnow()
    statement.billed_by = actor
    session.add(statement)
    return added


# --- reading a school's month ----------------------------------------------------------------------


def utc_range(school: School, month: Month) -> tuple[datetime, datetime]:
    """The month's first and the next month's first midnight at the school, in UTC."""
    zone = clock.zone(school)
    return (datetime.combine(month.first, time(0), zone).astimezone(UTC),
            datetime.combine(month.next_first, time(0), zone).astimezone(UTC))


def _local_date(school: School, at: datetime) -> date:
    return clock.as_utc(at).astimezone(clock.zone(school)).date()


def exempt_in_month(session: Session, *, school: School, month: Month, students: list[StudentRow]) -> set[int]:
    """P7.3 for the whole month: the children whose family was registered on any day of it.

    The flag's history is the audit log of the student's row: its value when the month began is the
    ``before`` of its first change after that (the current value if it never changed since), and a
    change to registered before the month's end counts too.
    """
    start, end = utc_range(school, month)
    ids = {f"student:{s.id}": s for s in students}
    changes: dict[int, list[tuple[datetime, bool, bool]]] = defaultdict(list)
    rows = session.exec(
        select(AuditLog.entity, AuditLog.at, AuditLog.before, AuditLog.after)
        .where(AuditLog.school_id == school.id, AuditLog.action == "student.update", col(AuditLog.at) >= start)
        .order_by(col(AuditLog.seq))
    )
    for entity, at, before, after in rows:
        student = ids.get(entity)
        if student is None:
            continue
        was, now = (json.loads(before) or {}).get("poverty_registered"), (json.loads(after) or {}).get("poverty_registered")
        if was is not None and now is not None and was != now:
            changes[student.id].append((clock.as_utc(at), bool(was), bool(now)))
    out = set()
    for student in students:
        history = changes.get(student.id, [])
        at_start = history[0][1] if history else student.poverty_registered
        if at_start or any(now and at < end for at, _, now in history):
            out.add(student.id)
    return out


@dataclass
class _Child:
    student_id: int
    groups: set[int]
    in_service: set[date]


class StudentRow(NamedTuple):
    """What billing reads of a child's row."""

    id: int
    student_no: str
    name: str
    poverty_registered: bool


def month_facts(session: Session, *, school: School, month: Month) -> tuple[dict[int, ChildMonth], dict[int, StudentRow]]:
    """Every child in the service in ``month`` (on at least one service day), as ``ChildMonth``."""
    group_days: dict[int, set[date]] = defaultdict(set)
    for group_id, day in session.exec(
        select(CareSession.group_id, CareSession.day)
        .where(CareSession.school_id == school.id, CareSession.day >= month.first, CareSession.day <= month.last)
    ):
        group_days[group_id].add(day)
    held: dict[int, tuple[int, int, set[date]]] = {}  # enrollment -> (student, group, days it held)
    # The one question every reader of "who is in" asks (programme/models.py), asked of every session
    # day of the month in one grouped query: per enrollment, the first and the last of its group's
    # session days it held and how many it held. When that count is every session day of the group
    # between the two (the case of every enrollment today), those are its days; else its days are read.
    held_on = (Enrollment.school_id == school.id, CareSession.school_id == school.id, CareSession.day >= month.first,
               CareSession.day <= month.last, enrollment_in_service(CareSession.day))
    on_group = (col(CareSession.group_id) == Enrollment.group_id)
    conn = session.connection()
    for eid, student_id, group_id, first, last, count in conn.execute(
        sa.select(Enrollment.id, Enrollment.student_id, Enrollment.group_id, func.min(CareSession.day),
                  func.max(CareSession.day), func.count(sa.distinct(CareSession.day)))
        .join(CareSession, on_group).where(*held_on).group_by(Enrollment.id, Enrollment.student_id, Enrollment.group_id)
    ):
        days = {day for day in group_days[group_id] if first <= day <= last}
        if len(days) != count:
            days = set(conn.execute(sa.select(CareSession.day).distinct().join(Enrollment, on_group)
                                    .where(Enrollment.id == eid, *held_on)).scalars())
        held[eid] = (student_id, group_id, days)
    if held:
        # An enrollment is in from the day it became active (an enrollment made before steps were kept has none).
        for eid, at in session.exec(
            select(EnrollmentStep.enrollment_id, func.min(EnrollmentStep.at))
            .where(col(EnrollmentStep.enrollment_id).in_(list(held)), EnrollmentStep.to_state == "active")
            .group_by(EnrollmentStep.enrollment_id)
        ):
            since = _local_date(school, at)
            held[eid][2].difference_update({d for d in held[eid][2] if d < since})
    children: dict[int, _Child] = {}
    for student_id, group_id, days in held.values():
        if days:
            child = children.setdefault(student_id, _Child(student_id, set(), set()))
            child.groups.add(group_id)
            child.in_service |= days
    if not children:
        return {}, {}
    # Columns, not Student objects (a thousand a school cost half a second in a district's month).
    students = {row.id: StudentRow(*row) for row in session.connection().execute(
        sa.select(Student.id, Student.student_no, Student.name, Student.poverty_registered).where(col(Student.id).in_(list(children))))}
    exempt = exempt_in_month(session, school=school, month=month, students=list(students.values()))
    start, end = utc_range(school, month)
    numbers = {s.student_no: s.id for s in students.values()}
    attended: dict[int, set[date]] = defaultdict(set)
    arrivals = (Event.school_id == school.id, col(Event.at) >= start, col(Event.at) < end, col(Event.kind).in_(ARRIVALS),
                col(Event.student).in_(list(numbers)))
    if session.get_bind().dialect.name == "postgresql":
        # The school-local dates worked out and made distinct by the database (the zone's rules are
        # PostgreSQL's tz database, the same IANA rules as zoneinfo's): one row a child and day.
        local = sa.cast(sa.func.timezone(clock.zone(school).key, Event.at), sa.Date)
        for student_no, day in session.connection().execute(sa.select(Event.student, local).where(*arrivals)
                                                            .group_by(Event.student, local)):
            attended[numbers[student_no]].add(day)
    else:
        for student_no, at in session.exec(select(Event.student, Event.at).where(*arrivals)):
            attended[numbers[student_no]].add(_local_date(school, at))
    # P7.4: a withdrawal by written request, effective inside the month, that left an active enrollment.
    left_active = select(EnrollmentStep.enrollment_id).where(EnrollmentStep.from_state == "active",
                                                            EnrollmentStep.to_state == "withdrawn")
    withdrawals: dict[int, date] = {}
    for student_id, on in session.exec(
        select(Enrollment.student_id, Enrollment.withdrawn_on).where(
            Enrollment.school_id == school.id, Enrollment.state == "withdrawn", col(Enrollment.student_id).in_(list(children)),
            col(Enrollment.withdrawn_on) > month.first, col(Enrollment.withdrawn_on) <= month.last,
            col(Enrollment.withdrawal_request).is_not(None), col(Enrollment.id).in_(left_active),
        )
    ):
        withdrawals[student_id] = max(on, withdrawals.get(student_id, on))
    facts = {}
    for student_id, child in children.items():
        service_days = frozenset().union(*(group_days[g] for g in child.groups))
        out = withdrawals.get(student_id)
        if out is not None and max(child.in_service) >= out:
            out = None  # still in another group after it: not out of the service
        facts[student_id] = ChildMonth(service_days=service_days, in_service=frozenset(child.in_service),
                                       attended=frozenset(attended.get(student_id, ())), exempt=student_id in exempt,
                                       withdrawn_on=out)
    return facts, students


def _plans(session: Session, *, school: School, month: Month, facts: dict[int, ChildMonth]) -> dict[int, tuple[Term, FeePlan]]:
    """Each child's plan: the fee plan of the term of the child's first service day in the month."""
    terms = list(session.exec(select(Term).where(Term.school_id == school.id)))
    plans = {p.term_id: p for p in session.exec(select(FeePlan).where(FeePlan.school_id == school.id))}
    out = {}
    for student_id, child in facts.items():
        first = min(child.in_service)
        term = next((t for t in terms if t.starts_on <= first <= t.ends_on), None)
        if term is None:
            raise Conflict("statement.no_term", day=first.isoformat())
        if term.id not in plans:
            raise Conflict("statement.no_plan", term=term.name, month=month.key)
        out[student_id] = (term, plans[term.id])
    return out


# --- billing a month ---------------------------------------------------------------------------------

_WORKED = ("term_id", "plan_kind", "plan_amount_fen", "cap_fen", "service_days", "days_in_service", "days_attended",
           "exempt", "charge_fen", "forgone_fen", "subsidy_fen", "withdrawn_on", "refund_fen")


def bill_month(session: Session, *, school: School, month: Month, cap_fen: int, subsidy: rules.Subsidy, actor: str,
               issue: bool = False) -> BillingRun:
    """Make or redo the month's statements (drafts); with ``issue``, issue every draft. All or nothing:
    a child whose term has no fee plan refuses the whole run (a 409 naming the term).

    Idempotent: one statement per (school, child, month). A draft is worked out again; an issued one
    keeps its charge (listed in ``kept`` if it would now differ, or if its child is no longer in the
    month's service) and only gains a refund a withdrawal earned since (``refunds``); a draft of a child
    no longer in the service that month is removed.
    """
    facts, students = month_facts(session, school=school, month=month)
    plans = _plans(session, school=school, month=month, facts=facts)
    existing = {s.student_id: s for s in session.exec(
        select(Statement).where(Statement.school_id == school.id, Statement.month == month.key))}
    run = BillingRun(school=school.code, month=month.key)
    now = clock.utcnow()
    fresh: list[dict] = []  # what the new statements hold
    billed: list[Statement] = []
    for student_id, child in sorted(facts.items(), key=lambda kv: students[kv[0]].student_no):
        term, plan = plans[student_id]
        rule = rules.FeePlan(rules.PlanKind(plan.kind), plan.amount_fen)
        bill = bill_child(child, rule, cap_fen=cap_fen, subsidy=subsidy)
        worked = {
            "term_id": term.id, "plan_kind": plan.kind, "plan_amount_fen": plan.amount_fen, "cap_fen": cap_fen,
            "service_days": len(child.service_days), "days_in_service": len(child.in_service),
            "days_attended": bill.days_attended, "exempt": child.exempt, "charge_fen": bill.charge_fen,
            "forgone_fen": bill.forgone_fen, "subsidy_fen": bill.subsidy_fen, "withdrawn_on": child.withdrawn_on,
            "refund_fen": bill.refund_fen,
        }
        row = existing.pop(student_id, None)
        if row is None:
            fresh.append(worked | {"student_id": student_id})  # made below, in this order
            run.created += 1
            continue
        elif row.state == DRAFT:
            if all(getattr(row, k) == v for k, v in worked.items()):
                run.unchanged += 1
            else:
                row.sqlmodel_update(worked)
                row.billed_by, row.updated_at = actor, now
                run.updated += 1
        else:
            if row.charge_fen != bill.charge_fen or row.exempt != child.exempt:
                run.kept.append(row.reference)
            if child.withdrawn_on is not None and grant_refund(
                    session, school=school, statement=row, refund_fen=min(bill.refund_fen, row.charge_fen),
                    withdrawn_on=child.withdrawn_on, actor=actor):
                run.refunds.append(row.reference)
            else:
                run.unchanged += 1
        session.add(row)
        billed.append(row)
    # The new rows: issued as they are made when the run issues (no second write of each). On PostgreSQL
    # they skip the ORM (bench/district.py: a thousand Statement objects and their flush cost about a
    # second a school): ids drawn from the sequence so that the reference goes in with the insert, the
    # rows written with COPY, and each logged as the commit logs a row the
    # ORM made (audit.queue_created). Elsewhere the ORM makes them, one flush gives the ids and the
    # references follow.
    state = {"state": ISSUED, "issued_by": actor, "issued_at": now} if issue else {"state": DRAFT, "issued_by": None, "issued_at": None}
    made: list = []
    if fresh and session.get_bind().dialect.name == "postgresql":
        ids = session.execute(sa.text("SELECT nextval(pg_get_serial_sequence('statement', 'id')) FROM generate_series(1, :n)"),
                              {"n": len(fresh)}).scalars().all()
        rows = [{"id": statement_id, "school_id": school.id, "month": month.key, "reference": reference(month, statement_id),
                 "billed_by": actor, "created_at": now, "updated_at": now, **worked, **state}
                for worked, statement_id in zip(fresh, ids)]
        if set(rows[0]) != set(Statement.model_fields):  # a column added to Statement must be written here too
            raise AssertionError(f"statement columns: {sorted(set(Statement.model_fields) ^ set(rows[0]))}")
        session.flush()  # what the ORM holds goes first, as its own flush would have sent it
        names = list(rows[0])
        copy_rows(session, "statement", names, (tuple(row[name] for name in names) for row in rows))
        for row in rows:
            audit.queue_created(session, "statement", row)
        made = [_Made(row["id"], row["student_id"], row["reference"], row["month"], row["charge_fen"], row["subsidy_fen"],
                      row["refund_fen"], row["withdrawn_on"]) for row in rows]
    elif fresh:
        made = [Statement(school_id=school.id, month=month.key, billed_by=actor, **worked, **state) for worked in fresh]
        session.add_all(made)
        session.flush()
        for row in made:
            row.reference = reference(month, row.id)
    if issue:
        drafts = [row for row in billed if row.state == DRAFT]
        new = {id(row) for row in made}
        postings = [p for row in sorted(drafts + made, key=lambda row: students[row.student_id].student_no)
                    for p in (_postings(row) if id(row) in new else _issue(session, row, actor))]
        ledger.post_many(session, school=school, postings=postings, actor=actor)  # as issue_statements, in student order
        run.issued += len(drafts) + len(made)
    for row in existing.values():
        if row.state == DRAFT:
            session.delete(row)
            run.removed += 1
        else:
            run.kept.append(row.reference)  # issued, and the child is no longer in the month's service
    session.commit()
    run.statements = list_statements(session, school=school, month=month)
    for s in run.statements:
        run.children += 1
        run.exempt += s.exempt
        run.charge_fen += s.charge_fen
        run.forgone_fen += s.forgone_fen
        run.subsidy_fen += s.subsidy_fen
        run.refund_fen += s.refund_fen
    return run


def issue_month(session: Session, *, school: School, month: Month, actor: str) -> int:
    """Issue every draft statement of the month; returns how many."""
    rows = session.exec(select(Statement).where(Statement.school_id == school.id, Statement.month == month.key,
                                                Statement.state == DRAFT)).all()
    issue_statements(session, school=school, rows=list(rows), actor=actor)
    session.commit()
    return len(rows)


# --- the month's money, for staff pay (P8.1) and the annual report (P7.6) ------------------------------


@dataclass(frozen=True)
class MonthIncome:
    """What a school's issued statements of a month add up to."""

    charged_fen: int  # the charges issued
    refunded_fen: int  # P7.4 refunds recorded on them
    received_fen: int  # payments matched to them
    subsidy_fen: int  # P7.1, per child
    forgone_fen: int  # P7.3
    children: int

    @property
    def fee_income_fen(self) -> int:
        """Fee income as billed: what was charged less what P7.4 gives back."""
        return self.charged_fen - self.refunded_fen


def month_income(session: Session, *, school: School, month: Month) -> MonthIncome:
    """The month's fee income and subsidy from its issued statements (drafts count for nothing): what
    a month's staff pay is worked out from (``staffpay.run_pay``)."""
    rows = session.exec(select(Statement).where(Statement.school_id == school.id, Statement.month == month.key,
                                                Statement.state == ISSUED)).all()
    paid = paid_by_statement(session, [s.id for s in rows])
    return MonthIncome(
        charged_fen=sum(s.charge_fen for s in rows), refunded_fen=sum(s.refund_fen for s in rows),
        received_fen=sum(paid.values()), subsidy_fen=sum(s.subsidy_fen for s in rows),
        forgone_fen=sum(s.forgone_fen for s in rows), children=len(rows),
    )


# --- reading statements --------------------------------------------------------------------------------


def paid_by_statement(session: Session, statement_ids: list[int]) -> dict[int, int]:
    if not statement_ids:
        return {}
    return dict(session.exec(
        select(Payment.statement_id, func.sum(Payment.amount_fen))
        .where(col(Payment.statement_id).in_(statement_ids)).group_by(Payment.statement_id)
    ).all())


def list_statements(session: Session, *, school: School, month: Month, principal: Principal | None = None,
                    outstanding_only: bool = False) -> list[StatementPublic]:
    """The month's statements by student number, with what was paid and where each stands. A member of
    staff's read of the children's records is logged (``principal``)."""
    # Columns, not ORM objects: a district's month reads a thousand statements a school (bench/district.py).
    rows = session.execute(
        sa.select(*Statement.__table__.columns, Student.student_no.label("student"), Student.name.label("name"))
        .join(Student, col(Student.id) == Statement.student_id)
        .where(Statement.school_id == school.id, Statement.month == month.key).order_by(Student.student_no)
    ).mappings().all()
    paid = paid_by_statement(session, [row["id"] for row in rows])
    out = []
    for row in rows:
        money = settle(charge_fen=row["charge_fen"], refund_fen=row["refund_fen"], paid_fen=paid.get(row["id"], 0))
        if outstanding_only and (row["state"] != ISSUED or money.balance_fen == 0):
            continue
        out.append(StatementPublic.model_validate({
            **row, "paid_fen": paid.get(row["id"], 0), "balance_fen": money.balance_fen,
            "refund_payable_fen": money.refund_payable_fen, "overpaid_fen": money.overpaid_fen,
        }))
    if principal is not None and out:
        out_ids = {s.id for s in out}
        shown = {row["student_id"] for row in rows if row["id"] in out_ids}
        students = session.exec(select(Student).where(col(Student.id).in_(shown)).order_by(Student.student_no)).all()
        log_child_reads(session, principal=principal, students=list(students), what="statements")
    return out


XLSX_COLUMNS = ("reference", "student", "name", "plan_kind", "service_days", "days_attended", "exempt", "charge_fen",
                "forgone_fen", "subsidy_fen", "withdrawn_on", "refund_fen", "paid_fen", "balance_fen", "state")
_MONEY = {"charge_fen", "forgone_fen", "subsidy_fen", "refund_fen", "paid_fen", "balance_fen"}


def statements_xlsx(rows: list[StatementPublic], *, month: Month, locale: str = "zh_CN") -> bytes:
    """Finance's sheet: one row per child, headers from the catalogue, money in yuan (exact: fen ÷ 100)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = month.key
    sheet.append([t(f"statement.col.{name}", locale) for name in XLSX_COLUMNS])
    yes, no = t("statement.yes", locale), t("statement.no", locale)
    for row in rows:
        cells = []
        for name in XLSX_COLUMNS:
            value = getattr(row, name)
            if name in _MONEY:
                value = Decimal(value) / 100
            elif name == "exempt":
                value = yes if value else no
            elif name in ("plan_kind", "state"):
                value = t(f"statement.{name}.{value}", locale)
            elif isinstance(value, date):
                value = value.isoformat()
            cells.append(value)
        sheet.append(cells)
    for index, name in enumerate(XLSX_COLUMNS, start=1):
        if name in _MONEY:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = "0.00"
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def statement_documents(rows: list[StatementPublic], *, school: School) -> list:
    """The month's issued statements as documents for families (``documents.statements_pdf``): the
    charge, and a P7.4 refund as a line of its own; drafts are not sent."""
    from central.billing.documents import StatementDocument, StatementLine
    from central.core.i18n import Msg

    docs = []
    for row in rows:
        if row.state != ISSUED:
            continue
        month = Month.parse(row.month)
        lines = [StatementLine(Msg("statement.line.fee", {"month": row.month}), row.charge_fen)]
        if row.refund_fen:
            lines.append(StatementLine(Msg("statement.line.refund", {"day": row.withdrawn_on}), -row.refund_fen))
        docs.append(StatementDocument(
            school_name=school.name, student_name=row.name, student_no=row.student, month=month.first,
            reference=row.reference or "", lines=tuple(lines), exempt=row.exempt, forgone_fen=row.forgone_fen,
        ))
    return docs

