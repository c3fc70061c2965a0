"""The database side of projections: the inputs :func:`usage.projections.project_usage`
takes (this period's daily series, earlier daily totals), read through
:func:`usage.selectors.rollups.rollup_values`, for one meter or for many accounts at
once. Everything else is pure code in :mod:`usage.projections`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta

from billing.models import Meter
from usage.projections import HISTORY_DAYS, Projection, daily_totals, day_start, project_usage
from usage.selectors.rollups import Bucket, Group, rollup_series, rollup_values
from usage.selectors.series import filled_series

DAY = timedelta(days=1)


def _ceil_day(moment: datetime) -> datetime:
    floored = day_start(moment)
    return floored if floored == moment else floored + DAY


def history_range(
    period_start: datetime, history_days: int = HISTORY_DAYS
) -> tuple[datetime, datetime]:
    """The complete UTC days of the ``history_days`` before the period's first day."""
    return _ceil_day(period_start - timedelta(days=history_days)), day_start(period_start)


def history_totals(
    *, series: Sequence[tuple[datetime, int]], start: datetime, end: datetime
) -> list[tuple[date, int]]:
    """Totals per complete UTC day in ``[start, end)``, zero-filled from the first day
    with usage: the ``history`` of :func:`project_usage`."""
    if not series:
        return []
    return daily_totals(series=series, start=max(start, series[0][0]), end=end)


def rollup_daily_totals(
    *, account_id: int, meter: Meter, start: datetime, end: datetime
) -> list[tuple[date, int]]:
    """:func:`history_totals` of the rollups (one query: complete days need no edges)."""
    start, end = _ceil_day(start), day_start(end)
    series = rollup_series(account_id=account_id, meter=meter, start=start, end=end, bucket="day")
    return history_totals(series=series, start=start, end=end)


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
    (unless the caller has the ``series`` already), one for up to ``history_days`` of
    earlier daily totals (sum/count meters only)."""
    if series is None:
        bucket: Group = "hour" if meter.aggregation == Meter.Aggregation.LAST else "day"
        series = rollup_series(
            account_id=account_id,
            meter=meter,
            start=period_start,
            end=min(now, period_end),
            bucket=bucket,
        )
    history: list[tuple[date, int]] = []
    if meter.aggregation != Meter.Aggregation.LAST:
        lo, hi = history_range(period_start, history_days)
        history = rollup_daily_totals(account_id=account_id, meter=meter, start=lo, end=hi)
    return project_usage(
        series=series,
        aggregation=meter.aggregation,
        period_start=period_start,
        period_end=period_end,
        now=now,
        history=history,
    )


class ProjectionInputs:
    """Projections of many accounts' periods, their inputs read in bulk on first use:
    this period's daily series (exact edges, as the chart shows it) and the daily
    totals before it. Two :func:`rollup_values` calls for all the accounts together,
    and none at all when no projection is read.

    ``together``: the accounts whose projections the caller expects to read (the alert
    sweep: those with a projected rule), read together when the first of them is; any
    other account's are then read on their own when asked for (two queries: the e-mail
    of a chunk's crossing account reads its projection, and must not read the usage by
    day of every account in the chunk). None: every account together."""

    def __init__(
        self,
        *,
        periods: Mapping[int, tuple[datetime, datetime]],
        meters: Mapping[int, Meter],
        now: datetime,
        together: Iterable[int] | None = None,
    ):
        self.periods, self.meters, self.now = dict(periods), dict(meters), now
        self.together = None if together is None else set(together) & set(self.periods)
        self._series: dict[tuple[int, int], list[Bucket]] = {}
        self._history: dict[tuple[int, int], list[Bucket]] = {}
        self._loaded: set[int] = set()

    def _load(self, account_ids: list[int]) -> None:
        periods = {a: self.periods[a] for a in account_ids}
        as_of = {a: (start, min(self.now, end)) for a, (start, end) in periods.items()}
        self._series.update(rollup_values(ranges=as_of, meters=self.meters.values(), group="day"))
        consumed = [m for m in self.meters.values() if m.aggregation != Meter.Aggregation.LAST]
        self._history.update(
            rollup_values(
                ranges={a: history_range(start) for a, (start, _) in periods.items()},
                meters=consumed,
                group="day",
            )
        )
        self._loaded.update(account_ids)

    def read_together(self, account_ids: Iterable[int]) -> None:
        """Read the inputs of these accounts (those not read yet) now, together."""
        wanted = [a for a in dict.fromkeys(account_ids) if a in self.periods]
        if any(a not in self._loaded for a in wanted):
            self._load([a for a in wanted if a not in self._loaded])

    def projection(self, *, account_id: int, meter: Meter) -> Projection:
        if account_id not in self._loaded:
            if self.together is None or account_id in self.together:
                group = self.periods if self.together is None else self.together
                self._load([a for a in group if a not in self._loaded])
            else:
                self._load([account_id])
        start, end = self.periods[account_id]
        as_of = min(self.now, end)
        series = filled_series(
            buckets=self._series.get((account_id, meter.pk), []),
            aggregation=meter.aggregation,
            start=start,
            end=as_of,
        )
        history: list[tuple[date, int]] = []
        if meter.aggregation != Meter.Aggregation.LAST:
            lo, hi = history_range(start)
            history = history_totals(
                series=[(b.start, b.value) for b in self._history.get((account_id, meter.pk), [])],
                start=lo,
                end=hi,
            )
        return project_usage(
            series=series,
            aggregation=meter.aggregation,
            period_start=start,
            period_end=end,
            now=as_of,
            history=history,
        )
