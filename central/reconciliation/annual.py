"""A school's annual report (P7.6): before February, the previous year's service, money and staff.

``annual_report`` reads one school's calendar year (its own dates) from what central already keeps —
the sessions and their reconciliation (service days, groups, children, attendance), the service fund's
ledger (fee income net of refunds, subsidy, refunds, staff pay), the staff's periods served (P6.3) and
the safety incidents — and ``report_rows`` lays it out as label/value rows for ``documents.table_xlsx``
and ``table_pdf``. Money is integer fen throughout; rates are whole per mille, rounded down, so a
figure never claims more than happened.

Attendance: each expected child on each session of the year is one place; the rate is the places
taken (the child checked in to that session) over all places.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta

from sqlmodel import Session, col, func, select

from central.billing import ledger, staffpay
from central.billing.models import LedgerEntry, LedgerLine, Statement
from central.billing.statements import ISSUED
from central.core import clock
from central.core.errors import Invalid
from central.core.i18n import Msg
from central.kiosks.models import SafetyIncident
from central.programme.models import CareSession, Staff
from central.reconciliation.daily import reconcile_day
from central.reconciliation.models import (
    AnnualFiling,
    AnnualFilingPublic,
    AnnualReportOut,
    DistrictRollup,
    DistrictSchoolLine,
)
from central.schools.models import School, Student


@dataclass(frozen=True)
class StaffLine:
    name: str
    kind: str
    periods: int


@dataclass
class AnnualReport:
    school: str
    school_name: str
    year: int
    service_days: int = 0
    groups: int = 0
    children: int = 0  # distinct children expected on at least one session of the year
    exempt_children: int = 0  # P7.3: among them, of registered poor families
    forgone_fen: int = 0  # P7.3: what the exempt would have paid, on the year's issued statements
    places: int = 0  # expected child × session
    attended: int = 0  # of those places, checked in
    unresolved: int = 0  # checked in, no departure recorded: safety items of the year
    fee_income_fen: int = 0  # net of refunds (the ledger's fee income)
    subsidy_fen: int = 0
    refunds_fen: int = 0
    staff_pay_fen: int = 0
    volunteer_allowance_fen: int = 0
    incidents: dict[str, int] = field(default_factory=dict)  # kind -> count
    staff: list[StaffLine] = field(default_factory=list)

    @property
    def attendance_permille(self) -> int:
        return self.attended * 1000 // self.places if self.places else 0

    @property
    def staff_share_permille(self) -> int:
        """P8.1: staff performance pay over (fee income + subsidy); at least 800 when the rule was kept."""
        income = self.fee_income_fen + self.subsidy_fen
        return self.staff_pay_fen * 1000 // income if income > 0 else 0


def annual_report(session: Session, *, school: School, year: int) -> AnnualReport:
    if not 2000 <= year <= 2100:
        raise Invalid("report.year", year=year)
    start, end = date(year, 1, 1), date(year, 12, 31)
    report = AnnualReport(school=school.code, school_name=school.name, year=year)
    days = session.exec(
        select(CareSession.day).where(CareSession.school_id == school.id, col(CareSession.day) >= start,
                                      col(CareSession.day) <= end).distinct().order_by(col(CareSession.day))
    ).all()
    report.service_days = len(days)
    report.groups = session.exec(
        select(func.count(func.distinct(CareSession.group_id))).where(
            CareSession.school_id == school.id, col(CareSession.day) >= start, col(CareSession.day) <= end)
    ).one()
    children: set[str] = set()
    for day in days:
        for result in reconcile_day(session, school=school, day=day)["sessions"]:
            expected = set(result["expected"])
            children |= expected
            report.places += len(expected)
            report.attended += len(expected & set(result["checked_in"]))
            report.unresolved += len(result["unresolved"])
    report.children = len(children)
    if children:
        report.exempt_children = session.exec(
            select(func.count()).select_from(Student).where(
                Student.school_id == school.id, col(Student.student_no).in_(children), col(Student.poverty_registered))
        ).one()
    report.forgone_fen = int(session.exec(
        select(func.coalesce(func.sum(Statement.forgone_fen), 0)).where(
            Statement.school_id == school.id, Statement.state == ISSUED, col(Statement.month).like(f"{year}-%"))
    ).one())
    summary = ledger.spending_summary(session, school=school, start=start, end=end)
    report.fee_income_fen, report.subsidy_fen = summary.income["fee_income"], summary.income["subsidy_income"]
    report.staff_pay_fen = summary.spent["staff_pay"]
    report.volunteer_allowance_fen = summary.spent["volunteer_allowance"]
    since, until = _bounds(school, start, end)
    report.refunds_fen = int(session.exec(  # P7.4: fee income given back in refund entries of the year
        select(func.coalesce(func.sum(LedgerLine.debit_fen), 0))
        .join(LedgerEntry, col(LedgerEntry.id) == LedgerLine.entry_id)
        .where(LedgerEntry.school_id == school.id, LedgerEntry.kind == "refund", LedgerLine.account == "fee_income",
               LedgerEntry.at >= since, LedgerEntry.at < until)
    ).one())
    report.incidents = {
        kind: int(n) for kind, n in session.exec(
            select(SafetyIncident.kind, func.sum(SafetyIncident.count))
            .where(SafetyIncident.school_id == school.id, SafetyIncident.created_at >= since, SafetyIncident.created_at < until)
            .group_by(SafetyIncident.kind).order_by(SafetyIncident.kind)
        ).all()
    }
    served = staffpay.served_between(session, school=school, start=start, end=end)
    people = session.exec(select(Staff).where(Staff.school_id == school.id).order_by(col(Staff.id))).all()
    report.staff = [StaffLine(p.name, p.kind, served[p.id].periods) for p in people if p.id in served and served[p.id].periods]
    return report


def _bounds(school: School, start: date, end: date) -> tuple[datetime, datetime]:
    zone = clock.zone(school)
    return datetime.combine(start, time(0), zone), datetime.combine(end + timedelta(days=1), time(0), zone)


def report_rows(report: AnnualReport) -> tuple[Msg, list[Msg], list[list]]:
    """The report as (title, header, rows) for ``documents.table_xlsx`` / ``table_pdf``."""
    from central.billing.documents import Money

    def permille(value: int) -> str:
        return f"{value // 10}.{value % 10}%"

    rows: list[list] = [
        [Msg("report.service_days"), report.service_days],
        [Msg("report.groups"), report.groups],
        [Msg("report.children"), report.children],
        [Msg("report.exempt_children"), report.exempt_children],
        [Msg("report.forgone"), Money(report.forgone_fen)],
        [Msg("report.attendance"), permille(report.attendance_permille)],
        [Msg("report.unresolved"), report.unresolved],
        [Msg("report.fee_income"), Money(report.fee_income_fen)],
        [Msg("report.subsidy"), Money(report.subsidy_fen)],
        [Msg("report.refunds"), Money(report.refunds_fen)],
        [Msg("report.staff_pay"), Money(report.staff_pay_fen)],
        [Msg("report.staff_share"), permille(report.staff_share_permille)],
        [Msg("report.volunteer_allowance"), Money(report.volunteer_allowance_fen)],
        [Msg("report.incidents"), sum(report.incidents.values())],
    ]
    rows += [[Msg("report.incident_kind", {"kind": kind}), n] for kind, n in report.incidents.items()]
    rows += [[Msg("report.staff_periods", {"name": s.name}), s.periods] for s in report.staff]
    title = Msg("report.title", {"school": report.school_name, "year": report.year})
    return title, [Msg("report.item"), Msg("report.value")], rows


# --- filing (P7.6: every school reports before February; the district sees who has not) ---------------


def due_on(year: int) -> date:
    """P7.6: the year's report is due before February of the next year."""
    return date(year + 1, 1, 31)


