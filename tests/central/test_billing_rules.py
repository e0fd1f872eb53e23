"""The money rules (central/billing/rules.py): named cases with amounts worked out by hand, and
properties that hold for any input (Hypothesis)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.billing.rules import (
    FeePlan,
    PlanKind,
    RuleError,
    Subsidy,
    check_plan,
    forgone,
    month_charge,
    refund,
    split_by_periods,
    staff_pool,
    subsidy,
)

MONTHLY = FeePlan(PlanKind.MONTHLY, 8_000)
PER_DAY = FeePlan(PlanKind.PER_DAY, 400)


def weekdays(year: int, month: int, *, holidays=(), makeup=()) -> list[date]:
    """A month's service days: its weekdays, less holidays, plus make-up Saturdays."""
    day, days = date(year, month, 1), []
    while day.month == month:
        if (day.isoweekday() < 6 and day not in holidays) or day in makeup:
            days.append(day)
        day += timedelta(days=1)
    return days


# September 2030: 21 weekdays; a holiday on Tue 10 Sep and a make-up Saturday on 28 Sep -> 21 service days.
SEPTEMBER = weekdays(2030, 9, holidays={date(2030, 9, 10)}, makeup={date(2030, 9, 28)})


def test_the_month_of_the_cases_has_the_days_counted_by_hand():
    assert len(SEPTEMBER) == 21 and date(2030, 9, 10) not in SEPTEMBER and date(2030, 9, 28) in SEPTEMBER
    assert SEPTEMBER[-1] == date(2030, 9, 30)


@pytest.mark.parametrize(
    ("plan", "cap", "refused"),
    [
        (FeePlan(PlanKind.MONTHLY, 10_000), 10_000, False),  # at the cap: allowed
        (FeePlan(PlanKind.MONTHLY, 10_001), 10_000, True),  # one fen over
        (FeePlan(PlanKind.PER_DAY, 434), 10_000, False),  # 434 x 23 = 9,982
        (FeePlan(PlanKind.PER_DAY, 435), 10_000, True),  # 435 x 23 = 10,005: could pass the cap
        (FeePlan(PlanKind.MONTHLY, 6_000), 5_000, True),  # a district with a lower cap
        (FeePlan(PlanKind.MONTHLY, -1), 10_000, True),
    ],
    ids=["monthly at the cap", "monthly one fen over", "per day just under", "per day that could pass the cap",
         "a lower district cap", "negative"],
)
def test_a_plan_that_could_charge_above_the_cap_is_refused_when_set(plan, cap, refused):
    if refused:
        with pytest.raises(RuleError):
            check_plan(plan, cap_fen=cap)
    else:
        check_plan(plan, cap_fen=cap)


def test_the_refusal_names_the_most_a_month_could_cost_and_the_cap():
    with pytest.raises(RuleError) as refused:
        check_plan(FeePlan(PlanKind.PER_DAY, 435), cap_fen=10_000)
    assert (refused.value.key, refused.value.params) == ("billing.over_cap", {"most": 10_005, "cap": 10_000})
    assert refused.value.text("en") == "the fee plan could charge 10005 fen in a month, above the cap of 10000 fen (P7.2)"


@pytest.mark.parametrize(
    ("plan", "days", "exempt", "cap", "owed"),
    [
        (MONTHLY, 0, False, 10_000, 8_000),  # monthly: enrolled is enough
        (MONTHLY, 21, True, 10_000, 0),  # P7.3: exempt pays nothing
        (PER_DAY, 12, False, 10_000, 4_800),
        (PER_DAY, 21, False, 10_000, 8_400),
        (PER_DAY, 30, False, 10_000, 10_000),  # the cap holds even if the days do not
        (MONTHLY, 0, False, 5_000, 5_000),  # a plan stored before the cap was lowered
    ],
    ids=["monthly", "exempt", "12 days", "21 days", "capped", "cap lowered later"],
)
def test_a_childs_month(plan, days, exempt, cap, owed):
    assert month_charge(plan, days_attended=days, exempt=exempt, cap_fen=cap) == owed


def test_what_an_exempt_child_would_have_paid_is_reported():
    assert forgone(PER_DAY, days_attended=15) == 6_000 and forgone(MONTHLY, days_attended=0) == 8_000


@pytest.mark.parametrize(
    ("withdrawn_on", "fee", "paid", "back"),
    [
        (date(2030, 9, 30), 8_000, 8_000, 0),  # withdrawn on the last service day: nothing left
        (date(2030, 8, 31), 8_000, 8_000, 8_000),  # before the month: all of it
        (date(2030, 9, 13), 8_000, 8_000, 4_571),  # 12 days left of 21 (16-20, 23-27, 28, 30): 4571.43
        (date(2030, 9, 10), 8_000, 8_000, 5_714),  # on the holiday: 15 days left (11-13 and the 12), 5714.29
        (date(2030, 9, 27), 10_000, 10_000, 952),  # 2 days left (30 Sep, 28 Sep make-up): 952.38
        (date(2030, 9, 13), 8_000, 3_000, 3_000),  # never more than was paid
        (date(2030, 9, 13), 8_000, 0, 0),  # exempt (P7.3): paid nothing, gets nothing
    ],
    ids=["last service day", "before the month", "mid-month", "on a holiday", "before a make-up day",
         "paid part", "exempt"],
)
def test_refund_on_withdrawal(withdrawn_on, fee, paid, back):
    assert refund(monthly_fee_fen=fee, paid_fen=paid, service_days=SEPTEMBER, withdrawn_on=withdrawn_on) == back


