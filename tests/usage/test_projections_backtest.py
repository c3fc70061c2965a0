"""The projections' database side: series from rollups, and ``manage.py projections_backtest``."""

import re
from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from billing.models import Account, Meter
from usage.models import UsageRollup
from usage.selectors.projection_inputs import meter_projection, rollup_daily_totals
from usage.selectors.rollups import rollup_series

pytestmark = pytest.mark.django_db

JUN_1 = datetime(2026, 6, 1, tzinfo=UTC)
SEP_1 = datetime(2026, 9, 1, tzinfo=UTC)


@pytest.fixture
def account() -> Account:
    return Account.objects.create(name="Acme", billing_email="billing@acme.test")


def make_meter(event_name: str, aggregation: str) -> Meter:
    return Meter.objects.create(
        event_name=event_name, display_name=event_name, aggregation=aggregation
    )


def store_hours(account, meter, start, end, value_at) -> None:
    """One rollup per hour in [start, end): ``value_at(hour)`` as sum, count and last."""
    rows = []
    hour = start
    while hour < end:
        value = value_at(hour)
        rows.append(
            UsageRollup(
                account=account,
                meter=meter,
                hour=hour,
                sum_value=value,
                event_count=value,
                last_value=value,
                last_timestamp=hour + timedelta(minutes=59),
            )
        )
        hour += timedelta(hours=1)
    UsageRollup.objects.bulk_create(rows)


def backtest(*args) -> str:
    out = StringIO()
    call_command("projections_backtest", *args, stdout=out)
    return out.getvalue()


def row(output: str, checkpoint: str) -> tuple[int, str, str]:
    match = re.search(rf"^{checkpoint}\s+(\d+)\s+(\S+)\s+(\S+)$", output, re.MULTILINE)
    assert match, output
    return int(match[1]), match[2], match[3]


def test_perfectly_linear_usage_backtests_to_zero_error(account):
    # 100 calls every hour, June 1 .. August 31: three complete monthly periods anchored on
    # June 1 (June 30 days, July and August 31). Worked for June at 25%: the checkpoint is
    # 7.5 days in (June 8, 12:00): 180 h x 100 = 18,000 so far; 7 complete days of 2,400
    # (weighted weekday method, every factor 1, rate 2,400/day); 22.5 days left x 2,400 =
    # 54,000; 18,000 + 54,000 = 72,000 = the actual 30 x 2,400. Every checkpoint of every
    # period is exact the same way: MAPE 0.0%, and the (collapsed) range holds the actual.
    api_calls = make_meter("api_calls", "sum")
    store_hours(account, api_calls, JUN_1, SEP_1, lambda hour: 100)

    output = backtest()

    assert "3 complete periods of 1 account meters" in output
    for checkpoint in ("25%", "50%", "75%"):
        assert row(output, checkpoint) == (3, "0.0%", "100.0%")
    assert "methods: weighted_weekday 9" in output


def test_last_value_meter_backtest_by_hand(account):
    # Seats: 100 for the first 20 days of each period, then 200. The projection of a last
    # meter is the value so far, the actual the value at period end (200):
    #   25% (7.5 / 7.75 days in): 100 vs 200 -> |100 - 200| / 200 = 50% in all 3 periods;
    #   50% (15 / 15.5 days): 100 vs 200 -> 50%;
    #   75% (22.5 / 23.25 days): 200 vs 200 -> 0%.
    # The range (lowest..highest value so far) holds 200 only once it has been seen.
    seats = make_meter("seats", "last")
    for start, end in ((JUN_1, datetime(2026, 7, 1, tzinfo=UTC)),
                       (datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC)),
                       (datetime(2026, 8, 1, tzinfo=UTC), SEP_1)):  # fmt: skip
        switch = start + timedelta(days=20)
        store_hours(account, seats, start, end, lambda hour, s=switch: 100 if hour < s else 200)

    output = backtest("--meter", "seats")

    assert row(output, "25%") == (3, "50.0%", "0.0%")
    assert row(output, "50%") == (3, "50.0%", "0.0%")
    assert row(output, "75%") == (3, "0.0%", "100.0%")
    assert "methods: last_value 9" in output


