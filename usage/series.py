"""Chart series read from the hourly rollups only: O(buckets), never O(events)."""

from datetime import datetime, timedelta

from billing.models import Account, Meter
from usage.period_usage import ceil_hour, floor_hour, ledger_total
from usage.projection_history import rollup_series

GRANULARITIES = {"day": timedelta(days=1), "hour": timedelta(hours=1)}


def bucket_series(
    *,
    account: Account,
    meter: Meter,
    start: datetime,
    end: datetime,
    granularity: str = "day",
    end_is_period_end: bool = True,
) -> list[tuple[datetime, int]]:
    """(bucket start, usage) for every bucket from ``start`` to ``end``, zeros included.

    Sum meters sum values, count meters count events, last meters show the last value
    seen in the bucket (carried forward through empty buckets).
    """
    step = GRANULARITIES[granularity]
    by_bucket = dict(
        rollup_series(
            account_id=account.pk, meter=meter, start=floor_hour(start), end=end, bucket=granularity
        )
    )
    if meter.aggregation != Meter.Aggregation.LAST:
        # Billing periods start and end mid-hour: take the ledger's events outside
        # [start, end) back out of the edge buckets so the chart adds up exactly.
        edges = [(floor_hour(start), start)]
        if end_is_period_end and end < ceil_hour(end):
            edges.append((end, ceil_hour(end)))
        for edge_start, edge_end in edges:
            outside = ledger_total(account=account, meter=meter, start=edge_start, end=edge_end)
            if outside:
                bucket = _floor(edge_start, granularity)
                by_bucket[bucket] = by_bucket.get(bucket, 0) - outside
    first = _floor(start, granularity)
    series, cursor, carried = [], first, 0
    while cursor < end:
        value = by_bucket.get(cursor)
        if meter.aggregation == Meter.Aggregation.LAST:
            carried = value if value is not None else carried
            series.append((cursor, carried))
        else:
            series.append((cursor, value or 0))
        cursor += step
    return series


def daily_series(
    *, account: Account, meter: Meter, start: datetime, end: datetime, end_is_period_end=True
):
    return bucket_series(
        account=account,
        meter=meter,
        start=start,
        end=end,
        granularity="day",
        end_is_period_end=end_is_period_end,
    )


def _floor(moment: datetime, granularity: str) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if granularity == "day" else moment
