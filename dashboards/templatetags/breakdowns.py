"""Template tags that explain the numbers: a metered line's breakdown per tier, a
price's terms, and the estimated invoice as the lines that add up to it.

Every amount comes from the pricing engine (``billing.pricing``); these tags only pick
what to show."""

from dataclasses import dataclass
from decimal import Decimal

from django import template

from billing.money import format_unit_amount
from billing.pricing import Breakdown, PriceSpec, PriceTerm, breakdown, line_amount, price_table
from billing.units import quantity_text

register = template.Library()


@register.filter
def unit_price(amount: Decimal | int | None, currency: str = "usd") -> str:
    """An exact unit price in minor units, sub-cent digits kept: "$0.002"."""
    if amount is None:
        return "—"
    return format_unit_amount(amount, currency)


@register.simple_tag
def line_breakdown(spec: PriceSpec, quantity: int) -> Breakdown:
    """``{% line_breakdown line.item.spec line.usage as bd %}``."""
    return breakdown(price=spec, quantity=int(quantity))


@register.simple_tag
def price_terms(spec: PriceSpec) -> tuple[PriceTerm, ...]:
    """``{% price_terms line.item.spec as terms %}``: the price's tiers or unit price."""
    return price_table(spec)


@dataclass(frozen=True)
class EstimateRow:
    label: str
    detail: str
    amount: int
    testid: str


@dataclass(frozen=True)
class Estimate:
    rows: tuple[EstimateRow, ...]
    total: int
    closed: bool


def _licensed_detail(item, currency: str) -> str:
    if item.spec.billing_scheme == "per_unit":
        return f"{item.quantity:,} × {format_unit_amount(item.spec.unit_amount_decimal, currency)}"
    return f"{item.quantity:,}"


@register.simple_tag
def estimate_rows(summary) -> Estimate:
    """The estimated invoice (open period: the base fee in advance plus each metered
    line's projected cost) or the period's total (closed: the base fee plus each line's
    cost), as rows whose amounts add up to ``total``."""
    state = summary.state
    rows = [
        EstimateRow(
            label=item.nickname or "Base fee",
            detail=_licensed_detail(item, summary.currency),
            amount=line_amount(price=item.spec, quantity=item.quantity),
            testid=f"estimate-base-{item.price_id}",
        )
        for item in state.licensed_items
    ]
    for line in summary.lines:
        if summary.closed:
            amount = line.cost_so_far
            detail = quantity_text(line.usage, line.meter.unit_label)
        elif line.projection.method == "none":  # too early: the dashboard shows no projection
            amount = line.projected_cost[1]
            detail = (
                f"{quantity_text(line.usage, line.meter.unit_label)} so far, too early to project"
            )
        else:
            amount = line.projected_cost[1]
            detail = f"projected {quantity_text(line.projection.projected, line.meter.unit_label)}"
        rows.append(
            EstimateRow(
                label=line.meter.display_name,
                detail=detail,
                amount=amount,
                testid=f"estimate-line-{line.meter.event_name}",
            )
        )
    return Estimate(rows=tuple(rows), total=sum(r.amount for r in rows), closed=summary.closed)
