"""The statistics behind the weighted projection (see :mod:`usage.projections` for the
method): weekday factors, the residual spread, and the recency-weighted growth line.
Pure functions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

MIN_DAYS_FOR_TREND = 14
TREND_MIN_T = 2.0  # a trend is used when its slope is this many standard errors from 0
WEEKDAY_WINDOW_DAYS = 28
FACTOR_MIN = 0.2
FACTOR_MAX = 5.0


def residual_sigma(residuals: Sequence[float], *, parameters: int = 1) -> float:
    """Standard deviation of residuals around a model fitted with ``parameters`` numbers
    (denominator n - parameters, at least 1)."""
    return math.sqrt(sum(r * r for r in residuals) / max(1, len(residuals) - parameters))


def weekday_factors(observations: Sequence[tuple[date, int]]) -> tuple[float, ...]:
    """Monday..Sunday usage factors from the last 28 days of daily observations.

    Each weekday's mean divided by the mean of the seven weekday means, clamped to
    [0.2, 5]. The values averaged are each day's *ratio to its centred 7-day mean*
    (the three days before, the day, the three after) wherever that week is known
    for every weekday -- so growth inside the window is not mistaken for a weekday
    effect (under steady growth the later weekdays would otherwise look busier).
    With too few days for that (under 13 in a row), the plain daily values are
    averaged. A weekday without an observation, or usage of 0 throughout, gives 1.0.
    """
    if not observations:
        return (1.0,) * 7
    newest = observations[-1][0]
    window = [(d, y) for d, y in observations if (newest - d).days < WEEKDAY_WINDOW_DAYS]
    by_day = dict(observations)
    ratios: list[list[float]] = [[] for _ in range(7)]
    for day, value in window:
        week = [by_day.get(day + timedelta(days=k)) for k in range(-3, 4)]
        if all(v is not None for v in week) and sum(week) > 0:
            ratios[day.weekday()].append(value * 7 / sum(week))
    if all(ratios):
        return _normalised([sum(r) / len(r) for r in ratios])
    by_weekday: list[list[int]] = [[] for _ in range(7)]
    for day, value in window:
        by_weekday[day.weekday()].append(value)
    return _normalised([sum(v) / len(v) if v else None for v in by_weekday])


def _normalised(means: Sequence[float | None]) -> tuple[float, ...]:
    present = [m for m in means if m is not None]
    level = sum(present) / len(present)
    if level <= 0:
        return (1.0,) * 7
    return tuple(1.0 if m is None else min(FACTOR_MAX, max(FACTOR_MIN, m / level)) for m in means)


@dataclass(frozen=True, slots=True)
class Trend:
    """A straight line through the daily rates: ``level`` on the newest observation's
    day, ``slope`` per day, and the (co)variances of both."""

    level: float
    slope: float
    var_level: float
    cov: float
    var_slope: float

    def rate_at(self, t: int) -> float:
        """The daily rate ``t`` days after the newest observation."""
        return self.level + self.slope * t


def weighted_trend(
    *, ages: Sequence[int], levels: Sequence[float], weights: Sequence[float]
) -> Trend | None:
    """The recency-weighted least-squares line through the deseasonalized daily rates,
    when there are at least 14 days and its slope is significant (more than two
    standard errors from 0); None otherwise, and the rate stays a weighted mean.

    The standard errors are the sandwich form for fixed (not inverse-variance) weights:
    ``s^2 x (X'WX)^-1 X'W^2X (X'WX)^-1``, ``s^2`` the residual variance (n - 2).
    """
    n = len(levels)
    if n < MIN_DAYS_FOR_TREND:
        return None
    ts = [-age for age in ages]

    def moments(ws: Sequence[float]) -> tuple[float, float, float]:
        return (
            sum(ws),
            sum(w * t for w, t in zip(ws, ts, strict=True)),
            sum(w * t * t for w, t in zip(ws, ts, strict=True)),
        )

    s0, s1, s2 = moments(weights)
    q0, q1, q2 = moments([w * w for w in weights])
    det = s0 * s2 - s1 * s1
    if det <= 0:
        return None
    sz = sum(w * z for w, z in zip(weights, levels, strict=True))
    stz = sum(w * t * z for w, t, z in zip(weights, ts, levels, strict=True))
    slope = (s0 * stz - s1 * sz) / det
    level = (sz - slope * s1) / s0
    residual_var = sum((z - level - slope * t) ** 2 for t, z in zip(ts, levels, strict=True)) / (
        n - 2
    )
    # inv = (X'WX)^-1 = [[s2, -s1], [-s1, s0]] / det; covariance = s^2 inv Q inv.
    inv = ((s2 / det, -s1 / det), (-s1 / det, s0 / det))
    q = ((q0, q1), (q1, q2))
    iq = [[sum(inv[i][k] * q[k][j] for k in range(2)) for j in range(2)] for i in range(2)]
    cov = [
        [residual_var * sum(iq[i][k] * inv[k][j] for k in range(2)) for j in range(2)]
        for i in range(2)
    ]
    if abs(slope) <= TREND_MIN_T * math.sqrt(max(cov[1][1], 0.0)):
        return None
    return Trend(level=level, slope=slope, var_level=cov[0][0], cov=cov[0][1], var_slope=cov[1][1])
