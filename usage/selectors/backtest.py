"""The projections backtest: every complete past period of the stored rollups replayed
through :mod:`usage.projections`, read through :mod:`usage.selectors.rollups`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.models import Meter
from usage.backtest import buckets_between, checkpoint, final_value, monthly_periods
from usage.projections import HISTORY_DAYS, Projection, daily_totals, day_start, project_usage
from usage.selectors.rollups import rollup_pairs, rollup_series

CHECKPOINTS = (0.25, 0.5, 0.75)


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
    pair_rows = [
        {"account_id": a, "meter_id": m, "first": first, "last": last}
        for a, m, first, last in rollup_pairs(account_id=account_id, event_name=event_name)
    ]
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
