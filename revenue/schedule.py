"""Revenue schedules: the pure core of revenue recognition (no database, no Django).

A line of a finalized invoice is earned over its service period ``[start, end)``,
one UTC day at a time:

- licensed / flat lines ratably: each day weighs the seconds of the period that fall
  in it (a period from midnight to midnight gives every day the same weight; a
  period starting at 10:00 gives its first day 14/24 of a day's weight);
- metered lines in proportion to the usage consumed on each day (weights from the
  hourly rollups), falling back to ratable when there is no usage detail (no usage
  recorded, or a meter whose charge is a level such as ``last`` seats);
- a line whose period is empty (``end <= start``, a one-off item) is earned on the
  day of ``start``.

Rounding rule (the only one in this package): what is earned *by the end of* each day
is the **floor of the exact cumulative share** ``amount × Σ weights so far / Σ weights``
(computed in ``Decimal`` and turned into minor units by
:func:`billing.money.to_minor_units` with ``ROUND_FLOOR``; for a negative amount the
magnitude is floored, so a credit is the exact mirror of the charge it reverses); a day
earns the difference from the day before, and the last day earns what remains. Every
line's days therefore add up to the line's amount exactly, the amount earned to date
never exceeds the exact share (what is still deferred is never negative), and every
month is within one minor unit of its exact share.

Worked example: 9,900 over the 31 days 15 Jan .. 14 Feb. By 31 Jan (17 days):
floor(9,900 × 17 / 31) = floor(5,429.03...) = 5,429 earned in January; February earns
the other 9,900 − 5,429 = 4,471; the last day (14 Feb) earns
9,900 − floor(9,900 × 30 / 31) = 9,900 − 9,580 = 320.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_FLOOR, Context, Decimal

from billing.money import to_minor_units

DAY = timedelta(days=1)

# Plenty of digits, rounding *down*: the quotient is never above the exact share, and
# a share that is not a whole number is at least 1/Σweights above its floor, far more
# than the last digit kept, so flooring the quotient gives the floor of the exact share.
_SHARE_CONTEXT = Context(prec=120, rounding=ROUND_FLOOR)


@dataclass(frozen=True, slots=True)
class RevenueLine:
    """One revenue-bearing line: an invoice line net of its discounts and credits.

    ``amount`` is in integer minor units of ``currency`` and is what is recognized;
    ``gross`` and ``discount`` (negative or zero) explain it. ``billed_on`` is the
    UTC date the invoice was finalized. ``usage_by_day`` holds the usage of a metered
    line per UTC day (``None`` or empty: recognized ratably).
    """

    invoice_id: str
    line_id: str
    currency: str
    amount: int
    period_start: datetime
    period_end: datetime
    billed_on: date
    account_id: int | None = None
    kind: str = "licensed"
    gross: int | None = None
    discount: int = 0
    description: str = ""
    usage_by_day: Mapping[date, int] | None = field(default=None, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class ScheduleDay:
    day: date
    amount: int


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def service_days(start: datetime, end: datetime) -> list[tuple[date, int]]:
    """The UTC days ``[start, end)`` touches, each with its seconds inside the period.

    An empty period (``end <= start``) is the single day of ``start`` with weight 1.
    """
    if end <= start:
        return [(utc_day(start), 1)]
    days = []
    day = utc_day(start)
    while _midnight(day) < end:
        lo = max(start, _midnight(day))
        hi = min(end, _midnight(day) + DAY)
        seconds = int((hi - lo).total_seconds())
        if seconds > 0:
            days.append((day, seconds))
        day += DAY
    return days


def allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """Split ``amount`` (minor units) over ``weights`` by floors of the cumulative exact
    shares; the last element takes what remains. The result always sums to ``amount``.

    A negative amount is split as its magnitude and negated (``allocate(-a, w) ==
    [-x for x in allocate(a, w)]``). All weights zero (or none positive) splits evenly.
    """
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"amount must be an int in minor units, not {amount!r}")
    if not weights:
        raise ValueError("nothing to allocate over")
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in weights):
        raise ValueError(f"weights must be non-negative integers, got {list(weights)!r}")
    if sum(weights) == 0:
        weights = [1] * len(weights)
    return _cumulative_floor_shares(amount, weights)


def _cumulative_floor_shares(amount: int, weights: Sequence[int]) -> list[int]:
    """Shares of ``amount`` proportional to ``weights`` (non-negative, positive sum): each
    the difference of the floors of the cumulative exact shares, so they sum exactly."""
    total = sum(weights)
    sign = -1 if amount < 0 else 1
    magnitude = Decimal(abs(amount))
    shares, cumulative, floor_before = [], 0, 0
    for weight in weights:
        cumulative += weight
        floor_here = to_minor_units(
            _SHARE_CONTEXT.divide(magnitude * cumulative, Decimal(total)), rounding=ROUND_FLOOR
        )
        shares.append(sign * (floor_here - floor_before))
        floor_before = floor_here
    return shares


def line_weights(line: RevenueLine) -> list[tuple[date, int]]:
    """The days of the line's service period with their weights (see module docstring)."""
    days = service_days(line.period_start, line.period_end)
    usage = line.usage_by_day or {}
    if line.kind == "metered" and usage:
        weighted = [(day, int(usage.get(day, 0))) for day, _ in days]
        if sum(w for _, w in weighted) > 0:
            return weighted
    return days


def line_schedule(line: RevenueLine) -> list[ScheduleDay]:
    """The line's amount per UTC day; the amounts add up to ``line.amount`` exactly."""
    days = line_weights(line)
    amounts = allocate(line.amount, [w for _, w in days])
    return [ScheduleDay(day, amount) for (day, _), amount in zip(days, amounts, strict=True)]


def weighted_schedule(amount: int, weights: Sequence[tuple[date, int]]) -> list[ScheduleDay]:
    """``amount`` over explicit (day, weight) pairs, with the same rounding rule."""
    amounts = allocate(amount, [w for _, w in weights])
    return [ScheduleDay(day, a) for (day, _), a in zip(weights, amounts, strict=True)]


def spread_over_lines(amount: int, line_amounts: Sequence[int]) -> list[int]:
    """An invoice-level discount or credit spread over the lines it reduces, in
    proportion to their (positive) amounts.

    The same cumulative floors as days, so no line is reduced by more than its own
    amount and the shares add up to ``amount`` exactly.
    """
    positive = [max(a, 0) for a in line_amounts]
    if sum(positive) == 0:
        raise ValueError("no positive line to spread over")
    return _cumulative_floor_shares(amount, positive)


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def schedule_by_month(days: Sequence[ScheduleDay]) -> dict[str, int]:
    months: dict[str, int] = {}
    for entry in days:
        key = month_of(entry.day)
        months[key] = months.get(key, 0) + entry.amount
    return months
