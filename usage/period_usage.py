"""Selectors: how much of a meter an account used between two instants.

Whole hours come from the hourly rollups, so a dashboard number costs O(buckets),
never O(events). Billing periods start at arbitrary seconds, though, so the partial
hour at each edge of a closed interval is read from the ledger (at most two hours of
one account's events for one meter) to make the total exact: the same number Stripe
bills.
"""

from datetime import datetime, timedelta

from django.db.models import Count, Max, Sum
from django.utils import timezone

from billing.models import Account, Meter
from usage.models import UsageEvent, UsageRollup

HOUR = timedelta(hours=1)


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + HOUR


def _ledger(*, account: Account, meter: Meter, start: datetime, end: datetime):
    return UsageEvent.objects.filter(
        account=account, meter=meter, timestamp__gte=start, timestamp__lt=end
    )


def ledger_total(*, account: Account, meter: Meter, start: datetime, end: datetime) -> int:
    """Sum (or count, for count meters) straight from the ledger: for edge hours only."""
    row = _ledger(account=account, meter=meter, start=start, end=end).aggregate(
        n=Count("id"), s=Sum("value")
    )
    return int((row["n"] if meter.aggregation == Meter.Aggregation.COUNT else row["s"]) or 0)


def _rollups(*, account: Account, meter: Meter, start: datetime, end: datetime | None):
    rows = UsageRollup.objects.filter(account=account, meter=meter, hour__gte=start)
    return rows if end is None else rows.filter(hour__lt=end)


def _last_value(*, account, meter, pieces) -> tuple[datetime, int] | None:
    """The latest (timestamp, value) across ledger and rollup pieces."""
    best = None
    for kind, start, end in pieces:
        if kind == "ledger":
            row = (
                _ledger(account=account, meter=meter, start=start, end=end)
                .order_by("-timestamp", "-id")
                .values_list("timestamp", "value")
                .first()
            )
        else:
            row = (
                _rollups(account=account, meter=meter, start=start, end=end)
                .order_by("-last_timestamp")
                .values_list("last_timestamp", "last_value")
                .first()
            )
        if row is not None and (best is None or row[0] >= best[0]):
            best = row
    return best


def meter_usage_in_period(
    *,
    account: Account,
    meter: Meter,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> int:
    """The meter's aggregate (sum of values, count of events, or last value) in
    [start, end), as of ``now``."""
    now = now or timezone.now()
    open_ended = end > now  # the rollups already hold everything up to now
    first_full = ceil_hour(start)
    last_full_end = None if open_ended else floor_hour(end)
    pieces: list[tuple[str, datetime, datetime | None]] = []
    if last_full_end is not None and first_full >= last_full_end:
        pieces.append(("ledger", start, end))
    else:
        if start < first_full:
            pieces.append(("ledger", start, first_full))
        pieces.append(("rollup", first_full, last_full_end))
        if last_full_end is not None and last_full_end < end:
            pieces.append(("ledger", last_full_end, end))

    if meter.aggregation == Meter.Aggregation.LAST:
        latest = _last_value(account=account, meter=meter, pieces=pieces)
        return int(latest[1]) if latest else 0

    total = 0
    for kind, piece_start, piece_end in pieces:
        if kind == "ledger":
            total += ledger_total(account=account, meter=meter, start=piece_start, end=piece_end)
            continue
        agg = _rollups(account=account, meter=meter, start=piece_start, end=piece_end)
        row = agg.aggregate(n=Sum("event_count"), s=Sum("sum_value"))
        total += int((row["n"] if meter.aggregation == Meter.Aggregation.COUNT else row["s"]) or 0)
    return total


def latest_event_at(*, account: Account) -> datetime | None:
    return UsageRollup.objects.filter(account=account).aggregate(t=Max("last_timestamp"))["t"]
