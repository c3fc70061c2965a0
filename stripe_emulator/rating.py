"""Stripe's pricing rules: the amount of one invoice line for a price and a quantity.

Rules (as Stripe applies them), all in ``decimal.Decimal``:

- ``per_unit``: quantity x ``unit_amount_decimal`` (or ``unit_amount``).
- ``transform_quantity`` (package pricing): the quantity is first divided by
  ``divide_by`` and rounded to a whole number, ``up`` (ceiling) or ``down`` (floor);
  then x the unit amount.
- ``tiered`` + ``graduated``: each tier's units at that tier's unit amount, plus the
  ``flat_amount`` of every tier that is reached (at least one unit falls in it). For a
  quantity of 0 the first tier's flat amount still applies.
- ``tiered`` + ``volume``: all units at the unit amount of the tier the total falls in,
  plus that tier's flat amount (a quantity of 0 falls in the first tier).
- ``up_to`` is inclusive; the last tier's ``up_to`` is ``None`` (``inf``).

Rounding: tier sub-amounts are summed in Decimal, unrounded; each invoice line amount
is rounded ONCE, by :func:`to_minor_units`, to the currency's minor unit (amounts are
already expressed in minor units) with ROUND_HALF_UP.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

ZERO = Decimal(0)


def _unit(obj: dict) -> Decimal:
    if obj.get("unit_amount_decimal") not in (None, ""):
        return Decimal(str(obj["unit_amount_decimal"]))
    if obj.get("unit_amount") is not None:
        return Decimal(obj["unit_amount"])
    return ZERO


def _flat(tier: dict) -> Decimal:
    if tier.get("flat_amount_decimal") not in (None, ""):
        return Decimal(str(tier["flat_amount_decimal"]))
    if tier.get("flat_amount") is not None:
        return Decimal(tier["flat_amount"])
    return ZERO


def package_quantity(quantity: int, transform: dict) -> Decimal:
    """``quantity / divide_by`` rounded up or down to a whole number of packages."""
    packages = Decimal(quantity) / Decimal(int(transform["divide_by"]))
    rounding = ROUND_CEILING if transform.get("round") == "up" else ROUND_FLOOR
    return packages.to_integral_value(rounding=rounding)


def graduated_amount(quantity: int, tiers: list[dict]) -> Decimal:
    total = ZERO
    lower = 0  # units covered by the previous tiers
    for index, tier in enumerate(tiers):
        upper = tier.get("up_to")
        in_tier = quantity - lower if upper is None else min(quantity, upper) - lower
        in_tier = max(in_tier, 0)
        if in_tier > 0 or (index == 0 and quantity == 0):
            total += _flat(tier)
        total += in_tier * _unit(tier)
        if upper is None or quantity <= upper:
            break
        lower = upper
    return total


def volume_amount(quantity: int, tiers: list[dict]) -> Decimal:
    for tier in tiers:
        if tier.get("up_to") is None or quantity <= tier["up_to"]:
            return quantity * _unit(tier) + _flat(tier)
    raise ValueError("tiers must end with up_to: inf")


def line_amount(price: dict, quantity: int) -> Decimal:
    """The exact (unrounded) amount, in minor units, of ``quantity`` of ``price``."""
    if price.get("billing_scheme") == "tiered":
        tiers = price.get("tiers") or []
        if price.get("tiers_mode") == "volume":
            return volume_amount(quantity, tiers)
        return graduated_amount(quantity, tiers)
    transform = price.get("transform_quantity")
    units = package_quantity(quantity, transform) if transform else Decimal(quantity)
    return units * _unit(price)


def to_minor_units(amount: Decimal) -> int:
    """The one rounding: an exact amount to a whole number of minor units, half up."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def rate(price: dict, quantity: int) -> int:
    """The rounded line amount for ``quantity`` of ``price``."""
    return to_minor_units(line_amount(price, quantity))
