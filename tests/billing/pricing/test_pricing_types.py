"""PriceSpec and Tier refuse what Stripe refuses."""

from decimal import Decimal

import pytest

from billing.pricing import PriceSpec, Tier

D = Decimal


def spec(**overrides: object) -> PriceSpec:
    fields: dict[str, object] = {
        "id": "price_x",
        "currency": "usd",
        "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "tiers": (Tier(10, D("1")), Tier(None, D("2"))),
    }
    fields.update(overrides)
    return PriceSpec(**fields)  # type: ignore[arg-type]


def test_a_valid_tiered_spec() -> None:
    assert spec().tiers[-1].up_to is None


@pytest.mark.parametrize(
    "overrides",
    [
        # transform_quantity is not combinable with tiers
        {"transform_divide_by": 1000, "transform_round": "up"},
        # the last tier must be unbounded
        {"tiers": (Tier(10, D("1")), Tier(20, D("2")))},
        # only the last tier may be unbounded
        {"tiers": (Tier(None, D("1")), Tier(None, D("2")))},
        # up_to strictly increasing
        {"tiers": (Tier(10, D("1")), Tier(10, D("2")), Tier(None, D("3")))},
        {"tiers": (Tier(20, D("1")), Tier(10, D("2")), Tier(None, D("3")))},
        {"tiers": ()},
        {"tiers_mode": None},
        {"tiers_mode": "stairstep"},
        {"unit_amount_decimal": D("5")},
        {"currency": "USD"},
        {"usage_type": "rented"},
        {"interval": "fortnight"},
        {"interval_count": 0},
    ],
)
def test_invalid_tiered_specs(overrides: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        spec(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"unit_amount_decimal": None},
        {"unit_amount_decimal": 5},
        {"unit_amount_decimal": 0.5},
        {"unit_amount_decimal": D("-1")},
        {"unit_amount_decimal": D("NaN")},
        {"tiers_mode": "volume"},
        {"transform_divide_by": 1000},
        {"transform_round": "up"},
        {"transform_divide_by": 0, "transform_round": "up"},
        {"transform_divide_by": 10, "transform_round": "nearest"},
    ],
)
def test_invalid_per_unit_specs(overrides: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "id": "price_x",
        "currency": "usd",
        "unit_amount_decimal": D("10"),
    }
    fields.update(overrides)
    with pytest.raises((TypeError, ValueError)):
        PriceSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("up_to", "unit", "flat"),
    [(0, D("1"), None), (5, 0.2, None), (5, None, 100), (5, D("-0.1"), None), (True, None, None)],
)
def test_invalid_tiers(up_to: object, unit: object, flat: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        Tier(up_to, unit, flat)  # type: ignore[arg-type]


def test_missing_tier_amounts_count_as_zero() -> None:
    tier = Tier(None)
    assert (tier.unit_amount, tier.flat_amount) == (D(0), D(0))
