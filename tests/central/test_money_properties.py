"""Properties of the money (issue 15), over a school's month billed, paid and refunded in the database
(Hypothesis): the issued statements sum to the fee income in the ledger; no refund owed back is more
than was paid; an exempt child (P7.3) always pays 0; no month passes the cap (P7.2); and P8.1's split
of the staff share adds up to the share exactly. A few examples worked out by hand come first.

Each example bills a school of its own in one database per test (a copy of the migrated template).
"""

from __future__ import annotations

import itertools
import shutil
from datetime import UTC, date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from central.billing import ledger, rules
from central.billing.models import FeePlan, Payment, Statement
from central.billing.payments import match_payment
from central.billing.statements import Month, bill_month, grant_refund, month_income, paid_by_statement, settle
from central.core.db import make_engine
from central.kiosks.models import Event
from central.programme.models import CareSession, Enrollment, EnrollmentStep, InterestGroup, Term
from central.schools import registry
from central.schools.models import Kiosk, SchoolClass, Student

SEPTEMBER = Month(2030, 9)
DAYS = [date(2030, 9, d) for d in (2, 3, 4, 5, 6, 9, 10, 11)]  # the group's 8 service days
ACTIVE_SINCE = datetime(2030, 8, 20, 2, 0, tzinfo=UTC)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def engine(tmp_path_factory, migrated_db):
    path = tmp_path_factory.mktemp("money") / "central.sqlite3"
    shutil.copy(migrated_db, path)
    engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


_schools = itertools.count(1)

child = st.fixed_dictionaries({
    "exempt": st.booleans(),
    "attended": st.frozensets(st.sampled_from(DAYS)),
    "paid": st.lists(st.integers(1, 12_000), max_size=2),  # payments, matched to the child's statement
    "refund": st.integers(0, 12_000),  # a P7.4 refund granted later (at most the charge)
})
plans = st.tuples(st.sampled_from(list(rules.PlanKind)), st.integers(0, 15_000))


def _school_month(session: Session, *, kids: list[dict], kind: rules.PlanKind, amount: int) -> tuple:
    """A school whose one group met on ``DAYS`` with ``kids`` active in it all month; the kids' check-ins."""
    school = registry.ensure_school(session, code=f"m{next(_schools)}")
    term = Term(school_id=school.id, name="2030 秋", starts_on=date(2030, 9, 1), ends_on=date(2031, 1, 15), created_by="t")
    klass = SchoolClass(school_id=school.id, grade="三年级", name="1班")
    group = InterestGroup(school_id=school.id, name="足球", category="sports", capacity=60, place="操场", grades=["三年级"],
                          weekdays=[1, 2, 3, 4, 5], created_by="t")
    kiosk = Kiosk(school_id=school.id, code="gate-1", secret="ab" * 32)
    session.add_all([term, klass, group, kiosk])
    session.flush()
    session.add(FeePlan(school_id=school.id, term_id=term.id, kind=kind.value, amount_fen=amount, set_by="t"))
    for day in DAYS:
        starts = datetime.combine(day, datetime.min.time(), UTC).replace(hour=8)
        session.add(CareSession(school_id=school.id, group_id=group.id, day=day, starts_at=starts,
                                ends_at=starts.replace(hour=9, minute=20), place="101", created_by="t"))
    seq = itertools.count(1)
    students = []
    for n, kid in enumerate(kids):
        student = Student(school_id=school.id, class_id=klass.id, student_no=f"K{n:03d}", name=f"学生{n}",
                          poverty_registered=kid["exempt"])
        session.add(student)
        session.flush()
        enrollment = Enrollment(school_id=school.id, student_id=student.id, group_id=group.id, state="active",
                                application="书面申请")
        session.add(enrollment)
        session.flush()
        session.add(EnrollmentStep(enrollment_id=enrollment.id, from_state="approved", to_state="active", actor="t",
                                   at=ACTIVE_SINCE))
        for day in kid["attended"]:
            at = datetime.combine(day, datetime.min.time(), UTC).replace(hour=8, minute=30)  # 16:30 in Shanghai
            i = next(seq)
            session.add(Event(id=f"{school.code}-e{i}", school_id=school.id, kiosk_id=kiosk.id, seq=i, kind="checkin", at=at,
                              received_at=at, student=student.student_no, prev="", hash="", sig=""))
        students.append(student)
    session.commit()
    return school, students


@SETTINGS
@given(kids=st.lists(child, min_size=1, max_size=6), plan=plans, cap=st.integers(0, 12_000))
def test_a_months_money_adds_up_whatever_was_billed_paid_and_given_back(engine, kids, plan, cap):
    kind, amount = plan
    with Session(engine) as session:
        session.info["actor"] = "finance"
        school, students = _school_month(session, kids=kids, kind=kind, amount=amount)
        run = bill_month(session, school=school, month=SEPTEMBER, cap_fen=cap, subsidy=rules.Subsidy(), actor="finance",
                         issue=True)
        by_no = {s.student: s for s in run.statements}
        for student, kid in zip(students, kids):
            billed = by_no[student.student_no]
            assert billed.charge_fen <= cap  # P7.2: no month above the cap
            assert not kid["exempt"] or billed.charge_fen == 0  # P7.3: exempt children always 0
            statement = session.get(Statement, billed.id)
            for n, fen in enumerate(kid["paid"]):
                payment = Payment(school_id=school.id, reference=statement.reference, amount_fen=fen, paid_on=DAYS[n],
                                  channel="bank", recorded_by="finance")
                session.add(payment)
                session.flush()
                match_payment(session, school=school, payment=payment, statement=statement, actor="finance")
            grant_refund(session, school=school, statement=statement, refund_fen=min(kid["refund"], statement.charge_fen),
                         withdrawn_on=DAYS[-1], actor="finance")
        session.commit()
        rows = session.exec(select(Statement).where(Statement.school_id == school.id)).all()
        paid = paid_by_statement(session, [s.id for s in rows])
        balances = ledger.balances(session, school=school)
        # The issued statements, less what P7.4 gave back, are the fee income in the ledger.
        fee_income = sum(s.charge_fen - s.refund_fen for s in rows)
        assert balances["fee_income"] == fee_income == month_income(session, school=school, month=SEPTEMBER).fee_income_fen
        # No refund owed back is more than was paid: per statement, and in the fund's books.
        for s in rows:
            assert settle(charge_fen=s.charge_fen, refund_fen=s.refund_fen, paid_fen=paid.get(s.id, 0)).refund_payable_fen <= paid.get(s.id, 0)
        assert 0 <= balances["refunds_payable"] <= sum(paid.values())
        assert balances["bank"] == sum(paid.values())


