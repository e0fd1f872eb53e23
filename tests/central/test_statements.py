"""Monthly statements (central/billing/statements.py): the rule for one child's month as a table of
named cases with amounts worked out by hand, its properties (Hypothesis), then a school's September
read from the database — planned sessions with a holiday and a make-up day, check-ins, a withdrawal,
a family registered poor from mid-month — billed twice, issued, and printed by `schoolgate central bill`."""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import UTC, date, datetime, time, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import Session, select
from typer.testing import CliRunner

from central.billing import ledger, rules
from central.billing.models import FeePlan, LedgerEntry, LedgerLine, Statement
from central.billing.statements import (
    ChildMonth,
    Month,
    MonthIncome,
    Settlement,
    bill_child,
    bill_month,
    issue_month,
    month_income,
    reference,
    settle,
)
from central.core import clock
from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.core.errors import Conflict, Invalid
from central.kiosks.models import Event
from central.programme import enrollment as consent
from central.programme import schedule
from central.programme.models import (
    CalendarDayCreate,
    DismissalTimeCreate,
    Enrollment,
    EnrollmentStep,
    InterestGroup,
    TermCreate,
)
from central.schools import registry
from central.schools.models import Kiosk, SchoolClass, Student
from schoolgate import cli
from sgtest import fresh_postgres_database

MONTHLY = rules.FeePlan(rules.PlanKind.MONTHLY, 8_000)
PER_DAY = rules.FeePlan(rules.PlanKind.PER_DAY, 400)
NO_SUBSIDY = rules.Subsidy()


def d(day: int, month: int = 9) -> date:
    return date(2030, month, day)


# September 2030, worked out by hand: 21 weekdays (2-6, 9-13, 16-20, 23-27, 30), less the holiday on
# Tue 10 Sep, plus the make-up Saturday 28 Sep: 21 service days.
SEPTEMBER = frozenset({d(2), d(3), d(4), d(5), d(6), d(9), d(11), d(12), d(13), d(16), d(17), d(18), d(19), d(20),
                       d(23), d(24), d(25), d(26), d(27), d(28), d(30)})
# From Mon 23 Sep: 23, 24, 25, 26, 27, 28 (make-up), 30 -> 7 days.
UNTIL_22 = SEPTEMBER - {d(23), d(24), d(25), d(26), d(27), d(28), d(30)}


def child(*, in_service=SEPTEMBER, attended=(), exempt=False, withdrawn_on=None) -> ChildMonth:
    return ChildMonth(service_days=SEPTEMBER, in_service=frozenset(in_service), attended=frozenset(attended),
                      exempt=exempt, withdrawn_on=withdrawn_on)


@pytest.mark.parametrize(
    ("facts", "plan", "cap", "charge", "forgone", "refund"),
    [
        (child(), MONTHLY, 10_000, 8_000, 0, 0),
        (child(in_service=UNTIL_22, withdrawn_on=d(23)), MONTHLY, 10_000, 8_000, 0, 2_666),  # 8000 x 7 / 21 = 2666.67
        (child(in_service=SEPTEMBER - {d(30)}, withdrawn_on=d(30)), MONTHLY, 10_000, 8_000, 0, 380),  # 8000 / 21 = 380.95
        # P7.4's withdrawal date is the last day served and counts as served: on the last service day
        # (Mon 30 Sep), out from 1 October, nothing of September is left to give back.
        (child(withdrawn_on=date(2030, 10, 1)), MONTHLY, 10_000, 8_000, 0, 0),
        (child(in_service=SEPTEMBER - {d(28), d(30)}, withdrawn_on=d(28)), MONTHLY, 10_000, 8_000, 0, 761),  # 2 / 21: 761.90
        (child(exempt=True, attended={d(2), d(3)}), MONTHLY, 10_000, 0, 8_000, 0),
        (child(exempt=True, in_service=UNTIL_22, withdrawn_on=d(23)), MONTHLY, 10_000, 0, 8_000, 0),  # paid nothing, nothing back
        (child(), rules.FeePlan(rules.PlanKind.MONTHLY, 10_000), 10_000, 10_000, 0, 0),
        (child(), rules.FeePlan(rules.PlanKind.MONTHLY, 10_000), 9_000, 9_000, 0, 0),  # the cap lowered after the plan was set
        (child(attended={d(2), d(3), d(4), d(28), d(29)}), PER_DAY, 10_000, 1_600, 0, 0),  # Sun 29 is no service day
        (child(in_service=UNTIL_22, attended={d(20), d(23)}, withdrawn_on=d(23)), PER_DAY, 10_000, 400, 0, 0),
        (child(attended=SEPTEMBER), rules.FeePlan(rules.PlanKind.PER_DAY, 435), 9_000, 9_000, 0, 0),  # 21 x 435 = 9135
        (child(exempt=True, attended={d(2), d(3), d(4)}), PER_DAY, 10_000, 0, 1_200, 0),
    ],
    ids=["monthly", "withdrawn from the 23rd (make-up day after)", "out from the last service day (withdrawn on the 28th)",
         "withdrawal on the last service day: refund 0",
         "out from the make-up day (withdrawn on the 27th)", "exempt", "exempt and withdrawn", "a plan at the cap", "cap lowered later",
         "per day attended", "per day, withdrawn: no refund", "per day passing a lower cap", "exempt per day: forgone"],
)
def test_a_childs_month(facts, plan, cap, charge, forgone, refund):
    bill = bill_child(facts, plan, cap_fen=cap, subsidy=NO_SUBSIDY)
    assert (bill.charge_fen, bill.forgone_fen, bill.refund_fen) == (charge, forgone, refund)


