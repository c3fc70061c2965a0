"""Projections (pure): hand-computed cases for each method, the range, and cost."""

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from billing.pricing import PriceSpec, Tier
from usage.backtest import (
    add_months,
    checkpoint,
    mean_absolute_percentage_error,
    monthly_periods,
)
from usage.projection_cost import project_cost
from usage.projection_fit import weekday_factors
from usage.projections import (
    Projection,
    daily_totals,
    project_usage,
    round_half_up,
)

NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)  # a Sunday
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)


def days(start: datetime, values) -> list[tuple[datetime, int]]:
    return [(start + timedelta(days=i), v) for i, v in enumerate(values)]


def weekday_pattern(day: date) -> int:
    """1,000 on Monday..Friday, 200 (20%) on Saturday and Sunday."""
    return 200 if day.weekday() >= 5 else 1000


# -- linear -------------------------------------------------------------------------------
def test_linear_run_rate_with_under_seven_days_of_data():
    # 5 days of 1,000/day in a 30-day period: 5,000 / 5 days x 30 days = 30,000.
    p = project_usage(
        series=days(NOV_1, [1000] * 5),
        aggregation="sum",
        period_start=NOV_1,
        period_end=DEC_1,
        now=NOV_1 + timedelta(days=5),
    )
    assert p == Projection(
        usage_so_far=5000,
        projected=30000,
        low=30000,  # no day-to-day variation: the range collapses
        high=30000,
        method="linear",
        note=p.note,
    )


def test_ten_even_days_give_the_same_30000_through_the_weighted_method():
    # 10 days of 1,000/day: 7+ days of data switches to the weighted weekday rate; every
    # weekday factor is 1 and the rate 1,000, so 10,000 + 20 x 1,000 = 30,000.
    p = project_usage(
        series=days(NOV_1, [1000] * 10),
        aggregation="count",
        period_start=NOV_1,
        period_end=DEC_1,
        now=NOV_1 + timedelta(days=10),
    )
    assert (p.method, p.usage_so_far, p.projected, p.low, p.high) == (
        "weighted_weekday",
        10000,
        30000,
        30000,
        30000,
    )


def test_linear_range_by_hand():
    # A 10-day period, 4 complete days: 800, 1,200, 900, 1,100 = 4,000, rate 1,000/day.
    # projected = 4,000 / 4 x 10 = 10,000.
    # residuals -200, 200, -100, 100: sigma = sqrt(100,000 / 3); R = 6 days, n_eff = 4:
    # half width = 1.2816 x sigma x sqrt(6 + 36/4) = 1.2816 x sqrt(500,000) = 906.228
    # -> low 9,093.77 -> 9,094; high 10,906.23 -> 10,906.
    p = project_usage(
        series=days(NOV_1, [800, 1200, 900, 1100]),
        aggregation="sum",
        period_start=NOV_1,
        period_end=NOV_1 + timedelta(days=10),
        now=NOV_1 + timedelta(days=4),
    )
    assert (p.method, p.projected, p.low, p.high) == ("linear", 10000, 9094, 10906)


def test_under_two_complete_days_gives_a_wide_range_whose_low_is_usage_so_far():
    # 36 hours, 50 units an hour = 1,800 units: rate 1,800 / 1.5 = 1,200/day; 28.5 days
    # left: projected 1,800 + 1,200 x 28.5 = 36,000. One complete day only, so sigma falls
    # back to the rate (1,200) and the low would go below usage: clamped to 1,800.
    hours = [(NOV_1 + timedelta(hours=h), 50) for h in range(36)]
    p = project_usage(
        series=hours,
        aggregation="sum",
        period_start=NOV_1,
        period_end=DEC_1,
        now=NOV_1 + timedelta(hours=36),
    )
    assert (p.method, p.usage_so_far, p.projected, p.low) == ("linear", 1800, 36000, 1800)
    assert p.high > 2 * p.projected
    assert "wide" in p.note


