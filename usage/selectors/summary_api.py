"""Reads: ``GET /api/v1/usage/summary``."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from billing.models import Account, Meter
from usage.selectors.ledger import meter_value, rollup_buckets
from usage.selectors.periods import usage_period_for


class SummaryError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


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
