"""The database side of projections: usage series from the hourly rollups, and the
backtest that replays stored history through :mod:`usage.projections`.

Every series is ONE query on ``UsageRollup`` returning one row per bucket
(O(buckets), never O(events)); everything else is pure code in ``usage.projections``.
A rollup belongs to a range when its hour starts inside ``[start, end)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from django.db.models import Max, Min, Sum
from django.db.models.functions import TruncDay

from billing.models import Meter
from usage.models import UsageRollup
from usage.projections import (
    HISTORY_DAYS,
    Projection,
    buckets_between,
    checkpoint,
    daily_totals,
    day_start,
    final_value,
    monthly_periods,
    project_usage,
)

Bucket = Literal["hour", "day"]
CHECKPOINTS = (0.25, 0.5, 0.75)


def _value_field(meter: Meter) -> str:
    if meter.aggregation == Meter.Aggregation.COUNT:
        return "event_count"
    if meter.aggregation == Meter.Aggregation.LAST:
        return "last_value"
    return "sum_value"


def rollup_series(
    *, account_id: int, meter: Meter, start: datetime, end: datetime, bucket: Bucket = "hour"
) -> list[tuple[datetime, int]]:
    """(bucket start, value) for the rollups of ``[start, end)``, ordered by time.

    The value is the meter's: summed values (``sum``), event counts (``count``) or
    the bucket's last value (``last``). Buckets without usage are absent. One query:
    hourly buckets are the rollup rows themselves; daily buckets of sum/count meters
    are a ``GROUP BY`` day; daily buckets of ``last`` meters keep each day's last
    hourly value (read in hour order, one row per hour).
    """
    rollups = UsageRollup.objects.filter(
        account_id=account_id, meter=meter, hour__gte=start, hour__lt=end
    )
    field = _value_field(meter)
    if bucket == "hour" or meter.aggregation == Meter.Aggregation.LAST:
        rows = [
            (hour.astimezone(UTC), value)
            for hour, value in rollups.order_by("hour").values_list("hour", field)
        ]
        if bucket == "hour":
            return rows
        by_day: dict[datetime, int] = {}
        for hour, value in rows:
            by_day[day_start(hour)] = value
        return list(by_day.items())
    if bucket != "day":
        raise ValueError(f"unknown bucket: {bucket!r}")
    grouped = (
        rollups.annotate(day=TruncDay("hour", tzinfo=UTC))
        .values("day")
        .annotate(total=Sum(field))
        .order_by("day")
        .values_list("day", "total")
    )
    return [(day.astimezone(UTC), int(total)) for day, total in grouped]


def rollup_daily_totals(
    *, account_id: int, meter: Meter, start: datetime, end: datetime
) -> list[tuple[date, int]]:
    """Totals per complete UTC day in ``[start, end)`` (one query), days without usage as
    0 from the first day that has any -- the ``history`` of :func:`project_usage`."""
    series = rollup_series(account_id=account_id, meter=meter, start=start, end=end, bucket="day")
    if not series:
        return []
    return daily_totals(series=series, start=max(start, series[0][0]), end=end)


def meter_projection(
    *,
    account_id: int,
    meter: Meter,
    period_start: datetime,
    period_end: datetime,
    now: datetime,
    history_days: int = HISTORY_DAYS,
    series: Sequence[tuple[datetime, int]] | None = None,
) -> Projection:
    """Project one meter of one account to ``period_end``: one query for the period so far
    (unless the caller has the ``series`` already, e.g. with exact period edges), one for
    up to ``history_days`` of earlier daily totals (sum/count meters only)."""
    if series is None:
        bucket: Bucket = "hour" if meter.aggregation == Meter.Aggregation.LAST else "day"
        series = rollup_series(
            account_id=account_id,
            meter=meter,
            start=period_start,
            end=min(now, period_end),
            bucket=bucket,
        )
    history: list[tuple[date, int]] = []
    if meter.aggregation != Meter.Aggregation.LAST:
        history = rollup_daily_totals(
            account_id=account_id,
            meter=meter,
            start=period_start - timedelta(days=history_days),
            end=period_start,
        )
    return project_usage(
        series=series,
        aggregation=meter.aggregation,
        period_start=period_start,
        period_end=period_end,
        now=now,
        history=history,
    )


# -- backtest ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestCase:
    """One replayed projection: what was projected at a checkpoint, and what happened."""

    account_id: int
    meter: Meter
    period_start: datetime
    period_end: datetime
    fraction: float
    projection: Projection
    actual: int

    @property
    def in_range(self) -> bool:
        return self.projection.low <= self.actual <= self.projection.high


def projections_backtest(
    *,
    now: datetime,
    account_id: int | None = None,
    event_name: str | None = None,
    periods: int | None = None,
    fractions: Sequence[float] = CHECKPOINTS,
    history_days: int = HISTORY_DAYS,
) -> list[BacktestCase]:
    """Replay every complete past period of the stored rollups through :func:`project_usage`.

    Periods are monthly and anchored on the (account, meter)'s first day of usage
    (midnight UTC), day clamped like Stripe's billing cycle anchor; a period counts when
    it has ended by ``now`` and started before the last stored hour. ``periods`` keeps
    the most recent N per (account, meter).
    At each checkpoint (a fraction of the period, floored to the hour) the projection
    sees only the rollups before it, plus up to ``history_days`` of daily totals
    before the period, exactly as the live projection would have.

    Queries: one for the (account, meter) pairs, one for their meters, then one per
    pair for its hourly rollups; the replay itself is in memory.
    """
    pairs = UsageRollup.objects.all()
    if account_id is not None:
        pairs = pairs.filter(account_id=account_id)
    if event_name is not None:
        pairs = pairs.filter(meter__event_name=event_name)
    pair_rows = list(
        pairs.values("account_id", "meter_id")
        .annotate(first=Min("hour"), last=Max("hour"))
        .order_by("account_id", "meter_id")
    )
    meters = Meter.objects.in_bulk({row["meter_id"] for row in pair_rows})

    cases: list[BacktestCase] = []
    for row in pair_rows:
        meter = meters[row["meter_id"]]
        anchor = day_start(row["first"])
        # Periods that have ended, up to the one holding the last stored hour.
        replay = [
            (start, end)
            for start, end in monthly_periods(anchor=anchor, until=now)
            if start <= row["last"]
        ]
        if periods is not None:
            replay = replay[-periods:] if periods > 0 else []
        if not replay:
            continue
        hourly = rollup_series(
            account_id=row["account_id"],
            meter=meter,
            start=max(anchor, replay[0][0] - timedelta(days=history_days)),
            end=replay[-1][1],
            bucket="hour",
        )
        for start, end in replay:
            actual = final_value(
                series=buckets_between(hourly, start, end), aggregation=meter.aggregation
            )
            history_start = max(anchor, start - timedelta(days=history_days))
            history = (
                daily_totals(
                    series=buckets_between(hourly, history_start, start),
                    start=history_start,
                    end=start,
                )
                if meter.aggregation != Meter.Aggregation.LAST
                else []
            )
            for fraction in fractions:
                at = checkpoint(period_start=start, period_end=end, fraction=fraction)
                projection = project_usage(
                    series=buckets_between(hourly, start, at),
                    aggregation=meter.aggregation,
                    period_start=start,
                    period_end=end,
                    now=at,
                    history=history,
                )
                cases.append(
                    BacktestCase(
                        account_id=row["account_id"],
                        meter=meter,
                        period_start=start,
                        period_end=end,
                        fraction=fraction,
                        projection=projection,
                        actual=actual,
                    )
                )
    return cases
