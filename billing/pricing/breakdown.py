"""The lines behind one rated amount: what each tier, package or unit contributed.

A customer sees "API calls: 12,345 calls — $358.45" and asks why. :func:`breakdown`
answers with the rows Stripe's hosted invoice shows per tier: units, unit price (a
``Decimal`` in minor units, sub-cent allowed), flat fee and amount (integer minor
units). It rates through :func:`billing.pricing.rating.rate`, so the rows are the
engine's own tier charges, not a second implementation.

Rounding: the engine rounds a line once, after summing the exact tier amounts. Rounding
every row on its own could miss that total by a cent or more (3 tiers of 0.5¢ each
round to 3¢, the line to 2¢). Each row's amount is therefore the rounded running total
minus the rounded running total before it, both by :func:`billing.money.to_minor_units`:
every row is within a cent of its own exact amount and the rows add up to the line
amount exactly.

:func:`price_table` lists a price's terms (every tier, or the unit or package price) for
showing a plan's prices before any usage.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from billing.money import to_minor_units
from billing.pricing.exact import exact_arithmetic
from billing.pricing.rating import rate
from billing.pricing.types import PriceSpec

RowKind = Literal["per_unit", "package", "tier"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakdownRow:
    """One row of a breakdown.

    ``units`` are the units this row charges: for a tier, the units that fell in it
    (graduated) or the whole total (volume); for a package price, the number of
    packages. ``first_unit`` .. ``last_unit`` is the tier's range (``last_unit`` None:
    unbounded). ``unit_amount_decimal`` is the price of one unit (or package) and
    ``flat_amount_decimal`` the flat fee charged on this row, both exact in minor
    units; ``exact_amount`` = units x unit price + flat fee; ``amount`` is this row's
    share of the rounded line amount, in integer minor units.
    """

    kind: RowKind
    units: int
    unit_amount_decimal: Decimal
    flat_amount_decimal: Decimal
    exact_amount: Decimal
    amount: int
    tier_index: int | None = None
    first_unit: int | None = None
    last_unit: int | None = None
    package_size: int | None = None

    @property
    def is_free(self) -> bool:
        """Units included at no charge (an allowance tier)."""
        return self.unit_amount_decimal == 0 and self.flat_amount_decimal == 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Breakdown:
    """How ``quantity`` under ``price`` adds up to ``amount`` (the engine's line amount).

    ``billed_quantity`` is the quantity after ``transform_quantity`` (packages);
    ``tiers_mode`` is None for per-unit and package prices."""

    price_id: str
    currency: str
    quantity: int
    billed_quantity: int
    amount: int
    exact_amount: Decimal
    rows: tuple[BreakdownRow, ...]
    tiers_mode: str | None = None
    package_size: int | None = None
    package_round: str | None = None


def _rounded_shares(exact: list[Decimal]) -> list[int]:
    """Integer shares of ``round(sum(exact))``: running total rounded, minus the last."""
    shares: list[int] = []
    running = Decimal(0)
    previous = 0
    for value in exact:
        with exact_arithmetic():
            running += value
        rounded = to_minor_units(running)
        shares.append(rounded - previous)
        previous = rounded
    return shares


def _first_units(price: PriceSpec) -> list[int]:
    """The first unit of each tier: 1, then the previous tier's ``up_to`` + 1."""
    return [1] + [tier.up_to + 1 for tier in price.tiers[:-1]]  # type: ignore[operator]


def breakdown(*, price: PriceSpec, quantity: int) -> Breakdown:
    """The rows that add up to ``line_amount(price=price, quantity=quantity)``.

    - per-unit: one row, ``quantity`` x the unit price;
    - package (``transform_quantity``): one row, the packages (rounded up or down) x
      the package price;
    - graduated: one row per tier reached, each with its units, unit price and flat fee
      (the first tier always, as Stripe charges its flat fee even at 0 units; an
      allowance is a tier at 0);
    - volume: one row, every unit at the rate of the tier the total falls in, plus that
      tier's flat fee.
    """
    rating = rate(price=price, quantity=quantity)
    if price.billing_scheme == "per_unit":
        assert price.unit_amount_decimal is not None  # PriceSpec guarantees it
        package = price.transform_divide_by is not None
        raw = [
            dict(
                kind="package" if package else "per_unit",
                units=rating.billed_quantity,
                unit_amount_decimal=price.unit_amount_decimal,
                flat_amount_decimal=Decimal(0),
                exact_amount=rating.amount,
                package_size=price.transform_divide_by,
            )
        ]
    else:
        firsts = _first_units(price)
        raw = [
            dict(
                kind="tier",
                units=charge.quantity,
                unit_amount_decimal=charge.unit_amount_decimal,
                flat_amount_decimal=charge.flat_amount_decimal,
                exact_amount=charge.amount,
                tier_index=charge.tier_index,
                first_unit=firsts[charge.tier_index],
                last_unit=charge.up_to,
            )
            for charge in rating.tier_breakdown
        ]
    shares = _rounded_shares([row["exact_amount"] for row in raw])
    rows = tuple(BreakdownRow(**row, amount=share) for row, share in zip(raw, shares, strict=True))
    return Breakdown(
        price_id=price.id,
        currency=price.currency,
        quantity=quantity,
        billed_quantity=rating.billed_quantity,
        amount=to_minor_units(rating.amount),
        exact_amount=rating.amount,
        rows=rows,
        tiers_mode=price.tiers_mode if price.billing_scheme == "tiered" else None,
        package_size=price.transform_divide_by,
        package_round=price.transform_round,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceTerm:
    """One row of a price's terms: units ``first_unit`` .. ``last_unit`` (None:
    and up) at ``unit_amount_decimal`` each (per package when ``package_size``), plus
    ``flat_amount_decimal`` once."""

    first_unit: int
    last_unit: int | None
    unit_amount_decimal: Decimal
    flat_amount_decimal: Decimal
    package_size: int | None = None


def price_table(price: PriceSpec) -> tuple[PriceTerm, ...]:
    """A price's terms as a table: every tier of a tiered price, else its one unit
    (or package) price from the first unit up."""
    if price.billing_scheme == "per_unit":
        assert price.unit_amount_decimal is not None
        return (
            PriceTerm(
                first_unit=1,
                last_unit=None,
                unit_amount_decimal=price.unit_amount_decimal,
                flat_amount_decimal=Decimal(0),
                package_size=price.transform_divide_by,
            ),
        )
    return tuple(
        PriceTerm(
            first_unit=first,
            last_unit=tier.up_to,
            unit_amount_decimal=tier.unit_amount,
            flat_amount_decimal=tier.flat_amount,
        )
        for first, tier in zip(_first_units(price), price.tiers, strict=True)
    )
