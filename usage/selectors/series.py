"""Chart and CSV series: every bucket from ``start`` to ``end``, zeros included, read
through :func:`usage.selectors.rollups.rollup_values` (exact at both ends)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from billing.models import Account, Meter
from usage.selectors.rollups import Bucket, rollup_buckets

GRANULARITIES = {"day": timedelta(days=1), "hour": timedelta(hours=1)}


def filled_series(
    *,
    buckets: Sequence[Bucket],
    aggregation: str,
    start: datetime,
    end: datetime,
    granularity: str = "day",
) -> list[tuple[datetime, int]]:
    """(bucket start, value) for every bucket from ``start``'s to ``end``: buckets
    without usage are 0, or for ``last`` meters carry the last value seen forward."""
    step = GRANULARITIES[granularity]
    by_bucket = {b.start: b.value for b in buckets}
    cursor = _floor(start, granularity)
    series, carried = [], 0
    while cursor < end:
        value = by_bucket.get(cursor)
        if aggregation == Meter.Aggregation.LAST:
            carried = value if value is not None else carried
            series.append((cursor, carried))
        else:
            series.append((cursor, value or 0))
        cursor += step
    return series


def bucket_series(
    *, account: Account, meter: Meter, start: datetime, end: datetime, granularity: str = "day"
) -> list[tuple[datetime, int]]:
    """The meter's usage in ``[start, end)`` per bucket, zeros included: sum meters sum
    values, count meters count events, last meters show the last value seen."""
    buckets = rollup_buckets(
        account_id=account.pk, meter=meter, start=start, end=end, group=granularity
    )
    return filled_series(
        buckets=buckets,
        aggregation=meter.aggregation,
        start=start,
        end=end,
        granularity=granularity,
    )


def daily_series(*, account: Account, meter: Meter, start: datetime, end: datetime):
    return bucket_series(account=account, meter=meter, start=start, end=end, granularity="day")


def _floor(moment: datetime, granularity: str) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if granularity == "day" else moment