def test_less_than_a_day_in_and_no_history_projects_nothing():
    # A burst of 600 units in the first 12 hours must not become 600 / 0.5 x 30 = 36,000
    # (or, minutes in, billions): too early to project.
    hours = [(NOV_1 + timedelta(hours=h), 50) for h in range(12)]
    p = project_usage(
        series=hours,
        aggregation="sum",
        period_start=NOV_1,
        period_end=DEC_1,
        now=NOV_1 + timedelta(hours=12),
    )
    assert (p.method, p.projected, p.low, p.high) == ("none", 600, 600, 600)
    assert "too early" in p.note


def test_less_than_a_day_in_uses_the_earlier_days_rate():
    # 5 earlier days of 1,000 (Oct 27-31): rate 1,000/day. 12 hours in with 600 used,
    # 29.5 days left: projected 600 + 1,000 x 29.5 = 30,100.
    history = [(date(2026, 10, 27 + i), 1_000) for i in range(5)]
    hours = [(NOV_1 + timedelta(hours=h), 50) for h in range(12)]
    p = project_usage(
        series=hours,
        aggregation="sum",
        period_start=NOV_1,
        period_end=DEC_1,
        now=NOV_1 + timedelta(hours=12),
        history=history,
    )
    assert (p.method, p.usage_so_far, p.projected) == ("linear", 600, 30_100)
    assert p.low <= p.projected <= p.high


def test_hourly_and_daily_buckets_project_the_same():
    hourly = [(NOV_1 + timedelta(hours=h), 10 + h % 24) for h in range(24 * 5 + 7)]
    by_day: dict[datetime, int] = {}
    for ts, v in hourly:
        key = ts.replace(hour=0)
        by_day[key] = by_day.get(key, 0) + v
    now = NOV_1 + timedelta(days=5, hours=7)
    common = dict(aggregation="sum", period_start=NOV_1, period_end=DEC_1, now=now)
    assert project_usage(series=hourly, **common) == project_usage(
        series=sorted(by_day.items()), **common
    )


# -- weighted weekday ---------------------------------------------------------------------
def test_weekday_seasonality_by_hand():
    # Weekdays 1,000, weekends 200 (20% of a weekday), for the 4 weeks before the period
    # (history, Oct 4..Oct 31) and the first two weeks of November (Sun Nov 1 .. Sat Nov 14).
    # Weekday means: Mon..Fri 1,000, Sat/Sun 200; their mean is 5,400/7, so the factors
    # are 7,000/5,400 = 1.296 and 1,400/5,400 = 0.259, and every observation divided by
    # its factor is 5,400/7 = 771.43: the weighted rate is 771.43 whatever the weights.
    # A remaining weekday is expected at 771.43 x 1.296 = 1,000, a weekend day at 200.
    # So far: 2 x (5 x 1,000 + 2 x 200) = 10,800.
    # Remaining Nov 15..Nov 30 (16 days): Sun 15; Mon-Fri 16-20; Sat-Sun 21-22;
    # Mon-Fri 23-27; Sat-Sun 28-29; Mon 30 -> 11 weekdays and 5 weekend days:
    # 11 x 1,000 + 5 x 200 = 12,000. Projected: 10,800 + 12,000 = 22,800 (the linear
    # run rate would say 10,800 / 14 x 30 = 23,143).
    history = [
        (date(2026, 10, 4) + timedelta(days=i), weekday_pattern(date(2026, 10, 4) + timedelta(i)))
        for i in range(28)
    ]
    series = [
        (NOV_1 + timedelta(days=i), weekday_pattern((NOV_1 + timedelta(i)).date()))
        for i in range(14)
    ]
    p = project_usage(
        series=series,
        aggregation="sum",
        period_start=NOV_1,
        period_end=DEC_1,
        now=datetime(2026, 11, 15, tzinfo=UTC),
        history=history,
    )
    assert (p.method, p.usage_so_far, p.projected) == ("weighted_weekday", 10800, 22800)
    assert p.low == p.high == 22800  # the pattern is exact: no residuals


