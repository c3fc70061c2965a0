"""Reads: ledger totals and rollup buckets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Sum

from billing.models import Meter
from usage.models import UsageEvent, UsageReport, UsageRollup


def meter_value(*, aggregation: str, total: int, count: int, last: int | None) -> int:
    """What a meter shows for a set of events: sum, count, or the last value."""
    if aggregation == Meter.Aggregation.COUNT:
        return count
    if aggregation == Meter.Aggregation.LAST:
        return last or 0
    return total


def ledger_value(*, account_id: int, meter: Meter, start: datetime, end: datetime) -> int:
    """The ledger's value for events with ``start <= timestamp < end`` (SQL aggregates)."""
    events = UsageEvent.objects.filter(
        account_id=account_id, meter=meter, timestamp__gte=start, timestamp__lt=end
    )
    agg = events.aggregate(total=Sum("value"), count=Count("id"))
    last = None
    if meter.aggregation == Meter.Aggregation.LAST:
        last = events.order_by("-timestamp", "-id").values_list("value", flat=True).first()
    return meter_value(
        aggregation=meter.aggregation,
        total=agg["total"] or 0,
        count=agg["count"] or 0,
        last=last,
    )


def too_late_value(*, account_id: int, meter: Meter, start: datetime, end: datetime) -> int:
    """Units of the period flagged ``too_late`` (never sent to Stripe)."""
    return (
        UsageReport.objects.filter(
            account_id=account_id,
            meter=meter,
            status=UsageReport.Status.TOO_LATE,
            timestamp__gte=start,
            timestamp__lt=end,
        ).aggregate(total=Sum("value"))["total"]
        or 0
    )


@dataclass
class Bucket:
    start: datetime
    total: int
    count: int
    last: int
    last_at: tuple[datetime, int]


def rollup_buckets(
    *, account_id: int, meter: Meter, start: datetime, end: datetime, granularity: str
) -> list[Bucket]:
    """Rollup hours in ``[start, end)`` merged into hour or UTC-day buckets: O(hours)."""
    rows = UsageRollup.objects.filter(
        account_id=account_id, meter=meter, hour__gte=start, hour__lt=end
    ).values_list(
        "hour", "sum_value", "event_count", "last_value", "last_timestamp", "last_event_id"
    )
    buckets: dict[datetime, Bucket] = {}
    for hour, total, count, last, last_ts, last_id in rows.order_by("hour"):
        last_at = (last_ts, last_id)
        key = hour if granularity == "hour" else hour.replace(hour=0)
        bucket = buckets.get(key)
        if bucket is None:
            buckets[key] = Bucket(key, total, count, last, last_at)
            continue
        bucket.total += total
        bucket.count += count
        if last_at >= bucket.last_at:
            bucket.last, bucket.last_at = last, last_at
    return [buckets[k] for k in sorted(buckets)]
