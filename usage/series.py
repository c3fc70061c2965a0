"""Chart series read from the hourly rollups only: O(buckets), never O(events)."""

from datetime import datetime, timedelta

from django.db.models import Max, Sum
from django.db.models.functions import TruncDay, TruncHour

from billing.models import Account, Meter
from usage.models import UsageRollup
from usage.period_usage import ceil_hour, floor_hour, ledger_total

GRANULARITIES = {"day": (TruncDay, timedelta(days=1)), "hour": (TruncHour, timedelta(hours=1))}


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
    trunc, step = GRANULARITIES[granularity]
    rows = (
        UsageRollup.objects.filter(
            account=account, meter=meter, hour__gte=floor_hour(start), hour__lt=end
        )
        .annotate(bucket=trunc("hour"))
        .values("bucket")
        .annotate(s=Sum("sum_value"), n=Sum("event_count"), t=Max("last_timestamp"))
        .order_by("bucket")
    )
    by_bucket = {}
    for row in rows:
        if meter.aggregation == Meter.Aggregation.COUNT:
            by_bucket[row["bucket"]] = int(row["n"] or 0)
        elif meter.aggregation == Meter.Aggregation.SUM:
            by_bucket[row["bucket"]] = int(row["s"] or 0)
        else:
            by_bucket[row["bucket"]] = row["t"]
    if meter.aggregation == Meter.Aggregation.LAST and by_bucket:
        latest = dict(
            UsageRollup.objects.filter(
                account=account, meter=meter, last_timestamp__in=list(by_bucket.values())
            ).values_list("last_timestamp", "last_value")
        )
        by_bucket = {bucket: int(latest.get(ts, 0)) for bucket, ts in by_bucket.items()}
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
