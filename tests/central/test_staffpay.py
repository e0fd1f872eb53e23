"""Staff pay read from the database (central/billing/staffpay.py, P8.1): a month of taps at two gates,
a confirmed day of planned duty, the pay run over the API and the command, drafts and final runs."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from central.billing import ledger, staffpay
from central.billing.models import Statement
from central.billing.staffpay import Served
from central.core import clock
from central.core.audit import AuditLog
from central.core.errors import Missing
from central.kiosks.models import Event
from central.programme import schedule
from central.programme.models import CareSession, DutyAssignment, Staff, TermCreate
from central.schools.models import Kiosk, School

MON, TUE, WED, SAT = date(2030, 9, 2), date(2030, 9, 3), date(2030, 9, 4), date(2030, 9, 7)


def utc(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@pytest.fixture
def month(world, monkeypatch):
    """s1 in September 2030: groupA meets Mon–Wed 16:00–17:20 Shanghai (two periods) with staffA on duty,
    groupB on Monday with staffB; the staff's taps at gate-1 and gate-2; a volunteer, staffV."""
    monkeypatch.setattr(clock, "local_today", lambda school: date(2030, 9, 30))
    ids = world.ids
    with world.session() as session:
        gate2 = Kiosk(school_id=ids["s1"], code="gate-2", secret="cd" * 32)
        volunteer = Staff(school_id=ids["s1"], name="志愿者", kind="volunteer", created_by="test")
        session.add_all([gate2, volunteer])
        session.flush()
        ids["gate-2"], ids["staffV"] = gate2.id, volunteer.id
        cares = {}
        for key, group, day in (("A-mon", "groupA", MON), ("A-tue", "groupA", TUE), ("A-wed", "groupA", WED), ("B-mon", "groupB", MON)):
            care = CareSession(school_id=ids["s1"], group_id=ids[group], day=day, starts_at=utc(day, 8), ends_at=utc(day, 9, 20),
                               place="101", created_by="test")
            session.add(care)
            session.flush()
            cares[key] = care.id
        for key, staff in (("A-mon", "staffA"), ("A-tue", "staffA"), ("A-wed", "staffA"), ("B-mon", "staffB"), ("B-mon", "staffV")):
            session.add(DutyAssignment(session_id=cares[key], staff_id=ids[staff], assigned_by="test"))
        taps = [
            ("gate-1", "staff_on", "staffA", utc(MON, 7, 55)), ("gate-2", "staff_off", "staffA", utc(MON, 9, 25)),  # two gates
            ("gate-1", "staff_on", "staffA", utc(TUE, 7, 58)),  # no off: counts to the end of the session
            ("gate-1", "staff_on", "staffA", utc(SAT, 8)), ("gate-1", "staff_off", "staffA", utc(SAT, 9)),  # no session that day
            ("gate-2", "staff_on", "staffB", utc(MON, 8, 45)), ("gate-2", "staff_off", "staffB", utc(MON, 9, 25)),  # the second period
            ("gate-1", "staff_on", "staffV", utc(MON, 7, 50)), ("gate-1", "staff_off", "staffV", utc(MON, 9, 30)),
            ("gate-1", "staff_on", "st99999", utc(MON, 7, 50)),  # nobody of this school
        ]
        for seq, (gate, kind, who, at) in enumerate(taps, start=1):
            staff = f"st{ids[who]}" if who in ids else who
            session.add(Event(id=f"t{seq}", school_id=ids["s1"], kiosk_id=ids[gate], seq=seq, kind=kind, at=at, received_at=at,
                              staff=staff, prev="", hash="", sig=""))
        session.commit()
    return world


def confirm(world, staff: str, day: date, reason: str = "门禁故障，未刷卡", user: str = "admin1"):
    return world.client.post("/api/v1/schools/s1/duty/confirmations?lang=en", headers=world.as_(user),
                             json={"staff_id": world.ids[staff], "day": day.isoformat(), "reason": reason})


