"""The one rollup reader: sum, count and last meters, exact at mid-hour range edges,
by hour, by UTC day and for the whole range, for many accounts in constant queries."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.mirror.customers import account_for_customer_id
from billing.models import Meter
from usage.selectors.rollups import Bucket, rollup_buckets, rollup_value, rollup_values
from usage.services.ingest import usage_events_ingest

pytestmark = pytest.mark.django_db

H = datetime(2026, 3, 9, 22, tzinfo=UTC)  # 22:00 on March 9; the range crosses midnight
NOW = H + timedelta(days=1)
M = timedelta(minutes=1)
# (value, timestamp): two events in each of the hours 22, 23, 00 and 01.
EVENTS = [
    (1, H + 10 * M),  # 22:10  before the range
    (2, H + 40 * M),  # 22:40  in
    (4, H + 65 * M),  # 23:05  in
    (8, H + 135 * M),  # 00:15  in (March 10)
    (16, H + 200 * M),  # 01:20  in
    (32, H + 230 * M),  # 01:50  after the range
]
START, END = H + 30 * M, H + 225 * M  # 22:30 .. 01:45: mid-hour at both ends
METERS = ("data_transfer_gb", "api_calls", "seats")  # sum, count, last


def _ingest(customer: str, events, shift=timedelta(0), tag="e") -> None:
    batch = [
        {"event_name": name, "customer": customer, "value": value,
         "timestamp": int((at + shift).timestamp()), "identifier": f"{tag}-{name}-{i}"}
        for name in METERS
        for i, (value, at) in enumerate(events)
    ]  # fmt: skip
    result = usage_events_ingest(events=batch, now=NOW + shift)
    assert result.accepted == len(batch) and not result.rejected


@pytest.fixture
def setup(make_customers):
    customers = make_customers(2)
    _ingest(customers[0], EVENTS)
    meters = {m.event_name: m for m in Meter.objects.filter(event_name__in=METERS)}
    assert [meters[n].aggregation for n in METERS] == ["sum", "count", "last"]
    return [account_for_customer_id(customer_id=c) for c in customers], meters


def test_whole_range_is_exact_at_mid_hour_edges(setup):
    (account, _), meters = setup
    values = {
        name: rollup_value(account_id=account.pk, meter=meter, start=START, end=END)
        for name, meter in meters.items()
    }
    # sum: 2 + 4 + 8 + 16 = 30 (the whole hours 22..01 would give 63, the rollups of
    # 23 and 00 alone 12); count: 4 events; last: 16 at 01:20 (the 01 rollup's last is
    # 32, at 01:50, after the end).
    assert values == {"data_transfer_gb": 30, "api_calls": 4, "seats": 16}


def test_a_range_inside_one_hour_reads_the_ledger_only(setup):
    (account, _), meters = setup
    start, end = H + 5 * M, H + 30 * M  # 22:05 .. 22:30 holds only the 22:10 event
    values = {
        name: rollup_value(account_id=account.pk, meter=meter, start=start, end=end)
        for name, meter in meters.items()
    }
    # The 22 rollup says sum 3, count 2, last 2; the range holds just (1, 22:10).
    assert values == {"data_transfer_gb": 1, "api_calls": 1, "seats": 1}


def test_hour_and_day_buckets(setup):
    (account, _), meters = setup

    def buckets(name, group):
        return rollup_buckets(
            account_id=account.pk, meter=meters[name], start=START, end=END, group=group
        )

    hours = [H + timedelta(hours=h) for h in range(4)]
    # Edge hours hold only their part inside the range: 22 -> the 22:40 event, 01 -> 01:20.
    assert buckets("data_transfer_gb", "hour") == [
        Bucket(hours[0], 2, 1), Bucket(hours[1], 4, 1), Bucket(hours[2], 8, 1),
        Bucket(hours[3], 16, 1),
    ]  # fmt: skip
    assert [b.value for b in buckets("api_calls", "hour")] == [1, 1, 1, 1]
    assert [b.value for b in buckets("seats", "hour")] == [2, 4, 8, 16]
    mar9, mar10 = H.replace(hour=0), H.replace(hour=0) + timedelta(days=1)
    # March 9: 2 + 4 = 6 (2 events, last 4 at 23:05); March 10: 8 + 16 = 24 (last 16).
    assert buckets("data_transfer_gb", "day") == [Bucket(mar9, 6, 2), Bucket(mar10, 24, 2)]
    assert buckets("api_calls", "day") == [Bucket(mar9, 2, 2), Bucket(mar10, 2, 2)]
    assert buckets("seats", "day") == [Bucket(mar9, 4, 2), Bucket(mar10, 16, 2)]


def test_many_accounts_in_one_call_each_with_its_own_range(setup, make_customers):
    (first, second), meters = setup
    # The second account's events are the same, two days later, and its range too but
    # starting at 23:00 sharp: 4 + 8 + 16 = 28, 3 events, last 16.
    _ingest(second.djstripe_customers.get().id, EVENTS, shift=timedelta(days=2), tag="b")
    two_days = timedelta(days=2)
    ranges = {first.pk: (START, END), second.pk: (H + 60 * M + two_days, END + two_days)}
    cache.clear()  # edge pieces are cached (PostgreSQL): count the queries of a cold call
    with CaptureQueriesContext(connection) as both:
        values = rollup_values(ranges=ranges, meters=meters.values(), group="range")
    got = {(a, m): [b.value for b in buckets] for (a, m), buckets in values.items()}
    sums, counts, lasts = (meters[n].pk for n in METERS)
    assert got == {
        (first.pk, sums): [30], (first.pk, counts): [4], (first.pk, lasts): [16],
        (second.pk, sums): [28], (second.pk, counts): [3], (second.pk, lasts): [16],
    }  # fmt: skip
    cache.clear()
    with CaptureQueriesContext(connection) as one:
        rollup_values(ranges={first.pk: (START, END)}, meters=meters.values(), group="range")
    # Rollups and the newest rollup rows of last meters; for the partial edge hours their
    # rollup rows, the ledger's pieces and the newest edge events of
    # last meters (and on PostgreSQL the rollup rows again, before caching the pieces):
    # as many queries for one account as for two.
    cold = 6 if connection.vendor == "postgresql" else 5
    assert len(both.captured_queries) == len(one.captured_queries) == cold, [
        q["sql"][:80] for q in both.captured_queries
    ]


def test_aligned_ranges_read_no_ledger(setup, django_assert_num_queries):
    (account, _), meters = setup
    with django_assert_num_queries(1):
        buckets = rollup_buckets(
            account_id=account.pk,
            meter=meters["data_transfer_gb"],
            start=H,
            end=H + timedelta(hours=4),
            group="day",
        )
    # Whole hours 22..01: March 9 = 1 + 2 + 4 = 7, March 10 = 8 + 16 + 32 = 56.
    assert [b.value for b in buckets] == [7, 56]