def test_filters_and_the_last_n_periods(account):
    other = Account.objects.create(name="Other", billing_email="o@other.test")
    api_calls = make_meter("api_calls", "sum")
    storage = make_meter("storage_gb", "sum")
    for acct in (account, other):
        for meter in (api_calls, storage):
            store_hours(acct, meter, JUN_1, SEP_1, lambda hour: 5)

    assert "12 complete periods of 4 account meters" in backtest()
    output = backtest("--account", str(account.pk), "--meter", "storage_gb", "--periods", "2")
    assert "2 complete periods of 1 account meters" in output
    assert row(output, "50%") == (2, "0.0%", "100.0%")


def test_no_history_prints_an_empty_table(account):
    output = backtest()
    assert "0 complete periods" in output
    assert row(output, "25%") == (0, "-", "-")


def test_periods_with_zero_usage_are_skipped(account):
    api_calls = make_meter("api_calls", "sum")
    # June has usage, July and August none at all, September one hour: the periods of
    # July and August have an actual of 0 and are left out of the MAPE.
    store_hours(account, api_calls, JUN_1, datetime(2026, 7, 1, tzinfo=UTC), lambda hour: 1)
    store_hours(account, api_calls, SEP_1, SEP_1 + timedelta(hours=1), lambda hour: 1)
    output = backtest()
    assert "4 complete periods of 1 account meters" in output
    assert row(output, "25%")[0] == 2
    assert "skipped: 2 periods with an actual of 0" in output


# -- series from rollups --------------------------------------------------------------------
def test_series_by_hour_and_by_day(account, django_assert_num_queries):
    api_calls = make_meter("api_calls", "sum")
    store_hours(account, api_calls, JUN_1, JUN_1 + timedelta(days=2), lambda hour: hour.hour)
    day_total = sum(range(24))  # 276

    with django_assert_num_queries(1):
        by_day = rollup_series(
            account_id=account.pk,
            meter=api_calls,
            start=JUN_1,
            end=JUN_1 + timedelta(days=3),
            bucket="day",
        )
    assert by_day == [(JUN_1, day_total), (JUN_1 + timedelta(days=1), day_total)]

    with django_assert_num_queries(1):
        by_hour = rollup_series(
            account_id=account.pk, meter=api_calls, start=JUN_1, end=JUN_1 + timedelta(hours=3)
        )
    assert by_hour == [(JUN_1 + timedelta(hours=h), h) for h in range(3)]

    # Daily history is zero-filled from the first day with usage, complete days only.
    history = rollup_daily_totals(
        account_id=account.pk,
        meter=api_calls,
        start=JUN_1 - timedelta(days=5),
        end=JUN_1 + timedelta(days=4, hours=6),
    )
    assert history == [
        (date(2026, 6, 1), day_total),
        (date(2026, 6, 2), day_total),
        (date(2026, 6, 3), 0),
        (date(2026, 6, 4), 0),
    ]


def test_last_meter_day_buckets_keep_each_days_last_value(account):
    seats = make_meter("seats", "last")
    store_hours(account, seats, JUN_1, JUN_1 + timedelta(days=2), lambda hour: hour.hour + 1)
    by_day = rollup_series(account_id=account.pk, meter=seats, start=JUN_1, end=SEP_1, bucket="day")
    assert by_day == [(JUN_1, 24), (JUN_1 + timedelta(days=1), 24)]


def test_meter_projection_reads_two_series(account, django_assert_num_queries):
    # 100/hour through May and June; on June 11, 00:00: 10 days x 2,400 = 24,000 so far,
    # 20 days left at 2,400 -> 72,000.
    api_calls = make_meter("api_calls", "sum")
    store_hours(account, api_calls, JUN_1 - timedelta(days=31), SEP_1, lambda hour: 100)
    with django_assert_num_queries(2):
        p = meter_projection(
            account_id=account.pk,
            meter=api_calls,
            period_start=JUN_1,
            period_end=datetime(2026, 7, 1, tzinfo=UTC),
            now=JUN_1 + timedelta(days=10),
        )
    assert (p.method, p.usage_so_far, p.projected, p.low, p.high) == (
        "weighted_weekday",
        24_000,
        72_000,
        72_000,
        72_000,
    )
