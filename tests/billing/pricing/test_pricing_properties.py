"""Hypothesis properties of the pricing engine and of to_minor_units.

The reference formulas here are written differently from the engine on purpose
(closed forms, bisect, marginal cost) so that agreement means something.
"""

from bisect import bisect_left
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing.money import to_minor_units
from billing.pricing import (
    PriceSpec,
    Tier,
    billable_quantity,
    line_amount,
    price_spec_from_stripe,
    rate,
    rate_quantity,
)

QUANTITIES = st.integers(min_value=0, max_value=3_000_000)

# unit amounts with 0..12 decimals, like Stripe's unit_amount_decimal
UNIT_AMOUNTS = st.builds(
    lambda digits, places: Decimal(digits).scaleb(-places),
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=12),
)
FLAT_AMOUNTS = st.none() | st.builds(
    lambda digits, places: Decimal(digits).scaleb(-places),
    st.integers(min_value=0, max_value=10**7),
    st.integers(min_value=0, max_value=3),
)


@st.composite
def tier_tables(draw: st.DrawFn) -> tuple[Tier, ...]:
    bounds = sorted(
        draw(st.sets(st.integers(min_value=1, max_value=2_000_000), min_size=0, max_size=5))
    )
    ups: list[int | None] = [*bounds, None]
    return tuple(Tier(up_to, draw(st.none() | UNIT_AMOUNTS), draw(FLAT_AMOUNTS)) for up_to in ups)


def tiered(mode: str, tiers: tuple[Tier, ...]) -> PriceSpec:
    return PriceSpec(
        id="price_prop",
        currency="usd",
        billing_scheme="tiered",
        tiers_mode=mode,  # type: ignore[arg-type]
        tiers=tiers,
        usage_type="metered",
    )


def lower_bounds(tiers: tuple[Tier, ...]) -> list[int]:
    """Units below each tier: 0 for the first, the previous up_to for the others."""
    return [0] + [tier.up_to for tier in tiers[:-1]]  # type: ignore[misc]


def graduated_closed_form(tiers: tuple[Tier, ...], quantity: int) -> Decimal:
    total = Decimal(0)
    for index, (low, tier) in enumerate(zip(lower_bounds(tiers), tiers, strict=True)):
        high = quantity if tier.up_to is None else tier.up_to
        units = max(0, min(quantity, high) - low)
        total += units * tier.unit_amount
        if quantity > low or index == 0:
            total += tier.flat_amount
    return total


@settings(max_examples=300, deadline=None)
@given(tiers=tier_tables(), a=QUANTITIES, b=QUANTITIES)
def test_graduated_total_never_decreases_with_quantity(
    tiers: tuple[Tier, ...], a: int, b: int
) -> None:
    price = tiered("graduated", tiers)
    low, high = sorted((a, b))
    assert rate_quantity(price=price, quantity=low) <= rate_quantity(price=price, quantity=high)
    assert line_amount(price=price, quantity=low) <= line_amount(price=price, quantity=high)


@settings(max_examples=300, deadline=None)
@given(tiers=tier_tables(), quantity=QUANTITIES)
def test_graduated_equals_sum_of_its_tier_slices(tiers: tuple[Tier, ...], quantity: int) -> None:
    result = rate(price=tiered("graduated", tiers), quantity=quantity)
    assert sum(charge.quantity for charge in result.tier_breakdown) == quantity
    assert sum(charge.amount for charge in result.tier_breakdown) == result.amount
    assert result.amount == graduated_closed_form(tiers, quantity)
    assert line_amount(price=tiered("graduated", tiers), quantity=quantity) == to_minor_units(
        graduated_closed_form(tiers, quantity)
    )


@settings(max_examples=300, deadline=None)
@given(tiers=tier_tables(), quantity=QUANTITIES)
def test_graduated_marginal_unit_costs_its_tier_rate(
    tiers: tuple[Tier, ...], quantity: int
) -> None:
    """One more unit costs the rate of the tier it lands in, plus that tier's flat
    amount when it is the tier's first unit (and the tier is not the first)."""
    price = tiered("graduated", tiers)
    lows = lower_bounds(tiers)
    index = bisect_left([t.up_to for t in tiers[:-1]], quantity + 1)  # tier of unit q+1
    tier = tiers[index]
    first_unit_of_tier = quantity == lows[index] and index > 0
    expected = tier.unit_amount + (tier.flat_amount if first_unit_of_tier else 0)
    step = rate_quantity(price=price, quantity=quantity + 1) - rate_quantity(
        price=price, quantity=quantity
    )
    assert step == expected


@settings(max_examples=300, deadline=None)
@given(tiers=tier_tables(), quantity=QUANTITIES)
def test_volume_charges_every_unit_at_the_tier_of_the_total(
    tiers: tuple[Tier, ...], quantity: int
) -> None:
    index = bisect_left([t.up_to for t in tiers[:-1]], quantity)
    tier = tiers[index]
    expected = quantity * tier.unit_amount + tier.flat_amount
    result = rate(price=tiered("volume", tiers), quantity=quantity)
    assert result.amount == expected
    assert [charge.tier_index for charge in result.tier_breakdown] == [index]
    assert line_amount(price=tiered("volume", tiers), quantity=quantity) == to_minor_units(expected)


