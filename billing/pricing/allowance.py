"""Allowances: units a price covers at no charge.

The hybrid plan ("$99/month including 10,000 API calls, then $0.002 per call") is
modelled the Stripe way: a licensed $99 price plus a graduated metered price whose
first tier (up_to 10,000) costs nothing. The allowance is read off that tier.
"""

from billing.pricing.types import PriceSpec, Tier


def _is_free(tier: Tier) -> bool:
    return tier.unit_amount == 0 and tier.flat_amount == 0


def included_units(price: PriceSpec) -> int:
    """Units included at no charge: the ``up_to`` of the leading free tier(s).

    Only graduated prices have an allowance: their leading tiers with no unit amount
    and no flat amount cover that many units for free (consecutive free tiers add
    up to the last one's ``up_to``). A price that is free for every unit (an
    unbounded free tier), a volume price (where the total, not the first units,
    picks the tier) and a per-unit price include 0 units.
    """
    if price.billing_scheme != "tiered" or price.tiers_mode != "graduated":
        return 0
    covered = 0
    for tier in price.tiers:
        if not _is_free(tier) or tier.up_to is None:
            break
        covered = tier.up_to
    return covered
