"""billing.pricing.breakdown: the rows behind a line amount add up to it to the cent.

The generators are the ones the other pricing tests use: the Stripe-shaped prices of
the emulator comparison (per unit, package, graduated, volume, with sub-cent decimals
and flat fees) and the PriceSpec tier tables of the property tests.
"""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.pricing import PriceSpec, Tier, line_amount, price_spec_from_stripe
from billing.pricing.breakdown import breakdown, price_table
from tests.billing.pricing.test_pricing_properties import QUANTITIES, tier_tables, tiered
from tests.billing.pricing.test_pricing_vs_emulator import prices


def _spec(params: dict) -> PriceSpec:
    return price_spec_from_stripe({"id": "price_gen", **params})


def _check(price: PriceSpec, quantity: int) -> None:
    result = breakdown(price=price, quantity=quantity)
    # The rows add up to the engine's own line amount, exactly.
    assert result.amount == line_amount(price=price, quantity=quantity)
    assert sum(row.amount for row in result.rows) == result.amount
    # Each row is its exact amount rounded to within one minor unit.
    for row in result.rows:
        assert abs(Decimal(row.amount) - row.exact_amount) <= 1
        assert row.exact_amount == row.units * row.unit_amount_decimal + row.flat_amount_decimal
    if result.tiers_mode == "graduated":
        assert sum(row.units for row in result.rows) == result.billed_quantity == quantity
    else:
        assert len(result.rows) == 1 and result.rows[0].units == result.billed_quantity


@settings(max_examples=400, deadline=None)
@given(params=prices(), quantity=st.integers(0, 200_000))
def test_rows_add_up_to_the_line_amount_for_stripe_shaped_prices(params, quantity):
    _check(_spec(params), quantity)


@settings(max_examples=300, deadline=None)
@given(tiers=tier_tables(), quantity=QUANTITIES, mode=st.sampled_from(["graduated", "volume"]))
def test_rows_add_up_to_the_line_amount_for_generated_tier_tables(tiers, quantity, mode):
    _check(tiered(mode, tiers), quantity)


def _rows(result):
    return [
        (
            row.first_unit,
            row.last_unit,
            row.units,
            row.unit_amount_decimal,
            row.flat_amount_decimal,
            row.amount,
        )
        for row in result.rows
    ]


SCALE = tiered(
    "graduated",
    (
        Tier(1000, Decimal(5), Decimal(1000)),
        Tier(10_000, Decimal(3), Decimal(500)),
        Tier(None, Decimal(1)),
    ),
)
GROWTH = tiered(
    "volume",
    (
        Tier(100, Decimal(10), Decimal(500)),
        Tier(1000, Decimal(8), Decimal(1000)),
        Tier(None, Decimal(5), Decimal(2000)),
    ),
)


def test_graduated_with_flat_fees_by_hand():
    # Scale, 12,345 transactions: 1,000 × 5¢ + 1,000¢ = 6,000¢; 9,000 × 3¢ + 500¢ =
    # 27,500¢; 2,345 × 1¢ = 2,345¢; 6,000 + 27,500 + 2,345 = 35,845¢.
    result = breakdown(price=SCALE, quantity=12_345)
    assert _rows(result) == [
        (1, 1000, 1000, 5, 1000, 6_000),
        (1001, 10_000, 9000, 3, 500, 27_500),
        (10_001, None, 2345, 1, 0, 2_345),
    ]
    assert result.amount == 35_845


def test_volume_with_flat_fees_by_hand():
    # Growth, 250 GB falls in tier 2 (101–1,000): 250 × 8¢ + 1,000¢ = 3,000¢.
    result = breakdown(price=GROWTH, quantity=250)
    assert _rows(result) == [(101, 1000, 250, 8, 1000, 3_000)]
    # 1,000 GB: 1,000 × 8¢ + 1,000¢ = 9,000¢; 1,001 GB: 1,001 × 5¢ + 2,000¢ = 7,005¢.
    assert breakdown(price=GROWTH, quantity=1000).amount == 9_000
    assert _rows(breakdown(price=GROWTH, quantity=1001)) == [(1001, None, 1001, 5, 2000, 7_005)]


def test_package_by_hand():
    # Bulk: 7,001 calls in packs of 1,000 rounded up = 8 packs × 50¢ = 400¢.
    bulk = PriceSpec(
        id="bulk",
        currency="usd",
        unit_amount_decimal=Decimal(50),
        transform_divide_by=1000,
        transform_round="up",
        usage_type="metered",
    )
    result = breakdown(price=bulk, quantity=7_001)
    assert result.rows[0].kind == "package" and result.rows[0].package_size == 1000
    assert (result.quantity, result.billed_quantity, result.rows[0].units) == (7_001, 8, 8)
    assert result.amount == result.rows[0].amount == 400


def test_hybrid_allowance_tier_at_zero_then_overage_by_hand():
    # Pro: 10,500 calls, the first 10,000 at 0¢ (included), 500 × 0.2¢ = 100¢.
    pro = tiered("graduated", (Tier(10_000, Decimal(0)), Tier(None, Decimal("0.2"))))
    result = breakdown(price=pro, quantity=10_500)
    assert _rows(result) == [
        (1, 10_000, 10_000, 0, 0, 0),
        (10_001, None, 500, Decimal("0.2"), 0, 100),
    ]
    assert result.rows[0].is_free and not result.rows[1].is_free


def test_rows_rounded_on_their_own_would_not_add_up_but_these_do():
    # Three tiers of one unit at 0.5¢: each alone rounds half up to 1¢ (3¢ in all) but
    # the engine rounds the line once: 1.5¢ -> 2¢. Running totals 0.5, 1.0, 1.5 round to
    # 1, 1, 2, so the rows are 1¢, 0¢, 1¢.
    price = tiered(
        "graduated",
        (Tier(1, Decimal("0.5")), Tier(2, Decimal("0.5")), Tier(None, Decimal("0.5"))),
    )
    result = breakdown(price=price, quantity=3)
    assert [row.amount for row in result.rows] == [1, 0, 1]
    assert result.amount == 2


def test_zero_usage_still_shows_the_first_tiers_flat_fee():
    # Stripe charges the first tier's flat fee at 0 units: Scale at 0 = 1,000¢.
    assert _rows(breakdown(price=SCALE, quantity=0)) == [(1, 1000, 0, 5, 1000, 1_000)]


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (SCALE, [(1, 1000, 5, 1000), (1001, 10_000, 3, 500), (10_001, None, 1, 0)]),
        (GROWTH, [(1, 100, 10, 500), (101, 1000, 8, 1000), (1001, None, 5, 2000)]),
    ],
)
def test_price_table_lists_every_tier(price, expected):
    assert [
        (t.first_unit, t.last_unit, t.unit_amount_decimal, t.flat_amount_decimal)
        for t in price_table(price)
    ] == expected
