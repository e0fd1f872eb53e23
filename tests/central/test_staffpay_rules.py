"""Staff pay's rules (central/billing/staffpay.py, P8.1), pure: periods of a session, presence by taps,
periods served on a day, the pay plan. Expected values are worked out by hand in each case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.billing.rules import RuleError
from central.billing.staffpay import Member, Served, Span, StaffTap, day_served, plan_pay, presence, session_periods

T0 = datetime(2030, 9, 2, 8, 0, tzinfo=UTC)  # 16:00 in Shanghai


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


A = Span(1, at(0), at(80))  # two periods, 16:00-17:20
B = Span(2, at(0), at(80))  # another group at the same time
C = Span(3, at(80), at(160))  # right after A


def on(minutes: int) -> StaffTap:
    return StaffTap(at(minutes), "staff_on")


def off(minutes: int) -> StaffTap:
    return StaffTap(at(minutes), "staff_off")


@pytest.mark.parametrize(
    ("minutes", "periods"),
    [
        pytest.param(80, 2, id="two whole periods"),
        pytest.param(90, 2, id="an odd length is not rounded up"),
        pytest.param(79, 1, id="a minute short of two"),
        pytest.param(40, 1, id="one period"),
        pytest.param(30, 1, id="shorter than a period still counts one"),
        pytest.param(120, 3, id="three periods"),
        pytest.param(0, 0, id="no length, no period"),
    ],
)
def test_a_sessions_periods(minutes, periods):
    assert session_periods(minutes) == periods


@pytest.mark.parametrize(
    ("taps", "spans", "expected"),
    [
        pytest.param([on(-5), off(85)], [A], [(at(-5), at(85))], id="on and off"),
        pytest.param([off(85), on(-5)], [A], [(at(-5), at(85))], id="taps in any order"),
        pytest.param([on(-5), on(2), off(85)], [A], [(at(-5), at(85))], id="a second on (another gate) changes nothing"),
        pytest.param([off(-10), on(-5), off(30), off(85)], [A], [(at(-5), at(30))], id="an off while off changes nothing"),
        pytest.param([on(-5)], [A, C], [(at(-5), at(80))], id="a missing off ends with the first session after it"),
        pytest.param([on(-5), off(30), on(100)], [A, C], [(at(-5), at(30)), (at(100), at(160))], id="a missing off, second time in"),
        pytest.param([on(170)], [A, C], [], id="a missing off after every session counts nothing"),
        pytest.param([on(-5)], [], [], id="a missing off on a day without a session"),
    ],
)
def test_presence_by_taps(taps, spans, expected):
    assert presence(taps, spans) == expected


@pytest.mark.parametrize(
    ("spans", "planned", "taps", "confirmed", "expected"),
    [
        pytest.param([A, B], {1}, [on(-5), off(85)], False, Served(2, 0), id="planned session, tapped through"),
        pytest.param([A], {1}, [on(15), off(85)], False, Served(2, 0), id="15 minutes late still earns the first period"),
        pytest.param([A], {1}, [on(20), off(85)], False, Served(2, 0), id="present exactly half of a period earns it"),
        pytest.param([A], {1}, [on(21), off(85)], False, Served(1, 0), id="present less than half does not"),
        pytest.param([A], {1}, [on(-5), off(40)], False, Served(1, 0), id="left after the first period"),
        pytest.param([A], {1}, [on(30), off(40)], False, Served(0, 0), id="a ten-minute visit earns nothing"),
        pytest.param([A, C], {1, 3}, [on(-5)], False, Served(2, 0), id="a missing off: the first planned session only"),
        pytest.param([A, C], {1, 3}, [on(-5), on(1), off(165)], False, Served(4, 0), id="two gates: on at one, on and off at the other"),
        pytest.param([A, B], set(), [on(-5), off(85)], False, Served(2, 0), id="unplanned: the day's sessions once, not each group"),
        pytest.param([A, B, C], {3}, [on(-5), off(85)], False, Served(0, 0), id="planned for C, present during A: nothing"),
        pytest.param([], set(), [on(-5), off(85)], False, Served(0, 0), id="a tap on a day without a session"),
        pytest.param([A, C], {1, 3}, [], True, Served(0, 4), id="confirmed planned duty, no taps"),
        pytest.param([A, C], {1, 3}, [on(-5), off(85)], True, Served(2, 2), id="confirmed, and taps that came late: no period twice"),
        pytest.param([A, B], set(), [], True, Served(0, 0), id="confirmed without planned duty counts nothing"),
        pytest.param([A], set(), [], False, Served(0, 0), id="no taps, no confirmation"),
    ],
)
def test_periods_served_on_a_day(spans, planned, taps, confirmed, expected):
    assert day_served(spans, planned, taps, confirmed=confirmed) == expected


def staff(staff_id: int, periods: int, kind: str = "teacher", confirmed: int = 0) -> Member:
    return Member(staff_id, f"老师{staff_id}", kind, Served(periods, confirmed))


def shares(plan) -> dict[int, tuple[int, int]]:
    return {line.staff_id: (line.share_fen, line.allowance_fen) for line in plan.lines}


def test_the_pool_is_80_percent_split_by_periods():
    plan = plan_pay([staff(1, 3), staff(2, 1, confirmed=1), staff(3, 1)], fee_income_fen=10_000, subsidy_fen=2_000)
    assert (plan.pool_fen, plan.periods, plan.allowance_fen) == (9_600, 6, 0)  # 80 % of 12,000
    assert shares(plan) == {1: (4_800, 0), 2: (3_200, 0), 3: (1_600, 0)}


def test_the_fen_left_by_rounding_go_to_the_largest_remainders_ties_to_the_lower_id():
    plan = plan_pay([staff(12, 1), staff(3, 1), staff(7, 1)], fee_income_fen=125, subsidy_fen=0)
    assert plan.pool_fen == 100
    assert shares(plan) == {3: (34, 0), 7: (33, 0), 12: (33, 0)}


def test_a_school_may_pay_more_than_80_percent():
    plan = plan_pay([staff(1, 2)], fee_income_fen=1_000, subsidy_fen=1, share_percent=90)
    assert plan.pool_fen == 901  # 90 % of 1,001 = 900.9, rounded up


def test_volunteers_are_paid_their_allowance_apart_from_the_share():
    plan = plan_pay([staff(1, 2), staff(2, 4, "volunteer"), staff(3, 0)], fee_income_fen=1_000, subsidy_fen=0,
                    volunteer_allowance_fen=500)
    assert (plan.pool_fen, plan.periods, plan.allowance_fen) == (800, 2, 2_000)
    assert shares(plan) == {1: (800, 0), 2: (0, 2_000)}  # nobody with 0 periods has a line


def test_a_share_below_80_percent_is_refused():
    with pytest.raises(RuleError) as refused:
        plan_pay([staff(1, 2)], fee_income_fen=1_000, subsidy_fen=0, share_percent=79)
    assert refused.value.text("en") == "the share paid to serving staff must be between 80 % and 100 %, not 79 % (P8.1)"


@pytest.mark.parametrize(
    "members",
    [pytest.param([], id="nobody"), pytest.param([staff(1, 0)], id="nobody served a period"),
     pytest.param([staff(2, 3, "volunteer")], id="only volunteers served")],
)
def test_a_pool_nobody_served_is_a_clear_error_not_a_division_by_zero(members):
    with pytest.raises(RuleError) as refused:
        plan_pay(members, fee_income_fen=1_000, subsidy_fen=250)
    assert refused.value.text("en") == "nobody served any period: 1000 fen cannot be split"


def test_no_income_and_no_periods_is_an_empty_month():
    plan = plan_pay([], fee_income_fen=0, subsidy_fen=0)
    assert (plan.pool_fen, plan.lines) == (0, [])


@given(
    periods=st.lists(st.integers(0, 400), min_size=1, max_size=30),
    fees=st.integers(0, 10**9),
    subsidy=st.integers(0, 10**8),
    share=st.integers(80, 100),
)
def test_the_split_adds_up_exactly_to_the_share(periods, fees, subsidy, share):
    members = [staff(i + 1, p) for i, p in enumerate(periods)]
    if not any(periods) and fees + subsidy:
        with pytest.raises(RuleError):
            plan_pay(members, fee_income_fen=fees, subsidy_fen=subsidy, share_percent=share)
        return
    plan = plan_pay(members, fee_income_fen=fees, subsidy_fen=subsidy, share_percent=share)
    assert plan.pool_fen * 100 >= (fees + subsidy) * share > (plan.pool_fen - 1) * 100  # at least the share, by < 1 fen
    assert sum(line.share_fen for line in plan.lines) == plan.pool_fen
    total = sum(periods)
    for line in plan.lines:  # each within a fen of their exact part
        assert abs(line.share_fen * total - plan.pool_fen * line.served.periods) < total


minutes = st.integers(-30, 200)


@given(
    taps=st.lists(st.tuples(minutes, st.sampled_from(["staff_on", "staff_off"])), max_size=8),
    planned=st.sets(st.sampled_from([1, 2, 3])),
    confirmed=st.booleans(),
)
def test_nobody_earns_more_periods_than_the_minutes_of_their_sessions_hold(taps, planned, confirmed):
    """A and B run at once, C after them: whatever the taps, one person serves at most 4 periods that day
    (two at a time, then two), and with a plan at most the periods of the planned sessions."""
    served = day_served([A, B, C], planned, [StaffTap(at(m), kind) for m, kind in taps], confirmed=confirmed)
    most = {frozenset(): 4, frozenset({1}): 2, frozenset({2}): 2, frozenset({3}): 2}.get(frozenset(planned), 4)
    assert 0 <= served.periods <= most
    if not confirmed or not planned:
        assert served.confirmed == 0
