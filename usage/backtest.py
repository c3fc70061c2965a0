"""Pure helpers of the projections backtest (``manage.py projections_backtest``; the
database side is :mod:`usage.selectors.backtest`): monthly periods, checkpoints, a
period's final value, and the error measure."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

from usage.projections import Aggregation


def add_months(anchor: datetime, months: int) -> datetime:
    """``anchor`` moved by whole months, the day clamped to the month's length (like
    Stripe's billing cycle anchor: the 31st bills on the 30th, then the 31st again)."""
    index = anchor.month - 1 + months
    year, month = anchor.year + index // 12, index % 12 + 1
    next_first = date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_first - timedelta(days=1)).day
    return anchor.replace(year=year, month=month, day=min(anchor.day, last_day))


def monthly_periods(*, anchor: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
    """Consecutive monthly periods from ``anchor`` that have ended by ``until``."""
    periods = []
    k = 0
    while (end := add_months(anchor, k + 1)) <= until:
        periods.append((add_months(anchor, k), end))
        k += 1
    return periods


def checkpoint(*, period_start: datetime, period_end: datetime, fraction: float) -> datetime:
    """The moment ``fraction`` of the period has elapsed, floored to a whole hour (rollups
    are hourly, so a replay sees exactly the hours before it)."""
    moment = period_start + (period_end - period_start) * fraction
    return moment.replace(minute=0, second=0, microsecond=0)


def final_value(*, series: Sequence[tuple[datetime, int]], aggregation: Aggregation) -> int:
    """The meter's value for a whole period from its buckets (ordered by time)."""
    if aggregation == "last":
        return series[-1][1] if series else 0
    return sum(v for _, v in series)


def buckets_between(
    series: Sequence[tuple[datetime, int]], start: datetime, end: datetime
) -> Sequence[tuple[datetime, int]]:
    """The buckets of a time-ordered series starting in ``[start, end)``."""
    keys = [ts for ts, _ in series]
    return series[bisect_left(keys, start) : bisect_left(keys, end)]


def mean_absolute_percentage_error(pairs: Iterable[tuple[int, int]]) -> Decimal | None:
    """MAPE in percent of (projected, actual) pairs, skipping actuals of 0; exact Decimal.

    None when no pair has a non-zero actual.
    """
    errors = [Decimal(abs(p - a)) / Decimal(a) for p, a in pairs if a != 0]
    if not errors:
        return None
    return sum(errors, Decimal(0)) / len(errors) * 100
