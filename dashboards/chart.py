"""The chart JSON: usage per bucket, cumulative usage, the allowance, and for the
current period the projection to period end with its range."""

from datetime import datetime, timedelta

from django.utils import timezone

from billing.mirror.subscriptions import ItemState, SubscriptionState
from billing.units import unit_plural
from usage.selectors.projection_inputs import meter_projection
from usage.selectors.series import GRANULARITIES, bucket_series, daily_series


def _label(moment: datetime, granularity: str) -> str:
    return moment.strftime("%b %d") if granularity == "day" else moment.strftime("%b %d %H:00")


def chart_payload(
    *,
    account,
    state: SubscriptionState,
    item: ItemState,
    offset: int,
    granularity: str,
    now: datetime | None = None,
) -> dict:
    now = now or timezone.now()
    meter = item.meter
    start, end = state.period(offset)
    closed = end <= now
    as_of = min(now, end)
    series = bucket_series(
        account=account,
        meter=meter,
        start=start,
        end=as_of,
        granularity=granularity,
    )
    is_last = meter.aggregation == "last"
    cumulative, running = [], 0
    for _, value in series:
        running = value if is_last else running + value
        cumulative.append(running)

    step = GRANULARITIES[granularity]
    future = []
    cursor = series[-1][0] + step if series else start
    while cursor < end:
        future.append(cursor)
        cursor += step
    labels = [_label(t, granularity) for t, _ in series] + [_label(t, granularity) for t in future]

    projection = None
    if not closed:
        daily = series if granularity == "day" else None  # the same series: reuse it
        projected = meter_projection(
            account_id=account.pk,
            meter=meter,
            period_start=start,
            period_end=end,
            now=as_of,
            series=daily or daily_series(account=account, meter=meter, start=start, end=as_of),
        )
        now_value = cumulative[-1] if cumulative else 0
        pad = [None] * (len(series) - 1) if series else []

        def path(target: int) -> list:
            steps = len(future)
            points = [now_value]
            for i in range(1, steps + 1):
                # straight line from now to the projected total at period end
                points.append(now_value + (target - now_value) * i // steps)
            return pad + points

        projection = {
            "method": projected.method,
            "expected": projected.projected,
            "low": projected.low,
            "high": projected.high,
            "expected_path": path(projected.projected),
            "low_path": path(projected.low),
            "high_path": path(projected.high),
        }
    return {
        "meter": {
            "event_name": meter.event_name,
            "display_name": meter.display_name,
            "unit_label": meter.unit_label,
            "unit_plural": unit_plural(meter.unit_label),
            "aggregation": meter.aggregation,
        },
        "period": {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "offset": offset,
            "closed": closed,
        },
        "granularity": granularity,
        "labels": labels,
        "usage": [value for _, value in series],
        "cumulative": cumulative,
        "allowance": item.included_units or None,
        "projection": projection,
        "total": cumulative[-1] if cumulative else 0,
        "as_of": as_of.isoformat(),
        "bucket_seconds": int(step / timedelta(seconds=1)),
    }
