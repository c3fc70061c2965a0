"""Included units read off a graduated price's leading free tiers."""

from decimal import Decimal

from billing.pricing import PriceSpec, Tier, included_units

D = Decimal


def graduated(*tiers: Tier, mode: str = "graduated") -> PriceSpec:
    return PriceSpec(
        id="price_g",
        currency="usd",
        billing_scheme="tiered",
        tiers_mode=mode,  # type: ignore[arg-type]
        tiers=tiers,
        usage_type="metered",
    )


def test_pro_plan_includes_ten_thousand_calls() -> None:
    price = graduated(Tier(10_000, D("0"), D("0")), Tier(None, D("0.2")))
    assert included_units(price) == 10_000


def test_missing_amounts_count_as_free() -> None:
    assert included_units(graduated(Tier(500), Tier(None, D("1")))) == 500


def test_consecutive_free_tiers_add_up() -> None:
    price = graduated(Tier(5_000, D("0")), Tier(10_000, D("0")), Tier(None, D("0.2")))
    assert included_units(price) == 10_000


def test_a_flat_fee_is_not_free() -> None:
    price = graduated(Tier(10_000, D("0"), D("9900")), Tier(None, D("0.2")))
    assert included_units(price) == 0


def test_a_paid_first_tier_includes_nothing() -> None:
    assert included_units(graduated(Tier(10, D("1")), Tier(None, D("0")))) == 0


def test_volume_and_per_unit_prices_include_nothing() -> None:
    volume = graduated(Tier(10_000, D("0")), Tier(None, D("0.2")), mode="volume")
    assert included_units(volume) == 0
    per_unit = PriceSpec(id="price_u", currency="usd", unit_amount_decimal=D("0"))
    assert included_units(per_unit) == 0


def test_a_price_free_for_every_unit_is_no_allowance() -> None:
    assert included_units(graduated(Tier(None, D("0")))) == 0
