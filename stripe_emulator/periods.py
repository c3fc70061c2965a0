"""Billing period arithmetic (UTC): ``day``/``week`` are fixed lengths, ``month``/``year``
keep the anchor's day of month, clamped to the month's end (Jan 31 -> Feb 28 -> Mar 31)."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta


def add_interval(anchor: int, interval: str, count: int) -> int:
    start = datetime.fromtimestamp(anchor, UTC)
    if interval == "day":
        return int((start + timedelta(days=count)).timestamp())
    if interval == "week":
        return int((start + timedelta(weeks=count)).timestamp())
    months = count * (12 if interval == "year" else 1)
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def period_bounds(anchor: int, interval: str, count: int, index: int) -> tuple[int, int]:
    """Start and end of the ``index``-th period (0 = the first) after ``anchor``."""
    return (
        add_interval(anchor, interval, count * index),
        add_interval(anchor, interval, count * (index + 1)),
    )
