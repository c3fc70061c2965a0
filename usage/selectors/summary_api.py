"""Reads: ``GET /api/v1/usage/summary`` (the view validates the parameters)."""

from __future__ import annotations

from datetime import datetime

from billing.models import Account, Meter
from usage.selectors.rollups import ceil_hour, floor_hour, rollup_buckets

GRANULARITIES = ("hour", "day")


def usage_summary(
    *, account: Account, meter: Meter, start: datetime, end: datetime, granularity: str
) -> dict:
    """The meter's usage in ``[start, end)`` per hour or UTC-day bucket, and in total.

    Rollups are hourly: ``start`` is floored and ``end`` ceiled to whole hours, and the
    answer says so."""
    start, end = floor_hour(start), ceil_hour(end)
    window = {"account_id": account.pk, "meter": meter, "start": start, "end": end}
    buckets = rollup_buckets(**window, group=granularity)
    whole = rollup_buckets(**window, group="range")
    return {
        "event_name": meter.event_name,
        "aggregation": meter.aggregation,
        "granularity": granularity,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "buckets": [
            {"start": b.start.isoformat(), "value": b.value, "events": b.events} for b in buckets
        ],
        "total": whole[0].value if whole else 0,
    }