def test_weekday_seasonality_mid_day_counts_the_rest_of_today():
    # As above but at Sunday Nov 15, 12:00, with 100 of Sunday's 200 already used (hourly):
    # so far 10,900; the rest: half a Sunday (100) + 11 x 1,000 + 4 x 200 = 11,900.
    history = [
        (date(2026, 10, 4) + timedelta(i), weekday_pattern(date(2026, 10, 4) + timedelta(i)))
        for i in range(28)
    ]
    series = [
        (NOV_1 + timedelta(days=i), weekday_pattern((NOV_1 + timedelta(i)).date()))
        for i in range(14)
    ]
    nov_15 = datetime(2026, 11, 15, tzinfo=UTC)
    series += [(nov_15 + timedelta(hours=h), 25) for h in range(0, 12, 3)]
    p = project_usage(
        series=series,
        aggregation="sum",
        period_start=NOV_1,
        period_end=DEC_1,
        now=nov_15 + timedelta(hours=12),
        history=history,
    )
    assert (p.usage_so_far, p.projected) == (10900, 22800)


def test_steady_growth_is_projected_by_the_growth_line():
    # Usage grows by 50 a day: day k (k = 0 on Oct 4) uses 1,000 + 50k. History Oct 4..31
    # (k = 0..27), this period Nov 1..14 (k = 28..41) so far:
    #   14 x 1,000 + 50 x (28 + ... + 41) = 14,000 + 50 x 483 = 38,150.
    # Every day equals its centred 7-day mean, so every weekday factor is 1; the weighted
    # line through the daily rates is exact (slope 50, no residuals) and significant, so
    # the remaining Nov 15..30 (k = 42..57) are 16 x 1,000 + 50 x (42 + ... + 57) =
    # 16,000 + 50 x 792 = 55,600. Projected 38,150 + 55,600 = 93,750, the actual.
    # (The flat recency-weighted rate, 2,603 a day, would project about 79,800.)
    first = date(2026, 10, 4)
    history = [(first + timedelta(k), 1000 + 50 * k) for k in range(28)]
    series = [(NOV_1 + timedelta(days=k - 28), 1000 + 50 * k) for k in range(28, 42)]
    p = project_usage(
        series=series,
        aggregation="sum",
        period_start=NOV_1,
        period_end=DEC_1,
        now=datetime(2026, 11, 15, tzinfo=UTC),
        history=history,
    )
    assert (p.method, p.usage_so_far, p.projected, p.low, p.high) == (
        "weighted_weekday",
        38150,
        93750,
        93750,
        93750,
    )
    assert "growing +1.6% a day" in p.note  # 50 / 3,050 (the rate on Nov 14)
    assert weekday_factors(history) == pytest.approx((1.0,) * 7)


def test_flat_noisy_usage_rarely_takes_a_growth_line():
    rng = random.Random(5)
    with_line = 0
    for _ in range(200):
        history = [
            (date(2026, 10, 4) + timedelta(k), round(rng.gauss(1000, 250))) for k in range(28)
        ]
        series = days(NOV_1, [round(rng.gauss(1000, 250)) for _ in range(14)])
        p = project_usage(
            series=series,
            aggregation="sum",
            period_start=NOV_1,
            period_end=DEC_1,
            now=datetime(2026, 11, 15, tzinfo=UTC),
            history=history,
        )
        with_line += "growing" in p.note
    assert with_line <= 20  # a 2-standard-error test: about 5% expected


def test_weekday_factors_are_clamped():
    obs = [(date(2026, 11, 2) + timedelta(i), 0 if i % 7 == 6 else 1000) for i in range(14)]
    factors = weekday_factors(obs)
    assert factors[6] == 0.2  # Sundays used nothing: clamped up from 0
    assert factors[0] == pytest.approx(7 / 6)