def msg(response) -> str:
    """The error's text: a 422 lists its problems, the others say one."""
    detail = response.json()["detail"]
    return detail if isinstance(detail, str) else detail[0]["msg"]


def served(world) -> dict[int, Served]:
    with world.session() as session:
        school = session.get(School, world.ids["s1"])
        return staffpay.served_between(session, school=school, start=date(2030, 9, 1), end=date(2030, 9, 30))


def test_periods_of_a_month_from_taps_at_two_gates_and_a_confirmed_day(month):
    ids = month.ids
    assert served(month) == {ids["staffA"]: Served(4, 0), ids["staffB"]: Served(1, 0), ids["staffV"]: Served(2, 0)}
    made = confirm(month, "staffA", WED)
    assert made.status_code == 201, made.text
    assert (made.json()["planned_periods"], made.json()["confirmed_by"]) == (2, "user:admin1")
    assert served(month)[ids["staffA"]] == Served(4, 2)
    with month.session() as session:
        logged = session.exec(select(AuditLog).where(AuditLog.entity.like("duty_confirmation:%"))).all()
    assert [(r.action, r.actor) for r in logged] == [("duty_confirmation.create", "user:admin1")]


@pytest.mark.parametrize(
    ("staff", "day", "status", "message"),
    [
        pytest.param("staffA", MON, 409, "staffA tapped at a gate on 2030-09-02: the taps are the record of that day, not a confirmation",
                     id="a day they tapped"),
        pytest.param("staffB", TUE, 409, "staffB had no planned duty on 2030-09-03: there is nothing to confirm", id="no planned duty"),
        pytest.param("staffA", date(2030, 10, 1), 422, "2030-10-01 has not come yet: only a day served can be confirmed", id="a day to come"),
    ],
)
def test_a_confirmation_is_refused(month, staff, day, status, message):
    refused = confirm(month, staff, day)
    assert (refused.status_code, msg(refused)) == (status, message)


def test_a_day_is_confirmed_once_by_the_admin_only(month):
    assert confirm(month, "staffA", WED, user="finance1").status_code == 403
    assert confirm(month, "staffA", WED).status_code == 201
    again = confirm(month, "staffA", WED)
    assert (again.status_code, msg(again)) == (409, "staffA's duty on 2030-09-04 is already confirmed")


def pay(world, fees: int, subsidy: int = 0, user: str = "finance1"):
    return world.client.post("/api/v1/schools/s1/staff-pay?month=2030-09&lang=en", headers=world.as_(user),
                             json={"fee_income_fen": fees, "subsidy_fen": subsidy})


def lines(body) -> list[tuple]:
    return [(x["name"], x["periods"], x["periods_tapped"], x["periods_confirmed"], x["share_fen"], x["allowance_fen"]) for x in body["lines"]]


