"""Staff pay by periods served (P8.1), from the duty records of P6.3.

Where the periods come from, per staff member and school day:

- **Taps.** A gate's ``staff_on`` / ``staff_off`` events (every gate of the school, in time order, as
  the kiosks fold them: an ``on`` while already on and an ``off`` while off change nothing) give the
  times the person was present. They count for the sessions the person was planned for that day
  (``DutyAssignment``); someone with no planned duty that day who tapped in (a substitute, a guard at
  the gate) counts for the day's sessions as a whole. A tap on a day without a session counts nothing.
- **Confirmed planned duty.** A school admin may confirm, with a reason (audited), that a person who did
  not tap served their planned duty of a day: every period of that day's planned sessions counts.

How a session becomes periods: ``floor(minutes / 40)``, at least 1. Sessions are planned as a group's
whole periods (``InterestGroup.periods`` × 40 minutes, P3.2), so the floor gives back the plan exactly;
a session whose times were edited to an odd length is not rounded up into a period nobody served, and
one shorter than a period still counts one, since a session is the least unit of service.

Partial presence by taps: a session is cut into its periods (equal parts), and a period counts when the
person was present for at least half of it. A few minutes late at the gate still earns the period; leaving
after the first of two periods earns one; a visit of ten minutes earns none. An ``on`` without an ``off``
later that day (a forgotten tap) is taken to end with the first counted session that ends after it, not
the day's last: presence is not assumed into later sessions, which the admin cannot confirm for someone
who tapped. Nobody earns two periods for the same minutes: where periods overlap (concurrent sessions of
someone without a plan), the earlier one counts and the overlapping ones do not.

The pay run of a month, or of a term (P8.1 allows either): pool = ``rules.staff_pool`` (the school's share, default and least 80 %, of fee
income + subsidy, rounded up), split by ``rules.split_by_periods`` (exact in fen, largest remainder) among
staff who served, volunteers apart: a volunteer (``Staff.kind == "volunteer"``, P6.5) is paid the
school's allowance per period, not a part of the share. Stored as a run with a line per person; made
again while a draft, final once the school admin confirms it. A term's income is the issued statements
of every calendar month it touches. Nobody is paid twice: a run (made or confirmed) is refused where a
confirmed run of another period shares a calendar month with it — a month and a term holding it, or two
terms meeting inside a month; drafts of both may stand side by side until one of them is confirmed.

The rules (``session_periods``, ``presence``, ``day_served``, ``plan_pay``) are pure; the rest reads and
writes the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlmodel import Session, col, select

from central.billing import ledger, rules, statements
from central.billing.models import (
    MAX_INCOME_FEN,
    DutyConfirmation,
    DutyConfirmationIn,
    DutyConfirmationPublic,
    StaffPayLine,
    StaffPayLinePublic,
    StaffPayRun,
    StaffPayRunPublic,
    StaffPaySetting,
    StaffPaySettingIn,
    StaffPaySettingPublic,
)
from central.core import clock
from central.core.errors import Conflict, Invalid, Missing
from central.kiosks.models import Event
from central.kiosks.roster import staff_id as roster_staff_id
from central.programme import staff as staff_service
from central.programme.models import CareSession, DutyAssignment, Staff, Term
from central.schools.models import School

PERIOD_MINUTES = 40  # P3.2, the glossary's 学时
STAFF_TAPS = ("staff_on", "staff_off")
VOLUNTEER = "volunteer"  # P6.5: paid an allowance, not a share
DRAFT, CONFIRMED = "draft", "confirmed"

Interval = tuple[datetime, datetime]


# --- the rules, pure -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """One session's time, as the rules need it."""

    id: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class StaffTap:
    at: datetime
    kind: str  # staff_on | staff_off


@dataclass(frozen=True)
class Served:
    """Periods one person served: proven by taps, and by the admin's confirmation of planned duty."""

    tapped: int = 0
    confirmed: int = 0

    @property
    def periods(self) -> int:
        return self.tapped + self.confirmed

    def __add__(self, other: Served) -> Served:
        return Served(self.tapped + other.tapped, self.confirmed + other.confirmed)