def test_history_day_that_the_period_starts_inside_is_ignored():
    # The period starts Nov 1 at 14:00: Nov 1 is not a complete day before it, so a history
    # total for Nov 1 must not count; Oct 26..31 (6 days) plus nothing complete yet in
    # the period is under 7 days, so the method stays linear.
    start = NOV_1 + timedelta(hours=14)
    history = [(date(2026, 10, 26) + timedelta(i), 1000) for i in range(7)]  # .. Nov 1
    p = project_usage(
        series=[(start, 500)],
        aggregation="sum",
        period_start=start,
        period_end=start + timedelta(days=30),
        now=start + timedelta(hours=12),
        history=history,
    )
    assert p.method == "linear"
    assert (p.usage_so_far, p.projected) == (500, 30000)  # 500 / 0.5 day x 30 days


def test_history_overlapping_the_period_is_ignored():
    common = dict(
        series=days(NOV_1, [1000] * 5),
        aggregation="sum",
        period_start=NOV_1,
        period_end=DEC_1,
        now=NOV_1 + timedelta(days=5),
    )
    overlapping = [(date(2026, 11, 1) + timedelta(i), 99_999) for i in range(5)]
    assert project_usage(**common, history=overlapping) == project_usage(**common)


# -- last, none ---------------------------------------------------------------------------
def test_last_meter_projects_the_current_value_never_below_it_up_to_the_periods_max():
    series = [(NOV_1 + timedelta(hours=h), v) for h, v in enumerate([5, 8, 3, 6])]
    p = project_usage(
        series=series,
        aggregation="last",
        period_start=NOV_1,
        period_end=DEC_1,
        now=NOV_1 + timedelta(days=2),
    )
    # Values 5, 8, 3, 6: current 6. Issue 14: the range no longer drops to the period's
    # low of 3 (below the current value); it runs from 6 up to the period's high of 8.
    assert (p.method, p.usage_so_far, p.projected, p.low, p.high) == ("last_value", 6, 6, 6, 8)


@pytest.mark.parametrize("aggregation", ["sum", "count", "last"])
def test_nothing_elapsed_is_method_none(aggregation):
    for now in (NOV_1, NOV_1 - timedelta(days=3)):
        p = project_usage(
            series=[], aggregation=aggregation, period_start=NOV_1, period_end=DEC_1, now=now
        )
        assert (p.method, p.usage_so_far, p.projected, p.low, p.high) == ("none", 0, 0, 0, 0)


def test_a_closed_period_projects_its_final_usage():
    p = project_usage(
        series=days(NOV_1, [100] * 30),
        aggregation="sum",
        period_start=NOV_1,
        period_end=DEC_1,
        now=DEC_1 + timedelta(days=4),
    )
    assert p.usage_so_far == p.projected == p.low == p.high == 3000


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        project_usage(
            series=[],
            aggregation="sum",
            period_start=datetime(2026, 11, 1),
            period_end=DEC_1,
            now=NOV_1,
        )


# -- the range is an 80% interval ---------------------------------------------------------
def test_range_holds_the_actual_in_at_least_70_percent_of_200_noisy_trials():
    """Daily usage = weekday pattern x (1 + 25% gaussian noise), 28 days of history, a
    projection on a random day 3..25 of a 30-day period; fixed seed, so deterministic."""
    rng = random.Random(20261124)
    hits = 0
    for trial in range(200):
        start = NOV_1 + timedelta(days=trial % 7)
        base = rng.choice([50, 1000, 40_000])

        def day_value(day: datetime, base=base) -> int:
            mean = base * (1.0 if day.weekday() < 5 else 0.3)
            return max(0, round(rng.gauss(mean, 0.25 * mean)))

        history = [
            ((start - timedelta(days=i)).date(), day_value(start - timedelta(days=i)))
            for i in range(28, 0, -1)
        ]
        period = days(start, [day_value(start + timedelta(days=i)) for i in range(30)])
        cut = rng.randint(3, 25)
        p = project_usage(
            series=period[:cut],
            aggregation="sum",
            period_start=start,
            period_end=start + timedelta(days=30),
            now=start + timedelta(days=cut),
            history=history,
        )
        actual = sum(v for _, v in period)
        assert p.low <= p.projected <= p.high
        hits += p.low <= actual <= p.high
    assert hits >= 140, f"{hits}/200 in range"


