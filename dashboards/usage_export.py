"""The usage CSV: per meter and UTC day, the day's usage, the usage to date and what it
costs to date (the pricing engine on the cumulative usage), up to now for an open period."""

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

from django.utils.text import slugify

from billing.money import currency_exponent
from billing.pricing import line_amount
from billing.units import unit_plural
from usage.selectors.series import daily_series


def usage_csv_filename(*, account, start: datetime, end: datetime) -> str:
    """``usage-acme-analytics-2026-03-01-to-2026-04-01.csv``: the account's name (not its
    internal id) and the period's UTC dates."""
    name = slugify(account.name) or "account"
    return f"usage-{name}-{start:%Y-%m-%d}-to-{end:%Y-%m-%d}.csv"


def _major(minor: int, currency: str) -> str:
    """Minor units as a plain decimal number for a spreadsheet: 15900 USD -> "159.00"."""
    exponent = currency_exponent(currency)
    return f"{Decimal(minor).scaleb(-exponent):.{exponent}f}"


def usage_csv_header(*, currency: str) -> list[str]:
    return [
        "day (UTC)",
        "meter",
        "event_name",
        "unit",
        "usage",
        "usage to date",
        f"usage cost to date ({currency.upper()})",
    ]


def usage_csv_rows(
    *, account, state, start: datetime, end: datetime, now: datetime
) -> Iterator[list]:
    """One row per metered item and UTC day from ``start`` to ``min(now, end)``: no days
    in the future. ``last`` meters (seats) show the value, not a sum, as usage to date.
    The cost to date is ``line_amount`` of the usage to date (the base fee is not in it)."""
    as_of = min(now, end)
    for item in state.metered_items:
        meter = item.meter
        is_last = meter.aggregation == "last"
        to_date = 0
        for day, value in daily_series(account=account, meter=meter, start=start, end=as_of):
            to_date = value if is_last else to_date + value
            cost = line_amount(price=item.spec, quantity=to_date)
            yield [
                day.date().isoformat(),
                meter.display_name,
                meter.event_name,
                unit_plural(meter.unit_label),
                value,
                to_date,
                _major(cost, state.currency),
            ]
