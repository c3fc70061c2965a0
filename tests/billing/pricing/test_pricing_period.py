"""Rating a subscription period: licensed in advance, metered in arrears."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.pricing import (
    PriceSpec,
    Tier,
    estimate_current_period,
    lines_total,
    rate_period,
)

D = Decimal

JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)
FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)
MAR_1 = datetime(2026, 3, 1, tzinfo=UTC)

PRO_BASE = PriceSpec(
    id="price_pro_base",
    currency="usd",
    unit_amount_decimal=D("9900"),
    usage_type="licensed",
    nickname="Pro",
)
PRO_CALLS = PriceSpec(
    id="price_pro_calls",
    currency="usd",
    billing_scheme="tiered",
    tiers_mode="graduated",
    tiers=(Tier(10_000, D("0")), Tier(None, D("0.2"))),
    usage_type="metered",
    nickname="API calls",
)
SEATS = PriceSpec(
    id="price_seats",
    currency="usd",
    unit_amount_decimal=D("800"),
    usage_type="licensed",
    nickname="Seats",
)


def test_pro_plan_invoice_at_period_end() -> None:
    lines = rate_period(
        items=[(PRO_BASE, 1), (PRO_CALLS, 12_345)],
        period_start=JAN_1,
        period_end=FEB_1,
        next_period_start=FEB_1,
        next_period_end=MAR_1,
    )
    base, calls = lines
    # the $99 fee is billed in advance, for February
    assert (base.price_id, base.kind, base.amount) == ("price_pro_base", "licensed", 9900)
    assert (base.period_start, base.period_end) == (FEB_1, MAR_1)
    assert base.quantity == 1
    # January's calls in arrears: (12,345 - 10,000) x 0.2 = 469
    assert (calls.price_id, calls.kind, calls.amount) == ("price_pro_calls", "metered", 469)
    assert (calls.period_start, calls.period_end) == (JAN_1, FEB_1)
    assert calls.quantity == 12_345
    assert calls.amount_decimal == D("469.0")
    assert [charge.quantity for charge in calls.tier_breakdown] == [10_000, 2_345]
    assert all(line.currency == "usd" and line.proration is False for line in lines)
    # 9,900 + 469 = 10,369
    assert lines_total(lines=lines) == 10_369


def test_seats_are_billed_in_advance() -> None:
    # 12 seats x 800 = 9,600 for the next period
    (line,) = rate_period(
        items=[(SEATS, 12)],
        period_start=JAN_1,
        period_end=FEB_1,
        next_period_start=FEB_1,
        next_period_end=MAR_1,
    )
    assert (line.amount, line.period_start, line.period_end) == (9600, FEB_1, MAR_1)
    assert line.description == "12 \u00d7 Seats"


def test_estimate_of_the_running_period() -> None:
    # mid-January with 4,000 calls so far: 9,900 + 0 (inside the allowance)
    lines = estimate_current_period(
        items=[(PRO_BASE, 1), (PRO_CALLS, 4_000)], period_start=JAN_1, period_end=FEB_1
    )
    assert [line.amount for line in lines] == [9900, 0]
    assert all((line.period_start, line.period_end) == (JAN_1, FEB_1) for line in lines)
    assert lines_total(lines=lines) == 9900


def test_estimate_with_overage_so_far() -> None:
    # 15,001 calls so far: 5,001 x 0.2 = 1,000.2 -> 1,000; plus 9,900 = 10,900
    lines = estimate_current_period(
        items=[(PRO_BASE, 1), (PRO_CALLS, 15_001)], period_start=JAN_1, period_end=FEB_1
    )
    assert lines_total(lines=lines) == 10_900


def test_lines_are_rounded_one_by_one() -> None:
    # two metered lines of 0.4 x 1 = 0.4 each -> 0 + 0 = 0 (not round(0.8) = 1)
    tiny = PriceSpec(
        id="price_tiny", currency="usd", unit_amount_decimal=D("0.4"), usage_type="metered"
    )
    lines = estimate_current_period(
        items=[(tiny, 1), (tiny, 1)], period_start=JAN_1, period_end=FEB_1
    )
    assert lines_total(lines=lines) == 0


def test_empty_subscription_has_no_lines() -> None:
    assert estimate_current_period(items=[], period_start=JAN_1, period_end=FEB_1) == []


def test_mixed_currencies_are_refused() -> None:
    eur = PriceSpec(id="price_eur", currency="eur", unit_amount_decimal=D("100"))
    with pytest.raises(ValueError, match="currency"):
        estimate_current_period(
            items=[(PRO_BASE, 1), (eur, 1)], period_start=JAN_1, period_end=FEB_1
        )


@pytest.mark.parametrize(
    ("start", "end", "next_start", "next_end"),
    [
        (FEB_1, JAN_1, FEB_1, MAR_1),
        (JAN_1, FEB_1, MAR_1, FEB_1),
        (JAN_1, MAR_1, FEB_1, MAR_1),
    ],
)
def test_periods_must_make_sense(
    start: datetime, end: datetime, next_start: datetime, next_end: datetime
) -> None:
    with pytest.raises(ValueError):
        rate_period(
            items=[(PRO_BASE, 1)],
            period_start=start,
            period_end=end,
            next_period_start=next_start,
            next_period_end=next_end,
        )