def test_a_terms_periods_are_its_months_and_another_schools_term_is_not_found(month):
    ids = month.ids
    with month.session() as session:
        s1, s2 = session.get(School, ids["s1"]), session.get(School, ids["s2"])
        autumn = schedule.add_term(session, school=s1, actor="t", data=TermCreate(
            name="2030 秋", starts_on=date(2030, 9, 3), ends_on=date(2031, 1, 17)))  # from Tuesday: Monday is not in it
        theirs = schedule.add_term(session, school=s2, actor="t", data=TermCreate(
            name="2030 秋", starts_on=date(2030, 8, 26), ends_on=date(2031, 1, 17)))
        assert staffpay.served_in_term(session, school=s1, term_id=autumn.id) == {ids["staffA"]: Served(2, 0)}
        with pytest.raises(Missing):
            staffpay.served_in_term(session, school=s1, term_id=theirs.id)


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_the_pay_run_replaces_a_draft_and_is_final_once_confirmed(month):
    assert confirm(month, "staffA", WED).status_code == 201
    first = pay(month, 6_000, 1_000)  # 80 % of 7,000 = 5,600 over 7 periods; the volunteer apart
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["state"], body["pool_fen"], body["periods"], body["allowance_fen"]) == ("draft", 5_600, 7, 0)
    assert lines(body) == [("staffA", 6, 4, 2, 4_800, 0), ("staffB", 1, 1, 0, 800, 0), ("志愿者", 2, 2, 0, 0, 0)]
    again = pay(month, 7_000, 0)  # the month's income changed: the draft is made again
    assert (again.json()["pool_fen"], lines(again.json())[0][4]) == (5_600, 4_800)
    read = month.client.get("/api/v1/schools/s1/staff-pay?month=2030-09", headers=month.as_("district")).json()
    assert (read["fee_income_fen"], read["subsidy_fen"], read["made_by"]) == (7_000, 0, "user:finance1")
    done = month.client.post("/api/v1/schools/s1/staff-pay/confirm?month=2030-09", headers=month.as_("admin1"))
    assert (done.status_code, done.json()["state"], done.json()["confirmed_by"]) == (200, "confirmed", "user:admin1")
    with month.session() as session:  # P7.5: the fund owes the confirmed pay, booked once, in its ledger
        s1 = session.get(School, month.ids["s1"])
        owed = ledger.balances(session, school=s1)
        assert (owed["staff_pay"], owed["staff_pay_payable"]) == (5_600, 5_600)
        assert ledger.verify(session).ok
    final = pay(month, 9_000)
    assert (final.status_code, msg(final)) == (409, "the staff pay of 2030-09 is confirmed and final")
    late = confirm(month, "staffA", date(2030, 9, 5))
    assert late.status_code == 409  # no planned duty that day anyway; and the month is final
    with month.session() as session:
        session.add(CareSession(school_id=month.ids["s1"], group_id=month.ids["groupB"], day=date(2030, 9, 6),
                                starts_at=utc(date(2030, 9, 6), 8), ends_at=utc(date(2030, 9, 6), 9, 20), place="101", created_by="t"))
        session.flush()
        care = session.exec(select(CareSession).where(CareSession.day == date(2030, 9, 6))).one()
        session.add(DutyAssignment(session_id=care.id, staff_id=month.ids["staffB"], assigned_by="t"))
        session.commit()
    closed = confirm(month, "staffB", date(2030, 9, 6))
    assert (closed.status_code, msg(closed)) == (409, "the staff pay of 2030-09 is confirmed and final")
    with month.session() as session:
        assert len(session.exec(select(AuditLog).where(AuditLog.entity.like("staff_pay_run:%"))).all()) == 4  # made, remade (out, in), confirmed


def test_the_income_is_the_months_issued_statements_and_a_lower_figure_given_does_not_count(month):
    ids = month.ids
    with month.session() as session:
        term = schedule.add_term(session, school=session.get(School, ids["s1"]), actor="t",
                                 data=TermCreate(name="2030 秋", starts_on=date(2030, 9, 2), ends_on=date(2031, 1, 17)))
        for student, state, charge, refund, subsidy in (("A1", "issued", 8_000, 380, 500), ("B1", "issued", 8_000, 0, 500),
                                                        ("C1", "draft", 8_000, 0, 500)):  # a draft counts for nothing
            session.add(Statement(school_id=ids["s1"], student_id=ids[student], month="2030-09", reference=f"SG203009-{student}",
                                  state=state, term_id=term.id, plan_kind="monthly", plan_amount_fen=8_000, cap_fen=10_000,
                                  service_days=21, days_in_service=21, days_attended=20, charge_fen=charge, refund_fen=refund,
                                  subsidy_fen=subsidy, billed_by="t"))
        session.commit()
    billed = month.client.post("/api/v1/schools/s1/staff-pay?month=2030-09", headers=month.as_("finance1"))
    assert billed.status_code == 200, billed.text
    # fees 8,000 + 8,000 - 380 = 15,620, subsidy 1,000: 80 % of 16,620 = 13,296
    assert (billed.json()["fee_income_fen"], billed.json()["subsidy_fen"], billed.json()["pool_fen"]) == (15_620, 1_000, 13_296)
    lower = pay(month, 1_000, 0)
    assert (lower.json()["fee_income_fen"], lower.json()["pool_fen"]) == (15_620, 13_296)
    higher = pay(month, 20_000, 0)  # income the statements do not hold counts too
    assert (higher.json()["fee_income_fen"], higher.json()["subsidy_fen"], higher.json()["pool_fen"]) == (20_000, 1_000, 16_800)