# --- P8.1: the staff share and its split ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fee", "subsidy", "percent", "periods", "pool", "split"),
    [
        # 80 % of 10,000 = 8,000; 3 : 1 periods -> 6,000 and 2,000
        (9_000, 1_000, 80, {"王": 3, "李": 1}, 8_000, {"王": 6_000, "李": 2_000}),
        # 80 % of 1,001 = 800.8 -> 801 (up); 801 / 3 = 267 each, nothing left over
        (1_001, 0, 80, {"a": 1, "b": 1, "c": 1}, 801, {"a": 267, "b": 267, "c": 267}),
        # 80 % of 1,000 = 800; 800 / 3 = 266 r 2: the two largest remainders (equal: by name a, b) get 1 fen each
        (1_000, 0, 80, {"a": 1, "b": 1, "c": 1}, 800, {"a": 267, "b": 267, "c": 266}),
        # 85 % of 100 = 85; 2 : 5 -> 24.28 and 60.71: 24 + 60 = 84, the 1 fen to the larger remainder (.71)
        (100, 0, 85, {"x": 2, "y": 5}, 85, {"x": 24, "y": 61}),
    ],
    ids=["even split", "rounded up to the fen", "leftover fen by remainder then name", "a larger share"],
)
def test_the_staff_share_and_its_split_by_hand(fee, subsidy, percent, periods, pool, split):
    assert rules.staff_pool(fee_income_fen=fee, subsidy_fen=subsidy, share_percent=percent) == pool
    assert rules.split_by_periods(pool, periods) == split


@given(fee=st.integers(0, 10**9), subsidy=st.integers(0, 10**9), percent=st.integers(80, 100),
       periods=st.dictionaries(st.text(min_size=1, max_size=4), st.integers(0, 500), min_size=1, max_size=12))
def test_the_staff_split_sums_exactly_to_the_share(fee, subsidy, percent, periods):
    pool = rules.staff_pool(fee_income_fen=fee, subsidy_fen=subsidy, share_percent=percent)
    assert pool * 100 >= (fee + subsidy) * percent > (pool - 1) * 100 or pool == 0  # the share, rounded up to the fen
    if sum(periods.values()) == 0:
        return  # nobody served: a pool cannot be split (the rule refuses it; test_staffpay_rules.py)
    split = rules.split_by_periods(pool, periods)
    assert sum(split.values()) == pool
    total = sum(periods.values())
    for name, p in periods.items():
        assert abs(split[name] * total - pool * p) < total  # each within a fen of their exact part
        assert p or split[name] == 0


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(kids=st.lists(st.tuples(st.booleans(), st.none() | st.sampled_from(DAYS[1:])), min_size=1, max_size=6),
       plan=plans, cap=st.integers(0, 12_000))
def test_the_ledgers_fee_income_is_the_statements_charge_less_refund_when_children_left_before_the_month_was_billed(
        engine, kids, plan, cap):
    # Each kid: (exempt, first day out or None). A child that left by written request before the month
    # was billed has its P7.4 refund on its statement from the start; issuing books it with the charge.
    kind, amount = plan
    with Session(engine) as session:
        session.info["actor"] = "finance"
        school, students = _school_month(session, kids=[{"exempt": exempt, "attended": frozenset(DAYS[:2])}
                                                        for exempt, _ in kids], kind=kind, amount=amount)
        for student, (_, out) in zip(students, kids):
            if out is None:
                continue
            enrollment = session.exec(select(Enrollment).where(Enrollment.student_id == student.id)).one()
            enrollment.state, enrollment.withdrawn_on, enrollment.withdrawal_request = "withdrawn", out, "家长书面申请"
            session.add(enrollment)
            session.add(EnrollmentStep(enrollment_id=enrollment.id, from_state="active", to_state="withdrawn", actor="t",
                                       at=ACTIVE_SINCE))
        session.commit()
        run = bill_month(session, school=school, month=SEPTEMBER, cap_fen=cap, subsidy=rules.Subsidy(), actor="finance",
                         issue=True)
        # 8 service days; out from DAYS[k]: DAYS[k:] are given back on a monthly plan — 8 - k of 8 days
        for s, (_, out) in zip(run.statements, kids):
            left = 0 if out is None else len(DAYS) - DAYS.index(out)
            assert s.refund_fen == (s.charge_fen * left // len(DAYS) if kind is rules.PlanKind.MONTHLY else 0)
        balances = ledger.balances(session, school=school)
        assert balances["fee_income"] == sum(s.charge_fen - s.refund_fen for s in run.statements)
        assert balances["receivable"] == balances["fee_income"]  # nothing paid yet: what is owed is the income
        assert ledger.verify(session).ok
