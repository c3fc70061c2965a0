"""Reads: billing periods for usage, summaries from rollups, ledger totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count, Sum
from django.utils import timezone
from djstripe.models import Customer

from billing.models import Account, Meter
from billing.selectors import account_billing_period
from usage.models import UsageEvent, UsageReport, UsageRollup


def calendar_month(at: datetime) -> tuple[datetime, datetime]:
    at = at.astimezone(UTC)
    start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def usage_period_for(*, account: Account, at: datetime) -> tuple[datetime, datetime]:
    """The period usage at ``at`` is reported in; see ``PeriodResolver``."""
    return PeriodResolver(account).period(at)


class PeriodResolver:
    """The period usage at a timestamp is reported (and reconciled) in, for one account.

    The account's Stripe billing period holding the timestamp (from the dj-stripe
    mirror, ``billing.selectors.account_billing_period``), or, where no subscription
    covers it, the UTC calendar month cut at the edges of the subscriptions around it,
    so that periods never overlap and each reconciles against Stripe on its own.

    Billing periods found are reused for every timestamp inside them, and timestamps
    outside every subscription need no query, so a pass over many events of one
    account costs a few queries.
    """

    def __init__(self, account: Account):
        from djstripe.models import Subscription

        def ts(value):
            return datetime.fromtimestamp(int(value), UTC) if value else None

        self.account = account
        self.billing: list[tuple[datetime, datetime]] = []
        self.spans: list[tuple[datetime, datetime | None]] = []
        for data in Subscription.objects.filter(customer__subscriber=account).values_list(
            "stripe_data", flat=True
        ):
            data = data or {}
            started = ts(data.get("start_date")) or ts(data.get("created"))
            if started is not None:
                self.spans.append((started, ts(data.get("ended_at"))))

    def _covered(self, at: datetime) -> bool:
        return any(start <= at and (end is None or at < end) for start, end in self.spans)

    def _fallback(self, at: datetime) -> tuple[datetime, datetime]:
        lo, hi = calendar_month(at)
        for start, end in self.spans:
            if end is not None and end <= at:
                lo = max(lo, end)
            if start > at:
                hi = min(hi, start)
        return lo, hi

    def period(self, at: datetime) -> tuple[datetime, datetime]:
        for period in self.billing:
            if period[0] <= at < period[1]:
                return period
        if not self._covered(at):
            return self._fallback(at)
        period = account_billing_period(account=self.account, at=at)
        if period is None:  # a subscription without usable periods: the plain month
            return calendar_month(at)
        self.billing.append(period)
        return period


def account_stripe_customer_id(*, account: Account) -> str | None:
    return (
        Customer.objects.filter(subscriber=account)
        .order_by("-created")
        .values_list("id", flat=True)
        .first()
    )


# -- totals -----------------------------------------------------------------------------
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


# -- the summary API --------------------------------------------------------------------
class SummaryError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


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


def _time_param(params, name: str) -> datetime | None:
    from usage.services.ingest import _Invalid, parse_timestamp

    raw = params.get(name)
    if raw in (None, ""):
        return None
    value = int(raw) if raw.isdigit() else raw
    try:
        return parse_timestamp(value, name=name)
    except _Invalid as exc:
        raise SummaryError(400, "invalid_parameter", exc.message, name) from None


def usage_summary_for_api(*, params) -> dict:
    """``GET /api/v1/usage/summary``: buckets and total from the rollups.

    ``start`` is floored to its hour (rollups are hourly); ``end`` is exclusive. Both
    default to the account's current billing period (or calendar month).
    """
    for name in ("customer", "event_name"):
        if not params.get(name):
            raise SummaryError(
                400, "missing_parameter", f"{name}: this parameter is required", name
            )
    granularity = params.get("granularity") or "hour"
    if granularity not in ("hour", "day"):
        raise SummaryError(
            400, "invalid_parameter", "granularity: must be 'hour' or 'day'", "granularity"
        )
    meter = Meter.objects.filter(event_name=params["event_name"]).first()
    if meter is None:
        raise SummaryError(
            404,
            "unknown_meter",
            f"event_name: no meter named {params['event_name']!r}",
            "event_name",
        )
    account = Account.objects.filter(djstripe_customers__id=params["customer"]).first()
    if account is None:
        raise SummaryError(
            404, "unknown_customer", f"customer: no account has {params['customer']!r}", "customer"
        )
    start, end = _time_param(params, "start"), _time_param(params, "end")
    if start is None or end is None:
        default_start, default_end = usage_period_for(account=account, at=timezone.now())
        start, end = start or default_start, end or default_end
    if end <= start:
        raise SummaryError(400, "invalid_parameter", "end: must be after start", "end")
    if end - start > timedelta(days=400):
        raise SummaryError(400, "invalid_parameter", "end: at most 400 days after start", "end")
    # Rollups are hourly: the range is widened to whole hours, and says so.
    start = start.replace(minute=0, second=0, microsecond=0)
    if end != end.replace(minute=0, second=0, microsecond=0):
        end = end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    buckets = rollup_buckets(
        account_id=account.pk, meter=meter, start=start, end=end, granularity=granularity
    )
    values = [
        meter_value(aggregation=meter.aggregation, total=b.total, count=b.count, last=b.last)
        for b in buckets
    ]
    if meter.aggregation == Meter.Aggregation.LAST:
        total = max(buckets, key=lambda b: b.last_at).last if buckets else 0
    else:
        total = sum(values)
    return {
        "customer": params["customer"],
        "event_name": meter.event_name,
        "aggregation": meter.aggregation,
        "granularity": granularity,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "buckets": [
            {"start": b.start.isoformat(), "value": v, "events": b.count}
            for b, v in zip(buckets, values, strict=True)
        ],
        "total": total,
    }