def test_the_subsidy_is_the_districts_per_child_whatever_the_child_pays():
    rule = rules.Subsidy(per_child_month_fen=2_000, per_period_fen=150)  # per period is staff pay's, not a child's
    assert bill_child(child(), MONTHLY, cap_fen=10_000, subsidy=rule).subsidy_fen == 2_000
    assert bill_child(child(exempt=True), MONTHLY, cap_fen=10_000, subsidy=rule).subsidy_fen == 2_000


@pytest.mark.parametrize(
    ("charge", "refund", "paid", "balance", "back", "over"),
    [
        (8_000, 0, 0, 8_000, 0, 0),
        (8_000, 0, 8_000, 0, 0, 0),
        (8_000, 2_666, 8_000, 0, 2_666, 0),  # paid in full, then withdrew: the refund goes back
        (8_000, 2_666, 0, 5_334, 0, 0),  # not paid yet: owes the rest only
        (8_000, 2_666, 6_000, 0, 666, 0),  # paid more than the rest
        (8_000, 0, 9_000, 0, 0, 1_000),  # an overpayment is not a refund
    ],
    ids=["unpaid", "paid", "withdrawn after paying", "withdrawn before paying", "withdrawn, paid part", "overpaid"],
)
def test_where_a_statement_stands(charge, refund, paid, balance, back, over):
    assert settle(charge_fen=charge, refund_fen=refund, paid_fen=paid) == Settlement(balance, back, over)


days = st.frozensets(st.sampled_from(sorted(SEPTEMBER)))
plans = st.builds(rules.FeePlan, st.sampled_from(list(rules.PlanKind)), st.integers(0, 20_000))


@given(in_service=days, attended=st.frozensets(st.dates(d(1), d(30))), exempt=st.booleans(), plan=plans,
       cap=st.integers(0, 20_000), out=st.one_of(st.none(), st.sampled_from(sorted(SEPTEMBER))), paid=st.integers(0, 30_000))
def test_exempt_pays_nothing_no_month_passes_the_cap_no_refund_passes_what_was_paid(in_service, attended, exempt, plan,
                                                                                     cap, out, paid):
    facts = ChildMonth(service_days=SEPTEMBER, in_service=in_service, attended=attended, exempt=exempt, withdrawn_on=out)
    bill = bill_child(facts, plan, cap_fen=cap, subsidy=NO_SUBSIDY)
    assert bill.charge_fen <= cap
    assert not exempt or bill.charge_fen == 0
    assert 0 <= bill.refund_fen <= bill.charge_fen
    money = settle(charge_fen=bill.charge_fen, refund_fen=bill.refund_fen, paid_fen=paid)
    assert money.refund_payable_fen <= min(paid, bill.refund_fen)
    # what is kept plus what is owed is the charge less the refund, whatever was paid
    assert paid - money.refund_payable_fen - money.overpaid_fen + money.balance_fen == bill.charge_fen - bill.refund_fen


@pytest.mark.parametrize(("text", "month", "last"), [("2030-09", Month(2030, 9), d(30)), ("2030-12", Month(2030, 12), date(2030, 12, 31)),
                                                     ("2032-02", Month(2032, 2), date(2032, 2, 29))])
