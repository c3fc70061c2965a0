"""Rate a whole subscription period into line items.

Stripe bills licensed prices in advance and metered prices in arrears: the invoice
that closes a period charges the metered usage of the period that just ended and
the licensed fees of the period that starts. A running period is estimated as its
licensed fees plus the metered usage so far.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime

from billing.money import to_minor_units
from billing.pricing.rating import rate
from billing.pricing.types import LineItem, PriceSpec

PricedQuantity = tuple[PriceSpec, int]

_TIMES = "\u00d7"  # the multiplication sign Stripe uses in line descriptions


def _description(*, price: PriceSpec, quantity: int) -> str:
    if price.billing_scheme == "tiered":
        return f"{quantity:,} {_TIMES} {price.name} ({price.tiers_mode} tiers)"
    return f"{quantity:,} {_TIMES} {price.name}"


def _check_period(*, start: datetime, end: datetime, label: str) -> None:
    if end <= start:
        raise ValueError(f"{label} must end after it starts: {start} .. {end}")


def _single_currency(items: Sequence[PricedQuantity]) -> None:
    currencies = {price.currency for price, _ in items}
    if len(currencies) > 1:
        raise ValueError(f"all prices must share one currency, got {sorted(currencies)}")


def rate_line(
    *, price: PriceSpec, quantity: int, period_start: datetime, period_end: datetime
) -> LineItem:
    """One line: ``quantity`` under ``price`` for the given service period."""
    rating = rate(price=price, quantity=quantity)
    return LineItem(
        price_id=price.id,
        description=_description(price=price, quantity=quantity),
        quantity=quantity,
        amount=to_minor_units(rating.amount),
        currency=price.currency,
        period_start=period_start,
        period_end=period_end,
        proration=False,
        kind=price.usage_type,
        tier_breakdown=rating.tier_breakdown,
        amount_decimal=rating.amount,
    )


def rate_period(
    *,
    items: Sequence[PricedQuantity],
    period_start: datetime,
    period_end: datetime,
    next_period_start: datetime,
    next_period_end: datetime,
) -> list[LineItem]:
    """Line items of the invoice that closes ``period_start .. period_end``.

    ``items`` are ``(price, quantity)`` pairs: for a licensed price the quantity
    (seats, plans) for the next period, for a metered price the usage aggregated
    over the closed period. Licensed lines cover ``next_period_*`` (in advance),
    metered lines cover ``period_*`` (in arrears). Lines keep the order of
    ``items``; each amount is rounded once.
    """
    _check_period(start=period_start, end=period_end, label="period")
    _check_period(start=next_period_start, end=next_period_end, label="next period")
    if next_period_start < period_end:
        raise ValueError("the next period cannot start before the closed period ends")
    _single_currency(items)
    lines: list[LineItem] = []
    for price, quantity in items:
        if price.usage_type == "licensed":
            start, end = next_period_start, next_period_end
        else:
            start, end = period_start, period_end
        lines.append(rate_line(price=price, quantity=quantity, period_start=start, period_end=end))
    return lines


def estimate_current_period(
    *,
    items: Sequence[PricedQuantity],
    period_start: datetime,
    period_end: datetime,
) -> list[LineItem]:
    """What the running period costs so far: its licensed fees plus metered usage so far.

    ``items`` are ``(price, quantity)`` pairs: the current licensed quantity, or the
    metered usage from ``period_start`` until now. Every line covers the current
    period.
    """
    _check_period(start=period_start, end=period_end, label="period")
    _single_currency(items)
    return [
        rate_line(price=price, quantity=quantity, period_start=period_start, period_end=period_end)
        for price, quantity in items
    ]


def lines_total(*, lines: Iterable[LineItem]) -> int:
    """Sum of line amounts in minor units (already rounded per line, as Stripe does)."""
    return sum(line.amount for line in lines)