@settings(deadline=None)
@given(unit=UNIT_AMOUNTS, quantity=QUANTITIES)
def test_one_tier_prices_agree_with_per_unit(unit: Decimal, quantity: int) -> None:
    per_unit = PriceSpec(id="p", currency="usd", unit_amount_decimal=unit)
    single = (Tier(None, unit),)
    expected = rate_quantity(price=per_unit, quantity=quantity)
    assert expected == quantity * unit
    assert rate_quantity(price=tiered("graduated", single), quantity=quantity) == expected
    assert rate_quantity(price=tiered("volume", single), quantity=quantity) == expected


@settings(deadline=None)
@given(
    unit=UNIT_AMOUNTS,
    quantity=QUANTITIES,
    divide_by=st.integers(min_value=1, max_value=100_000),
)
def test_package_rounding_up_and_down(unit: Decimal, quantity: int, divide_by: int) -> None:
    def package(round_: str) -> PriceSpec:
        return PriceSpec(
            id="p",
            currency="usd",
            unit_amount_decimal=unit,
            transform_divide_by=divide_by,
            transform_round=round_,  # type: ignore[arg-type]
        )

    up = billable_quantity(price=package("up"), quantity=quantity)
    down = billable_quantity(price=package("down"), quantity=quantity)
    assert (down * divide_by <= quantity <= up * divide_by) and up - down in (0, 1)
    assert (up == down) == (quantity % divide_by == 0)
    assert rate_quantity(price=package("up"), quantity=quantity) == up * unit
    assert rate_quantity(price=package("down"), quantity=quantity) == down * unit


@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_to_minor_units_never_accepts_float(value: float) -> None:
    with pytest.raises(TypeError):
        to_minor_units(value)  # type: ignore[arg-type]


@given(
    amount=st.decimals(
        allow_nan=False, allow_infinity=False, places=12, min_value=-(10**15), max_value=10**15
    )
)
def test_to_minor_units_rounds_to_nearest_half_away_from_zero(amount: Decimal) -> None:
    result = to_minor_units(amount)
    distance = abs(Decimal(result) - amount)
    assert distance <= Decimal("0.5")
    if distance == Decimal("0.5"):
        assert abs(result) > abs(amount)


def to_stripe_json(mode: str, tiers: tuple[Tier, ...], inf: Any) -> dict[str, Any]:
    def amount_fields(prefix: str, value: Decimal | None) -> dict[str, Any]:
        if value is None:
            return {prefix: None, f"{prefix}_decimal": None}
        integral = value == value.to_integral_value()
        return {prefix: int(value) if integral else None, f"{prefix}_decimal": str(value)}

    return {
        "id": "price_json",
        "object": "price",
        "currency": "usd",
        "billing_scheme": "tiered",
        "tiers_mode": mode,
        "transform_quantity": None,
        "unit_amount": None,
        "unit_amount_decimal": None,
        "recurring": {"interval": "month", "interval_count": 1, "usage_type": "metered"},
        "tiers": [
            {
                "up_to": inf if tier.up_to is None else tier.up_to,
                **amount_fields("unit_amount", tier.unit_amount_decimal),
                **amount_fields("flat_amount", tier.flat_amount_decimal),
            }
            for tier in tiers
        ],
    }


@settings(deadline=None)
@given(
    tiers=tier_tables(),
    mode=st.sampled_from(["graduated", "volume"]),
    inf=st.sampled_from([None, "inf"]),
    quantity=QUANTITIES,
)
def test_stripe_json_round_trip(
    tiers: tuple[Tier, ...], mode: str, inf: Any, quantity: int
) -> None:
    spec = price_spec_from_stripe(to_stripe_json(mode, tiers, inf))
    assert spec.tiers == tiers
    assert spec.tiers_mode == mode
    assert line_amount(price=spec, quantity=quantity) == line_amount(
        price=tiered(mode, tiers), quantity=quantity
    )


@settings(deadline=None)
@given(
    tiers=tier_tables(),
    free_unit=st.sampled_from([None, Decimal(0)]),
    free_flat=st.sampled_from([None, Decimal(0)]),
    quantity=QUANTITIES,
)
def test_included_units_are_free(
    tiers: tuple[Tier, ...], free_unit: Decimal | None, free_flat: Decimal | None, quantity: int
) -> None:
    assume(len(tiers) > 1)
    tiers = (Tier(tiers[0].up_to, free_unit, free_flat), *tiers[1:])
    spec = price_spec_from_stripe(to_stripe_json("graduated", tiers, None))
    assert spec.included_units >= tiers[0].up_to  # type: ignore[operator]
    free = min(quantity, spec.included_units)
    assert rate_quantity(price=spec, quantity=free) == 0
