"""Rate a quantity under a price, exactly as Stripe does.

Stripe's rules, implemented here:

- ``per_unit``: quantity x ``unit_amount_decimal``.
- ``transform_quantity`` (per_unit only): the quantity is first divided by
  ``divide_by`` and rounded ``up`` (ceiling) or ``down`` (floor) to a whole number
  of packages, then multiplied by the unit amount (the price of one package).
- ``tiered`` + ``graduated``: see :func:`billing.pricing.tiers.graduated_charges`.
- ``tiered`` + ``volume``: see :func:`billing.pricing.tiers.volume_charges`.

All arithmetic is exact ``Decimal`` in minor units (unit amounts may have up to 12
decimals). A line amount is rounded ONCE, after tier sub-amounts are summed, to an
integer number of minor units with ROUND_HALF_UP
(:func:`billing.money.to_minor_units`): 0.35 x 1,001 = 350.35 -> 350;
0.5 x 3 = 1.5 -> 2.
"""

from decimal import Decimal

from billing.money import to_minor_units
from billing.pricing.exact import exact_arithmetic
from billing.pricing.tiers import graduated_charges, volume_charges
from billing.pricing.types import PriceSpec, Rating


def _check_quantity(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise TypeError(f"quantity must be an int, not {type(quantity).__name__}")
    if quantity < 0:
        raise ValueError(f"quantity must be >= 0, not {quantity}")


def billable_quantity(*, price: PriceSpec, quantity: int) -> int:
    """The quantity after ``transform_quantity``: ceil or floor of quantity / divide_by.

    Integer arithmetic only; without a transform the quantity is returned unchanged.
    """
    _check_quantity(quantity)
    divide_by = price.transform_divide_by
    if divide_by is None:
        return quantity
    if price.transform_round == "up":
        return -(-quantity // divide_by)
    return quantity // divide_by


def rate(*, price: PriceSpec, quantity: int) -> Rating:
    """Rate ``quantity`` under ``price``: exact amount plus the tiers charged."""
    billed = billable_quantity(price=price, quantity=quantity)
    if price.billing_scheme == "per_unit":
        assert price.unit_amount_decimal is not None  # PriceSpec guarantees it
        with exact_arithmetic():
            amount = Decimal(billed) * price.unit_amount_decimal
        return Rating(quantity=quantity, billed_quantity=billed, amount=amount)

    if price.tiers_mode == "graduated":
        charges = graduated_charges(tiers=price.tiers, quantity=billed)
    else:
        charges = volume_charges(tiers=price.tiers, quantity=billed)
    with exact_arithmetic():
        amount = sum((charge.amount for charge in charges), Decimal(0))
    return Rating(
        quantity=quantity,
        billed_quantity=billed,
        amount=amount,
        tier_breakdown=charges,
    )


def rate_quantity(*, price: PriceSpec, quantity: int) -> Decimal:
    """The exact, unrounded amount in minor units for ``quantity`` under ``price``."""
    return rate(price=price, quantity=quantity).amount


def line_amount(*, price: PriceSpec, quantity: int) -> int:
    """The line amount in integer minor units: the exact amount rounded once, half up."""
    return to_minor_units(rate_quantity(price=price, quantity=quantity))