def test_the_share_is_the_schools_setting_and_never_below_80(month):
    low = month.client.put("/api/v1/schools/s1/staff-pay/settings?lang=en", headers=month.as_("admin1"),
                           json={"share_percent": 79, "volunteer_allowance_fen": 0})
    assert (low.status_code, msg(low)) == (
        422, "the share paid to serving staff must be between 80 % and 100 %, not 79 % (P8.1)")
    default = month.client.get("/api/v1/schools/s1/staff-pay/settings", headers=month.as_("finance1")).json()
    assert (default["share_percent"], default["volunteer_allowance_fen"]) == (80, 0)
    set_ = month.client.put("/api/v1/schools/s1/staff-pay/settings", headers=month.as_("admin1"),
                            json={"share_percent": 90, "volunteer_allowance_fen": 300})
    assert set_.status_code == 200, set_.text
    body = pay(month, 1_000).json()  # 90 % of 1,000 over 5 periods; the volunteer 2 x 300 apart
    assert (body["share_percent"], body["pool_fen"], body["periods"], body["allowance_fen"]) == (90, 900, 5, 600)
    assert lines(body) == [("staffA", 4, 4, 0, 720, 0), ("staffB", 1, 1, 0, 180, 0), ("志愿者", 2, 2, 0, 0, 600)]


def test_a_month_with_income_and_no_periods_is_refused_plainly(month):
    none = month.client.post("/api/v1/schools/s1/staff-pay?month=2030-10&lang=en", headers=month.as_("finance1"),
                             json={"fee_income_fen": 5_000, "subsidy_fen": 0})
    assert (none.status_code, msg(none)) == (422, "nobody served any period: 4000 fen cannot be split")
    bad = month.client.get("/api/v1/schools/s1/staff-pay?month=2030-9&lang=en", headers=month.as_("finance1"))
    assert (bad.status_code, msg(bad)) == (422, "a month is YYYY-MM, not 2030-9")
    missing = month.client.get("/api/v1/schools/s1/staff-pay?month=2030-10&lang=en", headers=month.as_("finance1"))
    assert (missing.status_code, msg(missing)) == (404, "no staff pay has been worked out for 2030-10")


