"""The annual report (central/reconciliation/annual.py, P7.6): a small year of s1 with every figure
written out by hand, its XLSX read back, and the command."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime

import openpyxl
import pytest
from sgtest import require_chinese_font
from sqlmodel import select
from typer.testing import CliRunner

from central.billing import documents, ledger
from central.billing.ledger import Line
from central.billing.models import Statement
from central.core import clock
from central.core.audit import AuditLog
from central.kiosks.models import Event, SafetyIncident
from central.programme import schedule
from central.programme.models import CareSession, DutyAssignment, TermCreate
from central.reconciliation import annual
from central.schools.models import School, Student
from schoolgate.cli import app

MON, TUE = date(2030, 9, 2), date(2030, 9, 3)
NEXT_YEAR = date(2031, 1, 6)


def utc(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@pytest.fixture
def year(world, monkeypatch):
    """2030 at s1: groupA (A1) meets Monday and Tuesday 16:00–17:20 Shanghai with staffA on duty, groupB
    (B1, a registered poor family) Monday only. A1 comes both days and is picked up on Monday only
    (Tuesday is unresolved); B1 never comes; C1, not enrolled, is let in once. staffA taps in and out on Monday. The fund: 20,000 fen
    billed, 1,234 refunded, 5,000 subsidy, 16,000 staff pay, 500 volunteer allowances. A session in
    2031 and an incident of 2031 stay out."""
    ids = world.ids
    with world.session() as session:
        session.get(Student, ids["B1"]).poverty_registered = True
        cares = {}
        for key, group, day in (("A-mon", "groupA", MON), ("A-tue", "groupA", TUE), ("B-mon", "groupB", MON),
                                ("A-next", "groupA", NEXT_YEAR)):
            care = CareSession(school_id=ids["s1"], group_id=ids[group], day=day, starts_at=utc(day, 8),
                               ends_at=utc(day, 9, 20), place="101", created_by="test")
            session.add(care)
            session.flush()
            cares[key] = care.id
        session.add(DutyAssignment(session_id=cares["A-mon"], staff_id=ids["staffA"], assigned_by="test"))
        events = [
            ("checkin", "A1", None, str(cares["A-mon"]), utc(MON, 8, 1)),
            ("pickup", "A1", None, str(cares["A-mon"]), utc(MON, 9, 21)),
            ("checkin", "A1", None, str(cares["A-tue"]), utc(TUE, 8, 2)),
            ("override", "C1", None, str(cares["A-mon"]), utc(MON, 8, 3)),  # not expected: takes no place
            ("pickup", "C1", None, str(cares["A-mon"]), utc(MON, 9, 22)),
            ("staff_on", None, f"st{ids['staffA']}", None, utc(MON, 7, 55)),
            ("staff_off", None, f"st{ids['staffA']}", None, utc(MON, 9, 25)),
        ]
        for seq, (kind, student, staff, care, at) in enumerate(events, start=1):
            session.add(Event(id=f"e{seq}", school_id=ids["s1"], kiosk_id=ids["gate-1"], seq=seq, kind=kind, at=at,
                              received_at=at, student=student, staff=staff, session=care, prev="", hash="", sig=""))
        session.add_all([
            SafetyIncident(school_id=ids["s1"], kiosk="gate-1", kind="bad_signature", detail="x", created_at=utc(MON, 9), count=3),
            SafetyIncident(school_id=ids["s1"], kiosk="gate-1", kind="clock_skew", detail="x", created_at=utc(TUE, 9)),
            SafetyIncident(school_id=ids["s1"], kiosk="gate-1", kind="clock_skew", detail="x", created_at=utc(NEXT_YEAR, 9)),
        ])
        s1 = session.get(School, ids["s1"])
        term = schedule.add_term(session, school=s1, actor="t",
                                 data=TermCreate(name="2030 秋", starts_on=date(2030, 9, 2), ends_on=date(2031, 1, 17)))
        for student, month_, state in (("B1", "2030-09", "issued"), ("B1", "2030-10", "draft"), ("B1", "2031-01", "issued")):
            session.add(Statement(school_id=ids["s1"], student_id=ids[student], month=month_, reference=f"SG-{month_}",
                                  state=state, term_id=term.id, plan_kind="monthly", plan_amount_fen=8_000, cap_fen=10_000,
                                  service_days=21, days_in_service=21, days_attended=0, exempt=True, charge_fen=0,
                                  forgone_fen=8_000, billed_by="t"))
        with monkeypatch.context() as booking:
            booking.setattr(clock, "utcnow", lambda: utc(TUE, 10))  # the entries are booked in 2030
            book(session, s1)
        session.commit()
    return world


def book(session, s1: School) -> None:
    for kind, lines in (
        ("statement", [Line("receivable", 20_000), Line("fee_income", credit_fen=20_000)]),
        ("refund", [Line("fee_income", 1_234), Line("refunds_payable", credit_fen=1_234)]),
        ("subsidy", [Line("subsidy_receivable", 5_000), Line("subsidy_income", credit_fen=5_000)]),
        ("staff_pay", [Line("staff_pay", 16_000), Line("volunteer_allowance", 500), Line("staff_pay_payable", credit_fen=16_500)]),
    ):
        ledger.post(session, school=s1, kind=kind, ref=kind, lines=lines, actor="test")


def report_of(world, year_: int = 2030) -> annual.AnnualReport:
    with world.session() as session:
        return annual.annual_report(session, school=session.get(School, world.ids["s1"]), year=year_)


def test_every_figure_of_the_year(year):
    r = report_of(year)
    assert (r.service_days, r.groups, r.children, r.exempt_children) == (2, 2, 2, 1)
    assert r.forgone_fen == 8_000  # September's issued statement; October's draft and 2031 do not count
    # Places: A1 Monday, A1 Tuesday, B1 Monday; taken: A1 twice. 2/3 = 666 per mille, rounded down.
    assert (r.places, r.attended, r.attendance_permille, r.unresolved) == (3, 2, 666, 1)
    assert (r.fee_income_fen, r.refunds_fen, r.subsidy_fen) == (18_766, 1_234, 5_000)
    # 16,000 / (18,766 + 5,000) = 0.6732…: below P8.1's 80 %, and the report says so plainly.
    assert (r.staff_pay_fen, r.volunteer_allowance_fen, r.staff_share_permille) == (16_000, 500, 673)
    assert r.incidents == {"bad_signature": 3, "clock_skew": 1}
    assert [(s.name, s.periods) for s in r.staff] == [("staffA", 2)]


def test_a_year_without_service_is_all_zero_and_a_bad_year_is_refused(year):
    empty = report_of(year, 2029)
    assert (empty.service_days, empty.places, empty.attendance_permille, empty.staff_share_permille) == (0, 0, 0, 0)
    with pytest.raises(Exception) as refused:
        report_of(year, 1999)
    assert refused.value.text("en") == "the year must be between 2000 and 2100, not 1999"


def test_the_xlsx_holds_the_figures_in_chinese(year):
    title, header, rows = annual.report_rows(report_of(year))
    book = openpyxl.load_workbook(io.BytesIO(documents.table_xlsx(title, header, rows)))
    cells = {row[0]: row[1] for row in book.active.iter_rows(min_row=3, values_only=True) if row[0]}
    assert book.active["A1"].value == "示范小学 2030 年度课后服务报告"
    assert cells["服务天数"] == 2 and cells["出勤率"] == "66.6%" and cells["绩效占收入比例"] == "67.3%"
    assert round(cells["服务费收入（已扣退费）"] * 100) == 18_766 and round(cells["退费"] * 100) == 1_234
    assert cells["staffA 服务课时"] == 2


def test_the_command_prints_json_and_writes_a_pdf(year, tmp_path, monkeypatch):
    require_chinese_font()
    monkeypatch.setenv("SCHOOLGATE_DATABASE_URL", year.settings.database_url)
    runner = CliRunner()
    printed = runner.invoke(app, ["central", "report", "--school", "s1", "--year", "2030"])
    assert printed.exit_code == 0, printed.output
    body = json.loads(printed.output)
    assert (body["service_days"], body["attendance_permille"], body["fee_income_fen"]) == (2, 666, 18_766)
    pdf = tmp_path / "2030.pdf"
    written = runner.invoke(app, ["central", "report", "--school", "s1", "--year", "2030", "--out", str(pdf)])
    assert written.exit_code == 0, written.output
    assert pdf.read_bytes().startswith(b"%PDF")
    wrong = runner.invoke(app, ["central", "report", "--school", "s1", "--year", "2030", "--out", str(tmp_path / "r.doc")])
    assert wrong.exit_code != 0 and "r.doc" in wrong.output


def test_the_school_files_and_the_district_sees_who_has_not(year):
    c = year.client
    got = c.get("/api/v1/schools/s1/annual-reports/2030", headers=year.as_("finance1"))
    assert got.status_code == 200, got.text
    before = got.json()
    assert (before["due_on"], before["filed"], before["figures"]["attendance_permille"]) == ("2031-01-31", None, 666)
    filed = c.post("/api/v1/schools/s1/annual-reports/2030", headers=year.as_("admin1"))
    assert (filed.status_code, filed.json()["filed_by"], filed.json()["figures"]["fee_income_fen"]) == (201, "user:admin1", 18_766)
    roll = c.get("/api/v1/district/annual-reports/2030", headers=year.as_("district")).json()
    assert roll["not_filed"] == ["s2"]
    assert [(s["school"], s["filed"]) for s in roll["schools"]] == [("s1", True), ("s2", False)]
    assert (roll["totals"]["children"], roll["totals"]["fee_income_fen"], roll["totals"]["refunds_fen"]) == (2, 18_766, 1_234)
    # What was filed stays as filed when the year's records change later; filing again takes the change.
    with year.session() as session:
        session.get(Student, year.ids["A1"]).poverty_registered = True
        session.commit()
    kept = c.get("/api/v1/schools/s1/annual-reports/2030", headers=year.as_("district")).json()
    assert (kept["filed"]["figures"]["exempt_children"], kept["figures"]["exempt_children"]) == (1, 2)
    again = c.post("/api/v1/schools/s1/annual-reports/2030", headers=year.as_("admin1"))
    assert again.json()["figures"]["exempt_children"] == 2
    with year.session() as session:
        logged = session.exec(select(AuditLog).where(AuditLog.entity.like("annual_filing:%"))).all()
    assert len(logged) == 2  # filed, filed again
    bad = c.get("/api/v1/district/annual-reports/1999?lang=en", headers=year.as_("district"))
    assert bad.status_code == 422
