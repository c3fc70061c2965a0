"""The cost of a projection: (low, expected, high) in minor units, through the pricing
engine."""

from billing.pricing import PriceSpec, line_amount
from usage.projections import Projection


def project_cost(*, price_spec: PriceSpec, projection: Projection) -> tuple[int, int, int]:
    """(low, expected, high) cost in minor units of the projected usage under a price.

    Every amount comes from :func:`billing.pricing.line_amount`. Volume pricing is not
    monotonic (crossing into a cheaper tier can lower the total), so low and high are
    the cheapest and dearest cost of *any* quantity in [low, high]: the bounds, the
    projection and each tier edge (``up_to`` and ``up_to + 1``) inside the range.
    Within one tier the cost only grows with the quantity, so no other quantity can
    beat these.
    """
    expected = line_amount(price=price_spec, quantity=projection.projected)
    candidates = {projection.low, projection.projected, projection.high}
    for tier in price_spec.tiers:
        if tier.up_to is None:
            continue
        for edge in (tier.up_to, tier.up_to + 1):
            if projection.low <= edge <= projection.high:
                candidates.add(edge)
    costs = [line_amount(price=price_spec, quantity=q) for q in sorted(candidates)]
    return min(costs), expected, max(costs)