def test_a_refund_over_days_of_two_months_is_refused():
    with pytest.raises(RuleError):
        refund(monthly_fee_fen=8_000, paid_fen=8_000, service_days=[date(2030, 9, 30), date(2030, 10, 8)],
               withdrawn_on=date(2030, 9, 1))


def test_subsidy_per_child_and_per_period():
    assert subsidy(Subsidy(per_child_month_fen=2_000), children=30, periods=400) == 60_000
    assert subsidy(Subsidy(per_period_fen=150), children=30, periods=400) == 60_000
    assert subsidy(Subsidy(), children=30, periods=400) == 0


@pytest.mark.parametrize(
    ("fees", "sub", "share", "pool"),
    [(240_000, 60_000, 80, 240_000), (100_001, 0, 80, 80_001), (100_000, 0, 95, 95_000), (0, 0, 80, 0)],
    ids=["80 %", "rounded up, never below", "a school paying more", "nothing"],
)
def test_the_least_paid_to_serving_staff(fees, sub, share, pool):
    assert staff_pool(fee_income_fen=fees, subsidy_fen=sub, share_percent=share) == pool


@pytest.mark.parametrize("share", [79, 101])
def test_a_share_below_80_or_above_100_percent_is_refused(share):
    with pytest.raises(RuleError):
        staff_pool(fee_income_fen=100, subsidy_fen=0, share_percent=share)


@pytest.mark.parametrize(
    ("pool", "periods", "split"),
    [
        (10_000, {"王": 3, "李": 3, "张": 3}, {"张": 3_334, "李": 3_333, "王": 3_333}),  # 1 fen left: by name
        (240_000, {"王": 40, "李": 20, "张": 0}, {"王": 160_000, "李": 80_000, "张": 0}),
        (100, {"a": 1, "b": 2, "c": 4}, {"a": 14, "b": 29, "c": 57}),  # 14.28, 28.57, 57.14: 99 fen; the 1 left goes to b (.57)
        (0, {"a": 0}, {"a": 0}),
    ],
    ids=["three equal", "one served none", "largest remainders", "nothing to split"],
)
def test_the_staff_split_by_periods_is_exact(pool, periods, split):
    assert split_by_periods(pool, periods) == split


def test_a_pool_with_nobody_who_served_is_refused():
    with pytest.raises(RuleError):
        split_by_periods(500, {"a": 0})


# --- properties ----------------------------------------------------------------------------------

fen = st.integers(min_value=0, max_value=10_000_000)
plans = st.builds(FeePlan, st.sampled_from(list(PlanKind)), st.integers(min_value=0, max_value=20_000))


@given(plans, st.integers(min_value=0, max_value=31), st.booleans(), st.integers(min_value=0, max_value=20_000))
def test_no_month_is_above_the_cap_and_exempt_children_pay_nothing(plan, days, exempt, cap):
    owed = month_charge(plan, days_attended=days, exempt=exempt, cap_fen=cap)
    assert 0 <= owed <= cap
    if exempt:
        assert owed == 0


@given(fen, fen, st.integers(min_value=0, max_value=40), st.integers(min_value=0, max_value=40))
def test_no_refund_exceeds_what_was_paid_or_the_fee(fee, paid, count, after):
    days = SEPTEMBER[: max(1, min(count, len(SEPTEMBER)))]
    withdrawn = date(2030, 9, 1) + timedelta(days=after - 1)
    back = refund(monthly_fee_fen=fee, paid_fen=paid, service_days=days, withdrawn_on=withdrawn)
    assert 0 <= back <= min(paid, fee)


@given(fen, st.dictionaries(st.text(min_size=1, max_size=4), st.integers(min_value=0, max_value=500), min_size=1, max_size=30))
def test_the_staff_split_sums_exactly_to_the_pool_and_follows_the_periods(pool, periods):
    if sum(periods.values()) == 0:
        return
    split = split_by_periods(pool, periods)
    assert sum(split.values()) == pool
    total = sum(periods.values())
    for name, p in periods.items():
        exact = pool * p / total
        assert exact - 1 < split[name] < exact + 1  # off by less than one fen
        if p == 0:
            assert split[name] == 0


@given(fen, fen, st.integers(min_value=80, max_value=100))
def test_the_staff_pool_is_never_below_the_share(fees, sub, share):
    pool = staff_pool(fee_income_fen=fees, subsidy_fen=sub, share_percent=share)
    assert pool * 100 >= (fees + sub) * share and pool <= fees + sub