def figures(report: AnnualReport) -> dict:
    shown = asdict(report)
    shown.update(attendance_permille=report.attendance_permille, staff_share_permille=report.staff_share_permille)
    return shown


def _filing(session: Session, school: School, year: int) -> AnnualFiling | None:
    return session.exec(select(AnnualFiling).where(AnnualFiling.school_id == school.id, AnnualFiling.year == year)).first()


def _filing_public(school: School, row: AnnualFiling) -> AnnualFilingPublic:
    return AnnualFilingPublic(school=school.code, year=row.year, filed_by=row.filed_by, filed_at=clock.as_utc(row.filed_at),
                              figures=row.figures)


def read_report(session: Session, *, school: School, year: int) -> AnnualReportOut:
    """The year's figures as of now, and what the school filed, if it has."""
    row = _filing(session, school, year)
    return AnnualReportOut(school=school.code, year=year, due_on=due_on(year).isoformat(),
                           figures=figures(annual_report(session, school=school, year=year)),
                           filed=_filing_public(school, row) if row else None)


def file_report(session: Session, *, school: School, year: int, actor: str) -> AnnualFilingPublic:
    """The school admin files the year's report: its figures as of now are kept. Filing again (a
    correction) replaces them; the audit log keeps both."""
    shown = figures(annual_report(session, school=school, year=year))
    row = _filing(session, school, year) or AnnualFiling(school_id=school.id, year=year, figures=shown, filed_by=actor)
    row.figures, row.filed_by, row.filed_at = shown, actor, clock.utcnow()
    session.add(row)
    session.commit()
    return _filing_public(school, row)


ROLLED_UP = ("service_days", "groups", "children", "exempt_children", "forgone_fen", "places", "attended", "unresolved",
             "fee_income_fen", "subsidy_fen", "refunds_fen", "staff_pay_fen", "volunteer_allowance_fen")


def district_rollup(session: Session, *, year: int) -> DistrictRollup:
    """Every school's filing for the year, the schools that have not filed, and the sums of the filed."""
    if not 2000 <= year <= 2100:
        raise Invalid("report.year", year=year)
    filings = {row.school_id: row for row in session.exec(select(AnnualFiling).where(AnnualFiling.year == year))}
    lines, missing = [], []
    totals = dict.fromkeys(ROLLED_UP, 0)
    for school in session.exec(select(School).order_by(col(School.code))).all():
        row = filings.get(school.id)
        if row is None:
            missing.append(school.code)
            lines.append(DistrictSchoolLine(school=school.code, name=school.name, filed=False))
            continue
        for key in ROLLED_UP:
            totals[key] += int(row.figures.get(key, 0))
        lines.append(DistrictSchoolLine(school=school.code, name=school.name, filed=True,
                                        filed_at=clock.as_utc(row.filed_at), figures=row.figures))
    return DistrictRollup(year=year, due_on=due_on(year).isoformat(), schools=lines, not_filed=missing, totals=totals)
