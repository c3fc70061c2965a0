"""Tier tables: Stripe's graduated and volume rules, exact in Decimal.

Both functions expect ``tiers`` as validated by :class:`~billing.pricing.types.PriceSpec`
(``up_to`` inclusive and strictly increasing, the last tier unbounded) and return
the tiers that were charged, each with its exact amount in minor units.
"""

from collections.abc import Sequence
from decimal import Decimal

from billing.pricing.exact import exact_arithmetic
from billing.pricing.types import Tier, TierCharge


def _charge(*, index: int, tier: Tier, quantity: int, with_flat: bool) -> TierCharge:
    flat = tier.flat_amount if with_flat else Decimal(0)
    with exact_arithmetic():
        amount = Decimal(quantity) * tier.unit_amount + flat
    return TierCharge(
        tier_index=index,
        up_to=tier.up_to,
        quantity=quantity,
        unit_amount_decimal=tier.unit_amount,
        flat_amount_decimal=flat,
        amount=amount,
    )


def graduated_charges(*, tiers: Sequence[Tier], quantity: int) -> tuple[TierCharge, ...]:
    """Stripe's graduated rule.

    The units are split over the tiers in order: tier *i* takes the units above the
    previous tier's ``up_to`` up to and including its own ``up_to``, each at tier
    *i*'s unit amount. Every tier that is *reached* (at least one unit falls in it)
    adds its flat amount once. The first tier is always reached, so for quantity 0
    its flat amount still applies (and its unit amount applies to zero units).

    Example: tiers (up_to 5: 100 each + flat 500), (inf: 80 each + flat 300),
    quantity 7 -> 5 x 100 + 500 + 2 x 80 + 300 = 1,460.
    """
    charges: list[TierCharge] = []
    floor = 0  # units already taken by the lower tiers
    for index, tier in enumerate(tiers):
        ceiling = quantity if tier.up_to is None else min(quantity, tier.up_to)
        units = max(0, ceiling - floor)
        if units == 0 and index > 0:
            break
        charges.append(_charge(index=index, tier=tier, quantity=units, with_flat=True))
        if tier.up_to is None or quantity <= tier.up_to:
            break
        floor = tier.up_to
    return tuple(charges)


def volume_tier_index(*, tiers: Sequence[Tier], quantity: int) -> int:
    """Index of the tier a total quantity falls in: the first with ``quantity <= up_to``.

    Quantity 0 falls in the first tier.
    """
    for index, tier in enumerate(tiers):
        if tier.up_to is None or quantity <= tier.up_to:
            return index
    raise ValueError("tier table has no unbounded last tier")


def volume_charges(*, tiers: Sequence[Tier], quantity: int) -> tuple[TierCharge, ...]:
    """Stripe's volume rule.

    *All* units are charged at the unit amount of the single tier the total falls
    in, plus that tier's flat amount. Because a higher tier can be cheaper, a total
    can go down as usage goes up.

    Example: tiers (up_to 10: 100 each), (inf: 50 each + flat 200): quantity 10 ->
    10 x 100 = 1,000; quantity 11 -> 11 x 50 + 200 = 750.
    """
    index = volume_tier_index(tiers=tiers, quantity=quantity)
    return (_charge(index=index, tier=tiers[index], quantity=quantity, with_flat=True),)
