"""The emulator's own pricing rules, unit by unit (no server needed)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from stripe_emulator import rating


def tiered(mode, *tiers):
    return {"billing_scheme": "tiered", "tiers_mode": mode, "tiers": list(tiers)}


def tier(up_to, unit=None, flat=None, unit_decimal=None):
    return {
        "up_to": up_to,
        "unit_amount": unit,
        "flat_amount": flat,
        "unit_amount_decimal": unit_decimal,
        "flat_amount_decimal": None,
    }


HYBRID = tiered("graduated", tier(10000, 0), tier(None, unit_decimal="0.2"))


@pytest.mark.parametrize(
    ("quantity", "exact"),
    [
        (0, Decimal(0)),
        (10000, Decimal(0)),
        (10001, Decimal("0.2")),
        (12345, Decimal("469.0")),  # 2,345 x 0.2
    ],
)
def test_graduated_hybrid(quantity, exact):
    assert rating.line_amount(HYBRID, quantity) == exact


def test_graduated_flat_fee_of_first_tier_applies_at_zero():
    price = tiered("graduated", tier(10, 1, 100), tier(None, 1, 50))
    assert rating.rate(price, 0) == 100  # first tier's flat only
    assert rating.rate(price, 10) == 110  # 10 x 1 + 100
    assert rating.rate(price, 11) == 161  # 110 + 1 x 1 + 50


def test_volume_total_can_go_down():
    price = tiered("volume", tier(100, 10), tier(None, 5, 200))
    assert rating.rate(price, 100) == 1000  # 100 x 10
    assert rating.rate(price, 101) == 705  # 101 x 5 + 200
    assert rating.rate(price, 0) == 0


def test_package_rounding():
    up = {
        "billing_scheme": "per_unit",
        "unit_amount": 500,
        "unit_amount_decimal": "500",
        "transform_quantity": {"divide_by": 100, "round": "up"},
    }
    down = {**up, "transform_quantity": {"divide_by": 100, "round": "down"}}
    assert rating.rate(up, 101) == 1000 and rating.rate(down, 101) == 500
    assert rating.rate(up, 0) == 0 and rating.rate(down, 99) == 0


def test_one_rounding_half_up():
    price = {
        "billing_scheme": "per_unit",
        "unit_amount": None,
        "unit_amount_decimal": "0.005",
        "transform_quantity": None,
    }
    assert rating.line_amount(price, 100) == Decimal("0.5")
    assert rating.rate(price, 100) == 1  # 0.5 rounds half up
    assert rating.rate(price, 99) == 0  # 0.495
    assert rating.to_minor_units(Decimal("2.5")) == 3
