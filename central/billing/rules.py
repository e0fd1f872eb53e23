"""The money rules of the service, pure: integer fen in, integer fen out, each with its P-number.

No I/O here: the billing service (statements, payments, the ledger) calls these with what it read.
Every amount is an ``int`` of fen (1 CNY = 100 fen); a rule that divides rounds down to the fen, and
where parts must add up to a whole (the staff pay split) the fen left over by rounding go, one each,
to the largest remainders.

- P7.2: no child is charged more than the district's cap for a month (default 10,000 fen); a fee plan
  that could charge more is refused when it is set (``check_plan``), not cut at billing time.
- P7.3: a child of a registered poor family (建档立卡) pays 0; what was forgone is reported.
- P7.1: the government subsidy is a district setting, per child per month or per period served.
- P7.4: refund on withdrawal = monthly fee × service days left in the month after the withdrawal
  date ÷ service days in the month, rounded down to the fen.
- P8.1: at least the school's share (default 80 %, never below 80 %) of (fee income + subsidy) is paid
  to serving staff, split in proportion to the periods each served.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from central.core.errors import Invalid

DEFAULT_CAP_FEN = 10_000  # P7.2: 100 CNY per student per month
MIN_STAFF_SHARE_PERCENT = 80  # P8.1: never below


class PlanKind(StrEnum):
    MONTHLY = "monthly"  # the seed's rule (default): one fee per month of enrollment
    PER_DAY = "per_day"  # a district setting: per service day attended


class RuleError(Invalid):
    """A rule refused its input: a localized 422 (``key`` and ``params`` name the catalogue's message)."""


@dataclass(frozen=True)
class FeePlan:
    """A school's fee for a term: ``amount_fen`` a month (monthly) or a service day attended (per_day)."""

    kind: PlanKind
    amount_fen: int


def check_plan(plan: FeePlan, *, cap_fen: int = DEFAULT_CAP_FEN, max_service_days: int = 23) -> None:
    """P7.2, when the plan is set: refuse a plan that could charge a child more than the cap in a month.

    A per-day plan is refused if ``amount × max_service_days`` (the most service days a month can have:
    23 weekdays, make-up days included by the caller) passes the cap; the rule is that the cap can
    never be reached by attending, not that attendance is cut off at the cap.
    """
    if plan.amount_fen < 0:
        raise RuleError("billing.negative", amount=plan.amount_fen)
    if cap_fen < 0:
        raise RuleError("billing.negative", amount=cap_fen)
    most = plan.amount_fen if plan.kind is PlanKind.MONTHLY else plan.amount_fen * max_service_days
    if most > cap_fen:
        raise RuleError("billing.over_cap", most=most, cap=cap_fen)


def month_charge(plan: FeePlan, *, days_attended: int, exempt: bool, cap_fen: int = DEFAULT_CAP_FEN) -> int:
    """What one child owes for one month (P7.2, P7.3): 0 when exempt; never above the cap.

    ``days_attended`` counts for a per-day plan only. The cap is checked again here, so a plan stored
    before a lower cap was set cannot charge above the new one.
    """
    if days_attended < 0:
        raise RuleError("billing.negative", amount=days_attended)
    if exempt:
        return 0
    due = plan.amount_fen if plan.kind is PlanKind.MONTHLY else plan.amount_fen * days_attended
    return min(due, cap_fen)


def forgone(plan: FeePlan, *, days_attended: int, cap_fen: int = DEFAULT_CAP_FEN) -> int:
    """What an exempt child (P7.3) would have paid: the report shows it."""
    return month_charge(plan, days_attended=days_attended, exempt=False, cap_fen=cap_fen)


def refund(*, monthly_fee_fen: int, paid_fen: int, service_days: Iterable[date], withdrawn_on: date) -> int:
    """P7.4: the refund of a child withdrawn on ``withdrawn_on`` (the last day they may still attend).

    monthly fee × (service days of the month after ``withdrawn_on``) ÷ (service days of the month),
    rounded down to the fen; never more than was paid for the month. ``service_days`` are the month's
    service days (school days with a session for the child's group).
    """
    days = sorted(set(service_days))
    if monthly_fee_fen < 0 or paid_fen < 0:
        raise RuleError("billing.negative", amount=min(monthly_fee_fen, paid_fen))
    if not days:
        return 0
    if any((d.year, d.month) != (days[0].year, days[0].month) for d in days):
        raise RuleError("billing.one_month")
    left = sum(1 for d in days if d > withdrawn_on)
    return min(monthly_fee_fen * left // len(days), paid_fen)


@dataclass(frozen=True)
class Subsidy:
    """P7.1, a district setting: fen per child per month, or per period served (0 by default)."""

    per_child_month_fen: int = 0
    per_period_fen: int = 0


def subsidy(rule: Subsidy, *, children: int, periods: int) -> int:
    """The month's government subsidy for a school: per enrolled child, or per period served."""
    if children < 0 or periods < 0:
        raise RuleError("billing.negative", amount=min(children, periods))
    return rule.per_child_month_fen * children + rule.per_period_fen * periods


def staff_pool(*, fee_income_fen: int, subsidy_fen: int, share_percent: int = MIN_STAFF_SHARE_PERCENT) -> int:
    """P8.1: the least the school pays its serving staff: ``share_percent`` % of (fees + subsidy),
    rounded up to the fen (rounding may not take the share below the percentage)."""
    if share_percent < MIN_STAFF_SHARE_PERCENT or share_percent > 100:
        raise RuleError("billing.staff_share", share=share_percent, least=MIN_STAFF_SHARE_PERCENT)
    base = fee_income_fen + subsidy_fen
    if base < 0:
        raise RuleError("billing.negative", amount=base)
    return -(-base * share_percent // 100)


def split_by_periods(pool_fen: int, periods: Mapping[str, int]) -> dict[str, int]:
    """P8.1's default split: the pool in proportion to the periods each staff member served, exact in
    fen. Each gets the rounded-down share; the fen left over go one each to the largest remainders
    (ties: by name, so the split is the same every time). Staff with 0 periods get 0."""
    if pool_fen < 0 or any(p < 0 for p in periods.values()):
        raise RuleError("billing.negative", amount=min([pool_fen, *periods.values()]))
    total = sum(periods.values())
    if total == 0:
        if pool_fen:
            raise RuleError("billing.no_periods", pool=pool_fen)
        return {name: 0 for name in periods}
    shares = {name: pool_fen * p // total for name, p in periods.items()}
    remainders = sorted(periods, key=lambda name: (-(pool_fen * periods[name] % total), name))
    for name in remainders[: pool_fen - sum(shares.values())]:
        shares[name] += 1
    return shares
