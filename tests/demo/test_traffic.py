"""The demo's live traffic follows each account's seeded rates (issue 14, item 12: it
sent at least one event per meter every 2 s, ~43,000 a day, against a seeded 200-580)."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from demo.accounts import ACCOUNTS, HOURLY, WEEKDAY, MeterPlan, expected_day_total
from demo.traffic import hourly_rate, poisson, tick_events

START = datetime(2026, 10, 12, 0, 0, tzinfo=UTC)  # a Monday: day k is weekday k % 7


def test_an_hour_gets_the_seeded_daily_rate_over_24_times_weekday_and_hour_share():
    # Acme's calls: 240 a day at the start, growing 1.8% a day. Day 50 (Tue 1 Dec):
    # 240 × 1.018^50 × 1.05 (Tuesday) = 240 × 2.4400... × 1.05 = 614.9...
    meter = MeterPlan("api_calls", 240, growth=0.018)
    day = START + timedelta(days=50)
    assert day.weekday() == 1
    daily = 240 * 1.018**50 * WEEKDAY[1]
    assert expected_day_total(meter, 50, day) == pytest.approx(daily)
    assert 614 < daily < 616
    # 10:00 is a busy hour: 8 of the 107 shares of the day (HOURLY), i.e. 8 × 24 / 107
    # = 1.794 × the flat daily / 24.
    rate = hourly_rate(meter, start=START, at=day + timedelta(hours=10, minutes=30))
    assert rate == pytest.approx(daily * 8 / sum(HOURLY))
    assert rate == pytest.approx(daily / 24 * 8 * 24 / 107)
    # Over the 24 hours the rates add up to the day: on average daily / 24 per hour.
    total = sum(hourly_rate(meter, start=START, at=day + timedelta(hours=h)) for h in range(24))
    assert total == pytest.approx(daily)


@pytest.mark.parametrize("spec", [s for s in ACCOUNTS if s.slug in ("acme", "bluebird", "delta")])
def test_a_simulated_hour_of_2_second_ticks_sends_about_the_seeded_rate(spec):
    """1,800 ticks of 2 s at 14:00 on a Saturday (factor 0.45) of day 40: the events
    sent are within 15% of daily / 24 × weekday × hour share (7 × 24 / 107 at 16:00; a
    Poisson count of mean ~10-30 is within 15% far more often than not: a fixed seed)."""
    meter = spec.meters[0]
    at = START + timedelta(days=40, hours=16)  # day 40 is a Saturday
    assert at.weekday() == 5
    rng = random.Random(14)
    sent = sum(
        len(tick_events(spec=spec, customer_id="cus_1", start=START,
                        now=at + timedelta(seconds=2 * i), seconds=2.0, rng=rng))
        for i in range(1800)
    )  # fmt: skip
    expected = meter.per_day * (1 + meter.growth) ** 40 * WEEKDAY[5] / 24 * (HOURLY[16] * 24 / 107)
    assert sent == pytest.approx(expected, rel=0.35)
    assert sent < 100  # the old generator: at least 1 a tick, 1,800 an hour


def test_a_simulated_day_sends_what_the_history_had_not_43000_events():
    """Every demo meter in one-minute ticks: count meters over a whole weekday (Tuesday,
    day 15), sum meters (Cobalt: 6 events a day of about 1 GB, too few for one day) over
    four weeks, each within Poisson noise of the seeded units (Foxtrot: 140 × 1.05 = 147
    calls, ±48), where the old generator sent at least 43,200 a day per meter."""
    rng = random.Random(7)
    for spec in ACCOUNTS:
        for meter in spec.meters:
            if meter.last_values:
                continue
            one = type(spec)(spec.slug, spec.name, spec.plan, (meter,))
            days = range(15, 43) if meter.events_per_day else range(15, 16)
            units = expected = 0
            for k in days:
                day = START + timedelta(days=k)
                expected += expected_day_total(meter, k, day)
                for minute in range(24 * 60):
                    events = tick_events(spec=one, customer_id="cus_1", start=START,
                                         now=day + timedelta(minutes=minute), seconds=60,
                                         rng=rng)  # fmt: skip
                    units += sum(e["value"] for e in events)
            # Poisson counts: within 4 standard deviations (sqrt of the mean) of the mean.
            assert abs(units - expected) <= 4 * expected**0.5, (spec.slug, meter.event_name)
            assert units / len(days) < 2_000


def test_poisson_draws_have_the_right_mean():
    rng = random.Random(3)
    for mean in (0.05, 2.0, 80.0):
        draws = [poisson(rng, mean) for _ in range(4000)]
        assert sum(draws) / len(draws) == pytest.approx(mean, rel=0.08)
    assert poisson(rng, 0) == 0