def test_a_month_and_its_last_day(text, month, last):
    assert (Month.parse(text), Month.parse(text).last) == (month, last)


@pytest.mark.parametrize("text", ["2030-13", "2030-9", "30-09", "1999-12", "2030-09-01"])
def test_a_month_that_is_no_month_is_refused(text):
    with pytest.raises(Invalid):
        Month.parse(text)


def test_the_reference_a_parent_writes():
    assert reference(Month(2026, 12), 123) == "SG202612-000123"


# --- a school's September, from the database ------------------------------------------------------------

T = datetime(2030, 8, 20, 2, 0, tzinfo=UTC)  # before the month: when enrollments became active


class Clock:
    """central's clock, moved by the test (audit rows and enrollment steps take their time from it)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def september(request, tmp_path, monkeypatch):
    """SQLite by default; ``@pytest.mark.parametrize("september", ["postgres"], indirect=True)`` for the real server."""
    with ExitStack() as stack:
        yield from _september(request, tmp_path, monkeypatch, stack)


def _september(request, tmp_path, monkeypatch, stack):
    now = Clock(T)
    monkeypatch.setattr(clock, "utcnow", now)
    if getattr(request, "param", "sqlite") == "postgres":
        url = stack.enter_context(fresh_postgres_database(migrated=True))
    else:
        url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    settings = Settings(database_url=url)
    with Session(engine) as session:
        session.info["actor"] = "test"
        school = registry.ensure_school(session, code="s1")
        term = schedule.add_term(session, school=school, actor="t",
                                 data=TermCreate(name="2030 秋", starts_on=d(1), ends_on=date(2031, 1, 15)))
        session.add(FeePlan(school_id=school.id, term_id=term.id, kind="monthly", amount_fen=8_000, set_by="t"))
        for season in ("summer", "winter"):
            schedule.set_dismissal(session, school=school, actor="t",
                                   data=DismissalTimeCreate(grade="三年级", season=season, dismissal=time(16, 0)))
        schedule.set_calendar_day(session, school=school, actor="t", data=CalendarDayCreate(day=d(10), kind="holiday"))
        schedule.set_calendar_day(session, school=school, actor="t", data=CalendarDayCreate(day=d(28), kind="makeup"))
        klass = SchoolClass(school_id=school.id, grade="三年级", name="1班")
        session.add(klass)
        session.flush()
        kids = {no: Student(school_id=school.id, class_id=klass.id, student_no=no, name=f"学生{no}")
                for no in ("S1", "S2", "S3", "S4", "S5", "S6")}
        group = InterestGroup(school_id=school.id, name="足球", category="sports", capacity=30, place="操场",
                              grades=["三年级"], weekdays=[1, 2, 3, 4, 5], created_by="t")
        kiosk = Kiosk(school_id=school.id, code="gate-1", secret="ab" * 32)
        session.add_all([*kids.values(), group, kiosk])
        session.commit()
        planned = schedule.plan_sessions(session, school=school, start=d(1), end=date(2030, 10, 31), actor="t",
                                         settings=settings)
        assert sorted(s.day for s in planned if s.day.month == 9) == sorted(SEPTEMBER)  # the holiday left out, the make-up day in
        ids = {no: kid.id for no, kid in kids.items()}
        for no in ("S1", "S2", "S3", "S6"):
            row = Enrollment(school_id=school.id, student_id=ids[no], group_id=group.id, state="active", application="书面申请")
            session.add(row)
            session.flush()
            session.add(EnrollmentStep(enrollment_id=row.id, from_state="approved", to_state="active", actor="t", at=T))
        late = Enrollment(school_id=school.id, student_id=ids["S5"], group_id=group.id, state="active", application="书面申请")
        session.add(late)
        session.flush()  # active from 5 October: not in September's service
        session.add(EnrollmentStep(enrollment_id=late.id, from_state="approved", to_state="active", actor="t",
                                   at=datetime(2030, 10, 5, 2, 0, tzinfo=UTC)))
        session.commit()
        # S1 came on three days (16:30 in Shanghai); one tap at 01:00 on 1 October local is October's.
        taps = [("S1", datetime(2030, 9, day, 8, 30, tzinfo=UTC)) for day in (2, 3, 4)]
        taps += [("S1", datetime(2030, 9, 30, 17, 0, tzinfo=UTC)), ("S4", datetime(2030, 9, 5, 8, 30, tzinfo=UTC))]
        for seq, (no, at) in enumerate(taps, start=1):
            session.add(Event(id=f"e{seq}", school_id=school.id, kiosk_id=kiosk.id, seq=seq, kind="checkin", at=at,
                              received_at=at, student=no, prev="", hash="", sig=""))
        session.commit()
        # S2's family asks in writing to stop; out from Mon 23 September.
        now.now = datetime(2030, 9, 18, 3, 0, tzinfo=UTC)
        consent.withdraw(session, school=school, enrollment_id=session.exec(
            select(Enrollment.id).where(Enrollment.student_id == ids["S2"])).one(), request="家长书面申请退出",
            effective_on=d(23), actor="t")
        # S3's family is registered poor from 15 September; S6's only from 3 October.
        for no, when in (("S3", datetime(2030, 9, 15, 1, 0, tzinfo=UTC)), ("S6", datetime(2030, 10, 3, 1, 0, tzinfo=UTC))):
            now.now = when
            kid = session.get(Student, ids[no])
            kid.poverty_registered = True
            session.add(kid)
            session.commit()
        now.now = datetime(2030, 10, 8, 1, 0, tzinfo=UTC)
    yield engine, url, now, ids
    engine.dispose()


def _bill(engine, month="2030-09", *, issue=False, cap=10_000, subsidy=NO_SUBSIDY):
    with Session(engine) as session:
        session.info["actor"] = "finance"
        return bill_month(session, school=registry.get_school(session, "s1"), month=Month.parse(month), cap_fen=cap,
                          subsidy=subsidy, actor="finance", issue=issue)


def _lines(run) -> dict[str, tuple]:
    return {s.student: (s.charge_fen, s.exempt, s.forgone_fen, s.withdrawn_on, s.refund_fen, s.service_days,
                        s.days_in_service, s.days_attended) for s in run.statements}


def test_a_month_with_a_holiday_a_make_up_day_a_withdrawal_and_a_child_exempt_from_mid_month(september):
    engine, *_ = september
    run = _bill(engine, subsidy=rules.Subsidy(per_child_month_fen=2_000))
    assert _lines(run) == {
        "S1": (8_000, False, 0, None, 0, 21, 21, 3),  # the 1 October tap is October's
        "S2": (8_000, False, 0, d(23), 2_666, 21, 14, 0),  # 7 of 21 days left: 8000 x 7 / 21
        "S3": (0, True, 8_000, None, 0, 21, 21, 0),  # registered on 15 September: exempt all month
        "S6": (8_000, False, 0, None, 0, 21, 21, 0),  # registered in October: September is owed
    }  # S4 came without an enrollment, S5 was active only from October: no statement
    assert (run.created, run.children, run.exempt, run.charge_fen, run.forgone_fen, run.subsidy_fen, run.refund_fen) == (
        4, 4, 1, 24_000, 8_000, 8_000, 2_666)
    assert all(s.state == "draft" and s.reference == f"SG203009-{s.id:06d}" for s in run.statements)
    october = _bill(engine, "2030-10")
    assert {s.student: (s.charge_fen, s.exempt) for s in october.statements} == {
        "S1": (8_000, False), "S3": (0, True), "S5": (8_000, False), "S6": (0, True)}


def test_billing_a_month_again_doubles_nothing_and_redoes_drafts_only(september):
    engine, _, now, ids = september
    first = _bill(engine)
    again = _bill(engine)
    assert (again.created, again.updated, again.unchanged, again.removed) == (0, 0, 4, 0)
    assert [s.reference for s in again.statements] == [s.reference for s in first.statements]
    with Session(engine) as session:  # the school switches to per day while the month is still a draft
        plan = session.exec(select(FeePlan)).one()
        plan.kind, plan.amount_fen = "per_day", 400
        session.add(plan)
        session.commit()
    per_day = _bill(engine)
    assert (per_day.updated, per_day.unchanged) == (4, 0)  # the plan is on every statement
    assert {s.student: (s.charge_fen, s.forgone_fen) for s in per_day.statements} == {
        "S1": (1_200, 0), "S2": (0, 0), "S3": (0, 0), "S6": (0, 0)}
    issued = _bill(engine, issue=True)
    assert issued.issued == 4 and {s.state for s in issued.statements} == {"issued"}
    with Session(engine) as session:  # the plan goes back to monthly: issued statements keep their charge
        plan = session.exec(select(FeePlan)).one()
        plan.kind, plan.amount_fen = "monthly", 8_000
        session.add(plan)
        session.commit()
    kept = _bill(engine)
    assert [s.charge_fen for s in kept.statements] == [1_200, 0, 0, 0]
    assert kept.kept == [s.reference for s in kept.statements if s.student in ("S1", "S2", "S6")]
    with Session(engine) as session:
        assert len(session.exec(select(Statement)).all()) == 4


def test_a_withdrawal_after_the_statement_was_issued_adds_its_refund_once(september):
    engine, _, now, ids = september
    _bill(engine, issue=True)
    now.now = datetime(2030, 9, 27, 3, 0, tzinfo=UTC)
    with Session(engine) as session:
        session.info["actor"] = "test"
        school = registry.get_school(session, "s1")
        consent.withdraw(session, school=school, enrollment_id=session.exec(
            select(Enrollment.id).where(Enrollment.student_id == ids["S1"])).one(), request="转学", effective_on=d(30),
            actor="t")
    run = _bill(engine)
    s1 = next(s for s in run.statements if s.student == "S1")
    assert (s1.withdrawn_on, s1.refund_fen, s1.balance_fen) == (d(30), 380, 7_620)  # the last service day: 1 / 21
    assert run.refunds == [s1.reference]
    assert _bill(engine).refunds == []
    with Session(engine) as session:  # P7.4 in the ledger: unpaid, so the refund comes off what is owed, once
        entries = [(e.kind, e.ref) for e in session.exec(select(LedgerEntry).where(LedgerEntry.ref == s1.reference)
                                                          .order_by(LedgerEntry.seq))]
        assert entries == [("statement", s1.reference), ("refund", s1.reference)]
        refund = session.exec(select(LedgerEntry).where(LedgerEntry.kind == "refund", LedgerEntry.ref == s1.reference)).one()
        lines = session.exec(select(LedgerLine).where(LedgerLine.entry_id == refund.id).order_by(LedgerLine.id)).all()
        assert [(x.account, x.debit_fen, x.credit_fen) for x in lines] == [("fee_income", 380, 0), ("receivable", 0, 380)]
        assert ledger.verify(session).ok


def test_a_child_whose_term_has_no_fee_plan_refuses_the_run(september):
    engine, *_ = september
    with Session(engine) as session:
        session.delete(session.exec(select(FeePlan)).one())
        session.commit()
    with pytest.raises(Conflict) as refused:
        _bill(engine)
    assert refused.value.text("en") == "term 2030 秋 has no fee plan: 2030-09 cannot be billed"
    with Session(engine) as session:
        assert session.exec(select(Statement)).all() == []


def test_issuing_the_month_issues_its_drafts_once(september):
    engine, *_ = september
    _bill(engine)
    with Session(engine) as session:
        school = registry.get_school(session, "s1")
        assert issue_month(session, school=school, month=Month(2030, 9), actor="finance") == 4
        assert issue_month(session, school=school, month=Month(2030, 9), actor="finance") == 0


def test_the_command_bills_the_month_prints_a_summary_and_with_json_the_statements(september, tmp_path, monkeypatch):
    _, url, *_ = september
    for name, value in (("DATABASE_URL", url), ("SIGNING_KEY_FILE", str(tmp_path / "k.pem")),
                        ("SUBSIDY_PER_CHILD_MONTH_FEN", "1500")):
        monkeypatch.setenv(f"SCHOOLGATE_{name}", value)
    cmd = ["--lang", "en", "central", "bill", "--school", "s1", "--month", "2030-09"]
    done = CliRunner().invoke(cli.app, cmd)
    assert done.exit_code == 0, done.stderr
    assert done.stdout == ("s1 2030-09: 4 children, 4 new, 0 updated, 0 unchanged, 0 removed, 0 issued; charged 240.00 CNY, "
                           "forgone 80.00 CNY (1 exempt), subsidy 60.00 CNY, refunds 26.66 CNY\n")
    shown = CliRunner().invoke(cli.app, [*cmd, "--json"])
    assert shown.exit_code == 0, shown.stderr
    assert [(s["student"], s["charge_fen"], s["subsidy_fen"]) for s in json.loads(shown.stdout)] == [
        ("S1", 8_000, 1_500), ("S2", 8_000, 1_500), ("S3", 0, 1_500), ("S6", 8_000, 1_500)]
    bad = CliRunner().invoke(cli.app, [*cmd[:-1], "Sept"])
    assert (bad.exit_code, bad.stderr) == (2, "a month is YYYY-MM, not Sept\n")


def test_leaving_one_group_while_staying_in_another_is_no_withdrawal(september):
    engine, url, now, ids = september
    with Session(engine) as session:
        session.info["actor"] = "test"
        school = registry.get_school(session, "s1")
        art = InterestGroup(school_id=school.id, name="美术", category="arts", capacity=30, place="美术室",
                            grades=["三年级"], weekdays=[3], created_by="t")
        session.add(art)
        session.flush()
        row = Enrollment(school_id=school.id, student_id=ids["S1"], group_id=art.id, state="active", application="书面申请")
        session.add(row)
        session.flush()
        session.add(EnrollmentStep(enrollment_id=row.id, from_state="approved", to_state="active", actor="t", at=T))
        session.commit()
        schedule.plan_sessions(session, school=school, start=d(1), end=d(30), group_id=art.id, actor="t",
                               settings=Settings(database_url=url))
        football = session.exec(select(Enrollment.id).where(Enrollment.student_id == ids["S1"],
                                                            Enrollment.group_id != art.id)).one()
        consent.withdraw(session, school=school, enrollment_id=football, request="只上美术", effective_on=d(23), actor="t")
    s1 = next(s for s in _bill(engine).statements if s.student == "S1")
    # in service: football's 14 days to the 22nd, and art's Wednesday 25th and the make-up Saturday 28th
    assert (s1.charge_fen, s1.withdrawn_on, s1.refund_fen, s1.service_days, s1.days_in_service) == (8_000, None, 0, 21, 16)


def test_a_child_out_of_the_whole_month_loses_a_draft_but_an_issued_statement_is_kept_and_listed(september):
    engine, _, now, ids = september

    def out_from_the_first(no: str) -> None:
        with Session(engine) as session:
            session.info["actor"] = "test"
            consent.withdraw(session, school=registry.get_school(session, "s1"), enrollment_id=session.exec(
                select(Enrollment.id).where(Enrollment.student_id == ids[no])).one(), request="开学前退出",
                effective_on=d(1), actor="t")

    _bill(engine)
    out_from_the_first("S3")
    run = _bill(engine, issue=True)
    assert (run.removed, [s.student for s in run.statements]) == (1, ["S1", "S2", "S6"])
    out_from_the_first("S6")
    again = _bill(engine)
    s6 = next(s for s in again.statements if s.student == "S6")
    assert (again.removed, again.kept, s6.charge_fen) == (0, [s6.reference], 8_000)


def test_the_months_income_counts_issued_statements_only(september):
    engine, *_ = september
    _bill(engine, subsidy=rules.Subsidy(per_child_month_fen=2_000))
    with Session(engine) as session:
        school = registry.get_school(session, "s1")
        assert month_income(session, school=school, month=Month(2030, 9)) == MonthIncome(0, 0, 0, 0, 0, 0)  # drafts
    _bill(engine, issue=True, subsidy=rules.Subsidy(per_child_month_fen=2_000))
    with Session(engine) as session:
        school = registry.get_school(session, "s1")
        income = month_income(session, school=school, month=Month(2030, 9))
    # S1, S2 and S6 charged 8,000 each, S3 exempt (8,000 forgone); S2's refund 2,666; four subsidies of 2,000
    assert income == MonthIncome(charged_fen=24_000, refunded_fen=2_666, received_fen=0, subsidy_fen=8_000,
                                 forgone_fen=8_000, children=4)
    assert income.fee_income_fen == 21_334


def test_each_new_statement_is_one_audit_row_a_create_holding_its_reference(september):
    from central.core.audit import AuditLog

    engine, *_ = september
    run = _bill(engine)
    with Session(engine) as session:
        logged = session.exec(select(AuditLog.action, AuditLog.entity, AuditLog.after)
                              .where(AuditLog.action.startswith("statement."))).all()
    assert sorted((action, entity) for action, entity, _ in logged) == sorted(
        ("statement.create", f"statement:{s.id}") for s in run.statements)
    assert {json.loads(after)["reference"] for *_, after in logged} == {s.reference for s in run.statements}


def test_a_withdrawal_on_the_last_service_day_refunds_nothing_of_the_month(september):
    # P7.4's withdrawal date counts as a day served: the family's request to stop after Mon 30 September,
    # the month's last service day, is recorded as out from 1 October. September is owed in full.
    engine, _, now, ids = september
    with Session(engine) as session:
        session.info["actor"] = "test"
        consent.withdraw(session, school=registry.get_school(session, "s1"), enrollment_id=session.exec(
            select(Enrollment.id).where(Enrollment.student_id == ids["S1"])).one(), request="家长书面申请：9月30日后退出",
            effective_on=date(2030, 10, 1), actor="t")
    s1 = next(s for s in _bill(engine).statements if s.student == "S1")
    assert (s1.charge_fen, s1.withdrawn_on, s1.refund_fen, s1.days_in_service) == (8_000, None, 0, 21)


@pytest.mark.parametrize("september", ["sqlite", "postgres"], indirect=True)
def test_a_month_billed_and_issued_in_one_run_is_the_same_on_either_back_end_and_its_ledger_holds_the_refund(september):
    # On PostgreSQL a run writes its new statements past the ORM (bench/district.py) and reads the
    # children's local dates in the database: the same statements, audit rows and ledger as the ORM's.
    from central.core import audit
    from central.core.audit import AuditLog

    engine, *_ = september
    run = _bill(engine, issue=True, subsidy=rules.Subsidy(per_child_month_fen=2_000))
    assert _lines(run) == {
        "S1": (8_000, False, 0, None, 0, 21, 21, 3),  # 16:30 on 2, 3, 4 Sep; the 01:00 1 October (local) tap is October's
        "S2": (8_000, False, 0, d(23), 2_666, 21, 14, 0),
        "S3": (0, True, 8_000, None, 0, 21, 21, 0),
        "S6": (8_000, False, 0, None, 0, 21, 21, 0),
    }
    assert (run.created, run.issued) == (4, 4)
    assert all(s.state == "issued" and s.reference == f"SG203009-{s.id:06d}" for s in run.statements)
    with Session(engine) as session:
        logged = session.exec(select(AuditLog.entity, AuditLog.actor, AuditLog.after)
                              .where(AuditLog.action == "statement.create").order_by(AuditLog.seq)).all()
        stored = {s.id: s for s in session.exec(select(Statement))}
        assert [entity for entity, *_ in logged] == [f"statement:{s.id}" for s in run.statements]  # in student order
        for entity, actor, after in logged:
            row = json.loads(after)
            mine = stored[int(entity.split(":")[1])]
            assert actor == "finance"
            assert (row["reference"], row["state"], row["issued_by"], row["charge_fen"], row["withdrawn_on"]) == (
                mine.reference, "issued", "finance", mine.charge_fen, mine.withdrawn_on and mine.withdrawn_on.isoformat())
            assert row["issued_at"] == "2030-10-08T01:00:00+00:00"
        assert audit.verify(session).ok
        # 24,000 charged (S3 exempt) less S2's refund of 2,666 (its statement holds it from the start: it
        # left before the month was billed); a subsidy of 2,000 for each of the four
        balances = ledger.balances(session, school=registry.get_school(session, "s1"))
        assert {k: balances.get(k) for k in ("receivable", "fee_income", "subsidy_receivable", "subsidy_income")} == {
            "receivable": 21_334, "fee_income": 21_334, "subsidy_receivable": 8_000, "subsidy_income": 8_000}
        assert month_income(session, school=registry.get_school(session, "s1"), month=Month(2030, 9)).fee_income_fen == 21_334


def test_days_an_enrollment_held_that_are_no_run_of_its_groups_days_are_read_one_by_one(september, monkeypatch):
    # month_facts reads each enrollment's first and last day held and how many; were the rule of who is
    # in ever to leave a day out in the middle (here: Wed 11 September), the days are read, not assumed.
    from central.billing import statements
    from central.programme.models import CareSession

    asked = statements.enrollment_in_service
    monkeypatch.setattr(statements, "enrollment_in_service", lambda day: sa.and_(asked(day), CareSession.day != d(11)))
    engine, *_ = september
    lines = _lines(_bill(engine))
    assert (lines["S1"][6], lines["S2"][6], lines["S3"][6]) == (20, 13, 20)  # 21 and 14 days, less the 11th