def session_periods(minutes: int, period_minutes: int = PERIOD_MINUTES) -> int:
    """A session's periods: floor(minutes / period), at least 1; a session of no length has none."""
    if minutes <= 0:
        return 0
    return max(1, minutes // period_minutes)


def slots(span: Span, period_minutes: int = PERIOD_MINUTES) -> list[Interval]:
    """The session cut into its periods, equal parts from its start to its end."""
    n = session_periods(int((span.end - span.start).total_seconds() // 60), period_minutes)
    length = span.end - span.start
    return [(span.start + length * i / n, span.start + length * (i + 1) / n) for i in range(n)]


def presence(taps: Iterable[StaffTap], spans: Sequence[Span]) -> list[Interval]:
    """The times a person was present by their taps of one day, at every gate together. An ``on`` while
    on and an ``off`` while off are ignored (a second gate, a double tap); an ``on`` never followed by an
    ``off`` ends with the first of ``spans`` ending after it, or counts nothing if none does."""
    out: list[Interval] = []
    opened: datetime | None = None
    for tap in sorted(taps, key=lambda tap: tap.at):
        if tap.kind == "staff_on" and opened is None:
            opened = tap.at
        elif tap.kind == "staff_off" and opened is not None:
            out.append((opened, tap.at))
            opened = None
    if opened is not None:
        end = min((s.end for s in spans if s.end > opened), default=None)
        if end is not None:
            out.append((opened, end))
    return out


def _overlap(a: Interval, b: Interval) -> timedelta:
    return max(timedelta(0), min(a[1], b[1]) - max(a[0], b[0]))


def day_served(
    spans: Sequence[Span], planned: set[int], taps: Iterable[StaffTap], *, confirmed: bool = False,
    period_minutes: int = PERIOD_MINUTES,
) -> Served:
    """One person's periods on one day. ``spans``: the school's sessions that day; ``planned``: the ids of
    those the person was on duty for; ``confirmed``: the admin confirmed their planned duty that day."""
    candidates = [s for s in spans if s.id in planned] or list(spans)
    present = presence(taps, candidates)
    credited: list[Interval] = []

    def free(slot: Interval) -> bool:
        return all(_overlap(slot, other) == timedelta(0) for other in credited)

    ordered = sorted(((slot, s.id) for s in candidates for slot in slots(s, period_minutes)), key=lambda x: (x[0][0], x[1]))
    tapped = 0
    for slot, _ in ordered:
        if free(slot) and 2 * sum((_overlap(slot, p) for p in present), timedelta(0)) >= slot[1] - slot[0]:
            credited.append(slot)
            tapped += 1
    by_confirmation = 0
    if confirmed:
        for slot, span_id in ordered:
            if span_id in planned and free(slot):
                credited.append(slot)
                by_confirmation += 1
    return Served(tapped, by_confirmation)


@dataclass(frozen=True)
class Member:
    staff_id: int
    name: str
    kind: str
    served: Served


@dataclass(frozen=True)
class PayLine:
    staff_id: int
    name: str
    kind: str
    served: Served
    share_fen: int
    allowance_fen: int


@dataclass(frozen=True)
class PayPlan:
    pool_fen: int
    periods: int  # of the staff who share the pool
    allowance_fen: int
    lines: list[PayLine]


def plan_pay(
    members: Iterable[Member], *, fee_income_fen: int, subsidy_fen: int, share_percent: int = rules.MIN_STAFF_SHARE_PERCENT,
    volunteer_allowance_fen: int = 0,
) -> PayPlan:
    """P8.1: the pool split among staff by periods, volunteers paid their allowance per period apart.
    Refused (a localized 422) for a share below 80 %, and for a pool nobody served a period to share."""
    if volunteer_allowance_fen < 0:
        raise rules.RuleError("billing.negative", amount=volunteer_allowance_fen)
    pool = rules.staff_pool(fee_income_fen=fee_income_fen, subsidy_fen=subsidy_fen, share_percent=share_percent)
    served = sorted((m for m in members if m.served.periods > 0), key=lambda m: m.staff_id)
    # Keys sort as the ids do, so a tie for the last fen goes to the lower id, every time.
    sharing = {f"{m.staff_id:012d}": m.served.periods for m in served if m.kind != VOLUNTEER}
    shares = rules.split_by_periods(pool, sharing)
    lines = [
        PayLine(m.staff_id, m.name, m.kind, m.served, shares.get(f"{m.staff_id:012d}", 0),
                m.served.periods * volunteer_allowance_fen if m.kind == VOLUNTEER else 0)
        for m in served
    ]
    return PayPlan(pool, sum(sharing.values()), sum(line.allowance_fen for line in lines), lines)


# --- reading the duty records ------------------------------------------------------------------------


def month_days(month: str) -> tuple[date, date]:
    """``YYYY-MM`` -> its first and last day."""
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise Invalid("staffpay.month", month=month) from None
    if len(month) != 7:
        raise Invalid("staffpay.month", month=month)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


def _staff_pk(roster_id: str | None) -> int | None:
    """The kiosks name staff ``st<id>`` (``roster_staff_id``); back to the row's id."""
    if roster_id and roster_id.startswith("st") and roster_id[2:].isdigit():
        return int(roster_id[2:])
    return None


def served_between(
    session: Session, *, school: School, start: date, end: date, period_minutes: int = PERIOD_MINUTES
) -> dict[int, Served]:
    """Periods served per staff id over the school's dates ``start``..``end`` (a month, or a term)."""
    zone = clock.zone(school)
    sessions = session.exec(
        select(CareSession).where(CareSession.school_id == school.id, col(CareSession.day) >= start, col(CareSession.day) <= end)
    ).all()
    spans: dict[date, list[Span]] = defaultdict(list)
    day_of: dict[int, date] = {}
    for row in sessions:
        spans[row.day].append(Span(row.id, clock.as_utc(row.starts_at), clock.as_utc(row.ends_at)))
        day_of[row.id] = row.day
    planned: dict[tuple[int, date], set[int]] = defaultdict(set)
    if day_of:
        for duty in session.exec(select(DutyAssignment).where(col(DutyAssignment.session_id).in_(list(day_of)))):
            planned[duty.staff_id, day_of[duty.session_id]].add(duty.session_id)
    ours = set(session.exec(select(Staff.id).where(Staff.school_id == school.id)).all())
    taps: dict[tuple[int, date], list[StaffTap]] = defaultdict(list)
    events = session.exec(
        select(Event).where(
            Event.school_id == school.id, col(Event.kind).in_(STAFF_TAPS),
            col(Event.at) >= datetime.combine(start, time(0), zone),
            col(Event.at) < datetime.combine(end + timedelta(days=1), time(0), zone),
        )
    ).all()
    for event in events:
        pk = _staff_pk(event.staff)
        if pk in ours:
            at = clock.as_utc(event.at)
            taps[pk, at.astimezone(zone).date()].append(StaffTap(at, event.kind))
    confirmed = set(session.exec(
        select(DutyConfirmation.staff_id, DutyConfirmation.day)
        .where(DutyConfirmation.school_id == school.id, col(DutyConfirmation.day) >= start, col(DutyConfirmation.day) <= end)
    ).all())
    out: dict[int, Served] = defaultdict(Served)
    for staff_id, day in sorted(set(planned) | set(taps) | confirmed):
        served = day_served(spans.get(day, []), planned.get((staff_id, day), set()), taps.get((staff_id, day), []),
                            confirmed=(staff_id, day) in confirmed, period_minutes=period_minutes)
        out[staff_id] += served
    return {k: v for k, v in out.items() if v.periods}


def served_in_term(session: Session, *, school: School, term_id: int, period_minutes: int = PERIOD_MINUTES) -> dict[int, Served]:
    """Periods served per staff id over one of the school's terms (P8.1 allows a term as the pay period)."""
    term = session.get(Term, term_id)
    if term is None or term.school_id != school.id:
        raise Missing("term_missing", id=term_id)
    return served_between(session, school=school, start=term.starts_on, end=term.ends_on, period_minutes=period_minutes)


# --- the admin's confirmation of planned duty ----------------------------------------------------------


def confirm_duty(
    session: Session, *, school: School, data: DutyConfirmationIn, actor: str, today: date | None = None,
    period_minutes: int = PERIOD_MINUTES,
) -> DutyConfirmationPublic:
    """P6.3: the admin confirms that a staff member who did not tap served their planned duty of a day.
    Refused for a day to come, a day without planned duty, a day they tapped (the taps are the record),
    twice, or in a month whose pay is final."""
    person = staff_service.get_staff(session, school=school, staff_id=data.staff_id)
    today = today or clock.local_today(school)
    if data.day > today:
        raise Invalid("staffpay.future_day", day=data.day)
    rows = session.exec(
        select(CareSession)
        .join(DutyAssignment, col(DutyAssignment.session_id) == CareSession.id)
        .where(CareSession.school_id == school.id, CareSession.day == data.day, DutyAssignment.staff_id == person.id)
    ).all()
    if not rows:
        raise Conflict("staffpay.no_planned_duty", name=person.name, day=data.day)
    zone = clock.zone(school)
    tapped = session.exec(
        select(Event.staff).where(
            Event.school_id == school.id, col(Event.kind).in_(STAFF_TAPS), Event.staff == roster_staff_id(person.id),
            col(Event.at) >= datetime.combine(data.day, time(0), zone),
            col(Event.at) < datetime.combine(data.day + timedelta(days=1), time(0), zone),
        )
    ).first()
    if tapped is not None:
        raise Conflict("staffpay.tapped", name=person.name, day=data.day)
    stmt = select(DutyConfirmation).where(DutyConfirmation.staff_id == person.id, DutyConfirmation.day == data.day)
    if session.exec(stmt).first() is not None:
        raise Conflict("staffpay.already_confirmed", name=person.name, day=data.day)
    _check_not_final(session, school, data.day)
    row = DutyConfirmation(school_id=school.id, staff_id=person.id, day=data.day, reason=data.reason, confirmed_by=actor)
    session.add(row)
    session.commit()
    session.refresh(row)
    minutes = [int((clock.as_utc(r.ends_at) - clock.as_utc(r.starts_at)).total_seconds() // 60) for r in rows]
    return DutyConfirmationPublic(id=row.id, staff_id=row.staff_id, day=row.day, reason=row.reason,
                                  planned_periods=sum(session_periods(m, period_minutes) for m in minutes),
                                  confirmed_by=row.confirmed_by, confirmed_at=clock.as_utc(row.confirmed_at))


# --- the school's setting --------------------------------------------------------------------------------


def get_setting(session: Session, *, school: School) -> StaffPaySettingPublic:
    row = session.exec(select(StaffPaySetting).where(StaffPaySetting.school_id == school.id)).first()
    if row is None:
        return StaffPaySettingPublic(share_percent=rules.MIN_STAFF_SHARE_PERCENT, volunteer_allowance_fen=0)
    return StaffPaySettingPublic(share_percent=row.share_percent, volunteer_allowance_fen=row.volunteer_allowance_fen,
                                 set_by=row.set_by, set_at=clock.as_utc(row.set_at))


def set_setting(session: Session, *, school: School, data: StaffPaySettingIn, actor: str) -> StaffPaySettingPublic:
    """P8.1: the share may be raised, never set below 80 % (refused, a localized 422)."""
    rules.staff_pool(fee_income_fen=0, subsidy_fen=0, share_percent=data.share_percent)  # the share's one check
    if data.volunteer_allowance_fen < 0:
        raise rules.RuleError("billing.negative", amount=data.volunteer_allowance_fen)
    row = session.exec(select(StaffPaySetting).where(StaffPaySetting.school_id == school.id)).first()
    row = row or StaffPaySetting(school_id=school.id, set_by=actor)
    row.share_percent, row.volunteer_allowance_fen = data.share_percent, data.volunteer_allowance_fen
    row.set_by, row.set_at = actor, clock.utcnow()
    session.add(row)
    session.commit()
    return get_setting(session, school=school)


# --- the pay run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayPeriod:
    """What a run pays for: a month (``month``) or one of the school's terms (``term_id``), its first and
    last day, and the calendar months it touches (whose issued statements are its income)."""

    month: str | None
    term_id: int | None
    start: date
    end: date
    label: str  # the month, or the term's name, as messages show it

    @property
    def months(self) -> list[str]:
        out, day = [], self.start.replace(day=1)
        while day <= self.end:
            out.append(f"{day:%Y-%m}")
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        return out


def month_period(month: str) -> PayPeriod:
    start, end = month_days(month)
    return PayPeriod(month, None, start, end, month)


def term_period(session: Session, *, school: School, term_id: int) -> PayPeriod:
    term = session.get(Term, term_id)
    if term is None or term.school_id != school.id:
        raise Missing("term_missing", id=term_id)
    return PayPeriod(None, term.id, term.starts_on, term.ends_on, term.name)


def _run(session: Session, school: School, month: str) -> StaffPayRun | None:
    return session.exec(select(StaffPayRun).where(StaffPayRun.school_id == school.id, StaffPayRun.month == month)).first()


def _run_of(session: Session, school: School, period: PayPeriod) -> StaffPayRun | None:
    if period.month is not None:
        return _run(session, school, period.month)
    return session.exec(select(StaffPayRun).where(StaffPayRun.school_id == school.id, StaffPayRun.term_id == period.term_id)).first()


def _period_of(session: Session, school: School, run: StaffPayRun) -> PayPeriod:
    if run.month is not None:
        return month_period(run.month)
    return term_period(session, school=school, term_id=run.term_id)


def _overlapping(session: Session, school: School, period: PayPeriod) -> list[PayPeriod]:
    """The school's other confirmed runs sharing a calendar month with ``period``: a month's run and the
    runs of the terms touching that month, a term's run and the runs of its months and of other terms
    touching them. Their periods were paid (or their months' income shared) already."""
    months = set(period.months)
    out = []
    for run in session.exec(select(StaffPayRun).where(StaffPayRun.school_id == school.id, StaffPayRun.state == CONFIRMED)):
        if (run.month is not None and run.month == period.month) or (run.term_id is not None and run.term_id == period.term_id):
            continue  # the run itself
        other = _period_of(session, school, run)
        if months & set(other.months):
            out.append(other)
    return out


def _check_no_double_pay(session: Session, school: School, period: PayPeriod) -> None:
    """P8.1, nobody paid twice: a month's run is refused where a term's run touching that month is
    confirmed, a term's run where a run of one of its months (or of a term sharing one) is."""
    for other in _overlapping(session, school, period):
        raise Conflict("staffpay.overlap", period=period.label, other=other.label)


def _check_not_final(session: Session, school: School, day: date) -> None:
    """No confirmation of duty on a day whose pay is final: its month's run, or a run of a term holding it."""
    month = f"{day:%Y-%m}"
    run = _run(session, school, month)
    if run is not None and run.state == CONFIRMED:
        raise Conflict("staffpay.final", month=month)
    for run in session.exec(select(StaffPayRun).where(StaffPayRun.school_id == school.id, col(StaffPayRun.term_id).is_not(None),
                                                      StaffPayRun.state == CONFIRMED)):
        term = term_period(session, school=school, term_id=run.term_id)
        if term.start <= day <= term.end:
            raise Conflict("staffpay.final", month=term.label)


def run_pay(
    session: Session, *, school: School, month: str | None = None, term_id: int | None = None, actor: str,
    fee_income_fen: int | None = None, subsidy_fen: int | None = None, period_minutes: int = PERIOD_MINUTES,
) -> StaffPayRunPublic:
    """The staff pay of a month (``month``) or a term (``term_id``), stored: replaces the period's draft,
    refused once it is confirmed, and refused where a confirmed run of another period shares a month
    with it (P8.1: nobody is paid twice for the same days, nor the same month's income shared twice).

    The income is the period's issued statements' (fees less P7.4 refunds, and the subsidy on them), for
    a term those of every month it touches. A figure given by the caller counts only where it is higher
    (income the statements do not hold, such as a subsidy paid per period): P8.1's share is of at least
    what the records show, never less."""
    if (month is None) == (term_id is None):
        raise Invalid("staffpay.period")
    period = month_period(month) if month is not None else term_period(session, school=school, term_id=term_id)
    for amount in (fee_income_fen, subsidy_fen):
        if amount is not None and not 0 <= amount <= MAX_INCOME_FEN:  # the command's options reach here unchecked
            raise Invalid("staffpay.income", amount=amount, most=MAX_INCOME_FEN)
    billed = [statements.month_income(session, school=school, month=statements.Month.parse(m)) for m in period.months]
    fee_income_fen = max(fee_income_fen or 0, sum(b.fee_income_fen for b in billed))
    subsidy_fen = max(subsidy_fen or 0, sum(b.subsidy_fen for b in billed))
    old = _run_of(session, school, period)
    if old is not None and old.state == CONFIRMED:
        raise Conflict("staffpay.final", month=period.label)
    _check_no_double_pay(session, school, period)
    setting = get_setting(session, school=school)
    served = served_between(session, school=school, start=period.start, end=period.end, period_minutes=period_minutes)
    people = session.exec(select(Staff).where(Staff.school_id == school.id, col(Staff.id).in_(list(served)))).all()
    plan = plan_pay(
        [Member(p.id, p.name, p.kind, served[p.id]) for p in people], fee_income_fen=fee_income_fen,
        subsidy_fen=subsidy_fen, share_percent=setting.share_percent, volunteer_allowance_fen=setting.volunteer_allowance_fen,
    )
    if old is not None:
        for line in session.exec(select(StaffPayLine).where(StaffPayLine.run_id == old.id)):
            session.delete(line)
        session.flush()
        session.delete(old)
        session.flush()
    run = StaffPayRun(
        school_id=school.id, month=period.month, term_id=period.term_id, fee_income_fen=fee_income_fen, subsidy_fen=subsidy_fen,
        share_percent=setting.share_percent, pool_fen=plan.pool_fen, periods=plan.periods,
        allowance_fen=plan.allowance_fen, made_by=actor,
    )
    session.add(run)
    session.flush()
    session.add_all(
        StaffPayLine(run_id=run.id, staff_id=line.staff_id, name=line.name, kind=line.kind,
                     periods_tapped=line.served.tapped, periods_confirmed=line.served.confirmed,
                     share_fen=line.share_fen, allowance_fen=line.allowance_fen)
        for line in plan.lines
    )
    session.commit()
    return _public(session, school, run)


def _period(session: Session, school: School, month: str | None, term_id: int | None) -> PayPeriod:
    if (month is None) == (term_id is None):
        raise Invalid("staffpay.period")
    return month_period(month) if month is not None else term_period(session, school=school, term_id=term_id)


def get_run(session: Session, *, school: School, month: str | None = None, term_id: int | None = None) -> StaffPayRunPublic:
    period = _period(session, school, month, term_id)
    run = _run_of(session, school, period)
    if run is None:
        raise Missing("staffpay.no_run", month=period.label)
    return _public(session, school, run)


def confirm_run(session: Session, *, school: School, month: str | None = None, term_id: int | None = None,
                actor: str) -> StaffPayRunPublic:
    """The school admin confirms the pay of a month or a term: final from now on (no re-run, no more
    confirmations of duty in it). Refused where a confirmed run of another period shares a month with it."""
    period = _period(session, school, month, term_id)
    run = _run_of(session, school, period)
    if run is None:
        raise Missing("staffpay.no_run", month=period.label)
    if run.state == CONFIRMED:
        raise Conflict("staffpay.final", month=period.label)
    _check_no_double_pay(session, school, period)
    run.state, run.confirmed_by, run.confirmed_at = CONFIRMED, actor, clock.utcnow()
    session.add(run)
    # P7.5/P8.1: the fund now owes the period's pay; the entry commits with the confirmation or not at all.
    owed = [ledger.Line(account, debit_fen=fen) for account, fen in (("staff_pay", run.pool_fen), ("volunteer_allowance", run.allowance_fen)) if fen]
    if owed:
        ref = f"staff-pay-{period.month}" if period.month is not None else f"staff-pay-term-{period.term_id}"
        ledger.post(session, school=school, kind="staff_pay", ref=ref, actor=actor, memo=period.label,
                    lines=[*owed, ledger.Line("staff_pay_payable", credit_fen=run.pool_fen + run.allowance_fen)])
    session.commit()
    return _public(session, school, run)


def _public(session: Session, school: School, run: StaffPayRun) -> StaffPayRunPublic:
    lines = session.exec(select(StaffPayLine).where(StaffPayLine.run_id == run.id).order_by(col(StaffPayLine.staff_id))).all()
    return StaffPayRunPublic(
        school=school.code, month=run.month, term_id=run.term_id,
        term=term_period(session, school=school, term_id=run.term_id).label if run.term_id is not None else None, state=run.state, fee_income_fen=run.fee_income_fen, subsidy_fen=run.subsidy_fen,
        share_percent=run.share_percent, pool_fen=run.pool_fen, periods=run.periods, allowance_fen=run.allowance_fen,
        made_by=run.made_by, made_at=clock.as_utc(run.made_at), confirmed_by=run.confirmed_by,
        confirmed_at=clock.as_utc(run.confirmed_at) if run.confirmed_at else None,
        lines=[
            StaffPayLinePublic(staff_id=x.staff_id, name=x.name, kind=x.kind, periods=x.periods_tapped + x.periods_confirmed,
                               periods_tapped=x.periods_tapped, periods_confirmed=x.periods_confirmed,
                               share_fen=x.share_fen, allowance_fen=x.allowance_fen)
            for x in lines
        ],
    )