def test_the_command_works_the_month_out(month, tmp_path, monkeypatch):
    """In this process (a subprocess per call costs seconds of imports and migration on a busy machine)."""
    from typer.testing import CliRunner

    from schoolgate.cli import app

    monkeypatch.setenv("SCHOOLGATE_DATABASE_URL", month.settings.database_url)
    monkeypatch.setenv("SCHOOLGATE_SIGNING_KEY_FILE", str(tmp_path / "k.pem"))
    done = CliRunner().invoke(app, ["central", "pay-staff", "--school", "s1", "--month", "2030-09", "--fee-income-fen", "5000",
                                    "--subsidy-fen", "1000", "--json"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    body = json.loads(done.stdout)
    assert (body["pool_fen"], body["made_by"], lines(body)[0]) == (4_800, "cli:pay-staff", ("staffA", 4, 4, 0, 3_840, 0))
    text = CliRunner().invoke(app, ["--lang", "en", "central", "pay-staff", "--school", "s1", "--month", "2030-09",
                                    "--fee-income-fen", "5000"], catch_exceptions=False)
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[:2] == [
        "Staff pay s1 2030-09 (draft): pool 4000 fen = 80 % of (fees 5000 + subsidy 0) fen, 5 periods; volunteers' allowances 0 fen",
        "  staffA (teacher): 4 periods (4 tapped, 0 confirmed), share 3200 fen, allowance 0 fen",
    ]
    bad = CliRunner().invoke(app, ["--lang", "en", "central", "pay-staff", "--school", "s1", "--month", "2030-13",
                                   "--fee-income-fen", "5000"], catch_exceptions=False)
    assert (bad.exit_code, bad.stderr) == (2, "a month is YYYY-MM, not 2030-13\n")
    negative = CliRunner().invoke(app, ["--lang", "en", "central", "pay-staff", "--school", "s1", "--month", "2030-09",
                                        "--fee-income-fen", "5000", "--subsidy-fen", "-1"], catch_exceptions=False)
    assert (negative.exit_code, negative.stderr) == (2, "an income is 0 to 1000000000 fen, not -1\n")


# --- a term as the pay period (P8.1) ------------------------------------------------------------------


@pytest.fixture
def autumn(month):
    """A term of s1 from Tuesday 2030-09-03 to 2030-10-31 (September and October), with an issued
    statement in each of its months: fees 8,000 + 6,000 - 380 refunded, subsidy 500."""
    ids = month.ids
    with month.session() as session:
        term = schedule.add_term(session, school=session.get(School, ids["s1"]), actor="t",
                                 data=TermCreate(name="2030 秋", starts_on=date(2030, 9, 3), ends_on=date(2030, 10, 31)))
        for student, key, charge, refund, subsidy in (("A1", "2030-09", 8_000, 380, 500), ("B1", "2030-10", 6_000, 0, 0)):
            session.add(Statement(school_id=ids["s1"], student_id=ids[student], month=key, reference=f"SG{key}-{student}",
                                  state="issued", term_id=term.id, plan_kind="monthly", plan_amount_fen=8_000, cap_fen=10_000,
                                  service_days=21, days_in_service=21, days_attended=20, charge_fen=charge, refund_fen=refund,
                                  subsidy_fen=subsidy, billed_by="t"))
        session.commit()
        ids["autumn"] = term.id
    return month


def pay_term(world, user: str = "finance1", **body):
    return world.client.post(f"/api/v1/schools/s1/staff-pay/terms/{world.ids['autumn']}?lang=en", headers=world.as_(user), json=body)


def confirm_term(world):
    return world.client.post(f"/api/v1/schools/s1/staff-pay/terms/{world.ids['autumn']}/confirm?lang=en", headers=world.as_("admin1"))


def confirm_month(world, month: str = "2030-09"):
    return world.client.post(f"/api/v1/schools/s1/staff-pay/confirm?month={month}&lang=en", headers=world.as_("admin1"))


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_a_terms_pay_is_its_months_income_shared_by_the_periods_of_its_days(autumn):
    made = pay_term(autumn)
    assert made.status_code == 200, made.text
    body = made.json()
    # fees 8,000 - 380 + 6,000 = 13,620, subsidy 500: 80 % of 14,120 = 11,296; Monday 2030-09-02 is not in
    # the term, so only staffA's Tuesday (2 periods) counts: staffB and the volunteer served on Monday alone.
    assert (body["month"], body["term_id"], body["term"], body["state"]) == (None, autumn.ids["autumn"], "2030 秋", "draft")
    assert (body["fee_income_fen"], body["subsidy_fen"], body["pool_fen"], body["periods"]) == (13_620, 500, 11_296, 2)
    assert lines(body) == [("staffA", 2, 2, 0, 11_296, 0)]
    read = autumn.client.get(f"/api/v1/schools/s1/staff-pay/terms/{autumn.ids['autumn']}", headers=autumn.as_("district")).json()
    assert read["pool_fen"] == 11_296
    done = confirm_term(autumn)
    assert (done.status_code, done.json()["state"]) == (200, "confirmed")
    with autumn.session() as session:  # booked once, under the term's own reference
        s1 = session.get(School, autumn.ids["s1"])
        assert (ledger.balances(session, school=s1)["staff_pay"], ledger.verify(session).ok) == (11_296, True)
    again = pay_term(autumn)
    assert (again.status_code, msg(again)) == (409, "the staff pay of 2030 秋 is confirmed and final")
    late = confirm(autumn, "staffA", WED)  # a day of the confirmed term: its pay is final
    assert (late.status_code, msg(late)) == (409, "the staff pay of 2030 秋 is confirmed and final")


def test_a_confirmed_term_refuses_a_run_of_its_months_and_a_draft_of_one_cannot_be_confirmed(autumn):
    draft = pay(autumn, 0)  # drafts of both may stand side by side...
    assert draft.status_code == 200, draft.text
    assert pay_term(autumn).status_code == 200
    assert confirm_term(autumn).status_code == 200  # ...until one of them is confirmed
    refused = pay(autumn, 0)
    assert (refused.status_code, msg(refused)) == (
        409, "the staff pay of 2030 秋 is confirmed and shares a month with 2030-09: nobody is paid twice (P8.1)")
    unconfirmed = confirm_month(autumn)
    assert (unconfirmed.status_code, msg(unconfirmed)) == (
        409, "the staff pay of 2030 秋 is confirmed and shares a month with 2030-09: nobody is paid twice (P8.1)")
    october = autumn.client.post("/api/v1/schools/s1/staff-pay?month=2030-10&lang=en", headers=autumn.as_("finance1"))
    assert october.status_code == 409  # every month the term touches, not only its first
    november = autumn.client.post("/api/v1/schools/s1/staff-pay?month=2030-11&lang=en", headers=autumn.as_("finance1"),
                                  json={"fee_income_fen": 0})
    assert november.status_code == 200, november.text  # outside the term
    with autumn.session() as session:
        assert ledger.balances(session, school=session.get(School, autumn.ids["s1"]))["staff_pay"] == 11_296  # the term's, once


def test_a_confirmed_month_refuses_a_run_of_a_term_holding_it(autumn):
    assert pay(autumn, 5_000).status_code == 200
    assert confirm_month(autumn).status_code == 200
    refused = pay_term(autumn)
    assert (refused.status_code, msg(refused)) == (
        409, "the staff pay of 2030-09 is confirmed and shares a month with 2030 秋: nobody is paid twice (P8.1)")
    missing = autumn.client.get(f"/api/v1/schools/s1/staff-pay/terms/{autumn.ids['autumn']}?lang=en", headers=autumn.as_("finance1"))
    assert (missing.status_code, msg(missing)) == (404, "no staff pay has been worked out for 2030 秋")


def test_the_command_works_a_term_out(autumn, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from schoolgate.cli import app

    monkeypatch.setenv("SCHOOLGATE_DATABASE_URL", autumn.settings.database_url)
    monkeypatch.setenv("SCHOOLGATE_SIGNING_KEY_FILE", str(tmp_path / "k.pem"))
    done = CliRunner().invoke(app, ["central", "pay-staff", "--school", "s1", "--term", str(autumn.ids["autumn"]), "--json"],
                              catch_exceptions=False)
    assert done.exit_code == 0, done.output
    body = json.loads(done.stdout)
    assert (body["term"], body["pool_fen"], body["made_by"]) == ("2030 秋", 11_296, "cli:pay-staff")
    both = CliRunner().invoke(app, ["--lang", "en", "central", "pay-staff", "--school", "s1", "--month", "2030-09",
                                    "--term", str(autumn.ids["autumn"])], catch_exceptions=False)
    assert both.exit_code != 0
    assert "staff pay is worked out for a month or for a term: give one of them" in both.output