# -- cost ---------------------------------------------------------------------------------
VOLUME = PriceSpec(
    id="price_volume",
    currency="usd",
    billing_scheme="tiered",
    tiers_mode="volume",
    tiers=(
        Tier(up_to=1000, unit_amount_decimal=Decimal(10)),
        Tier(up_to=None, unit_amount_decimal=Decimal(5)),
    ),
    usage_type="metered",
)


def test_cost_under_volume_tiers_where_more_usage_costs_less():
    # Volume: all units at the rate of the tier the total falls in.
    # low 900 -> 900 x 10 = 9,000; projected 1,000 -> 1,000 x 10 = 10,000;
    # 1,001 (a tier edge inside the range) -> 1,001 x 5 = 5,005; high 1,100 -> 5,500.
    # So the range is 5,005 .. 10,000: cheaper than both bounds, dearest at the middle.
    projection = Projection(
        usage_so_far=500, projected=1000, low=900, high=1100, method="linear", note=""
    )
    assert project_cost(price_spec=VOLUME, projection=projection) == (5005, 10000, 10000)


def test_cost_of_a_hybrid_allowance_with_sub_cent_overage():
    # Graduated: 10,000 free, then 0.2 cent per call.
    # low 9,000 -> 0; projected 12,345 -> 2,345 x 0.2 = 469; high 15,002 -> 5,002 x 0.2 =
    # 1,000.4 -> 1,000.
    price = PriceSpec(
        id="price_hybrid",
        currency="usd",
        billing_scheme="tiered",
        tiers_mode="graduated",
        tiers=(Tier(up_to=10_000), Tier(up_to=None, unit_amount_decimal=Decimal("0.2"))),
        usage_type="metered",
    )
    projection = Projection(
        usage_so_far=9000, projected=12_345, low=9000, high=15_002, method="linear", note=""
    )
    assert project_cost(price_spec=price, projection=projection) == (0, 469, 1000)


# -- small helpers ------------------------------------------------------------------------
def test_round_half_up():
    assert [round_half_up(x) for x in (0.5, 1.5, 2.5, 2.4999, 906.5)] == [1, 2, 3, 2, 907]


def test_daily_totals_fill_days_without_usage_and_skip_partial_days():
    series = [(NOV_1 + timedelta(hours=5), 7), (NOV_1 + timedelta(days=2, hours=1), 3)]
    got = daily_totals(series=series, start=NOV_1, end=NOV_1 + timedelta(days=3, hours=4))
    assert got == [(date(2026, 11, 1), 7), (date(2026, 11, 2), 0), (date(2026, 11, 3), 3)]


def test_monthly_periods_clamp_the_anchor_day_like_stripe():
    anchor = datetime(2026, 1, 31, tzinfo=UTC)
    assert add_months(anchor, 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert add_months(anchor, 2) == datetime(2026, 3, 31, tzinfo=UTC)
    assert monthly_periods(anchor=anchor, until=datetime(2026, 3, 31, tzinfo=UTC)) == [
        (anchor, datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)),
    ]


def test_checkpoint_is_floored_to_the_hour():
    # 25% of November (30 days) is 7.5 days: Nov 8, 12:00.
    assert checkpoint(period_start=NOV_1, period_end=DEC_1, fraction=0.25) == datetime(
        2026, 11, 8, 12, tzinfo=UTC
    )
    # 25% of a 31-day month is 7.75 days: Dec 8, 18:00.
    jan_1 = datetime(2027, 1, 1, tzinfo=UTC)
    assert checkpoint(period_start=DEC_1, period_end=jan_1, fraction=0.25) == datetime(
        2026, 12, 8, 18, tzinfo=UTC
    )


def test_mape_skips_zero_actuals():
    # |110 - 100| / 100 = 10%, |50 - 100| / 100 = 50%: mean 30%.
    assert mean_absolute_percentage_error([(110, 100), (50, 100), (5, 0)]) == Decimal(30)
    assert mean_absolute_percentage_error([(5, 0)]) is None
