"""Rating one quantity under one price: named cases worked out by hand.

Every expected amount below is computed in the comment next to it, in minor units
(cents for usd, yen for jpy), never copied from the code's output.
"""

from decimal import Decimal

import pytest

from billing.money import format_money
from billing.pricing import (
    PriceSpec,
    Tier,
    billable_quantity,
    line_amount,
    rate,
    rate_quantity,
)

D = Decimal


def per_unit(amount: str, *, currency: str = "usd", **extra: object) -> PriceSpec:
    return PriceSpec(
        id="price_unit",
        currency=currency,
        billing_scheme="per_unit",
        unit_amount_decimal=D(amount),
        **extra,  # type: ignore[arg-type]
    )


def tiered(mode: str, *tiers: Tier, usage_type: str = "metered") -> PriceSpec:
    return PriceSpec(
        id=f"price_{mode}",
        currency="usd",
        billing_scheme="tiered",
        tiers_mode=mode,  # type: ignore[arg-type]
        tiers=tiers,
        usage_type=usage_type,  # type: ignore[arg-type]
    )


# -- per unit -----------------------------------------------------------------


def test_per_unit_whole_cents() -> None:
    # $0.10 = 10 cents per call; 42 calls -> 42 x 10 = 420
    assert line_amount(price=per_unit("10"), quantity=42) == 420


def test_per_unit_decimal_unit_amount() -> None:
    # 0.35 cents x 1,001 = 350.35 cents -> rounds half up to 350
    price = per_unit("0.35")
    assert rate_quantity(price=price, quantity=1001) == D("350.35")
    assert line_amount(price=price, quantity=1001) == 350


@pytest.mark.parametrize(
    ("quantity", "exact", "expected"),
    [
        # 0.5 x 3 = 1.5 -> exactly half -> up -> 2
        (3, "1.5", 2),
        # 0.5 x 5 = 2.5 -> up -> 3 (banker's rounding would say 2)
        (5, "2.5", 3),
        # 0.5 x 1 = 0.5 -> up -> 1
        (1, "0.5", 1),
        # 0.5 x 4 = 2.0 -> 2
        (4, "2.0", 2),
    ],
)
def test_per_unit_half_up_boundary(quantity: int, exact: str, expected: int) -> None:
    price = per_unit("0.5")
    assert rate_quantity(price=price, quantity=quantity) == D(exact)
    assert line_amount(price=price, quantity=quantity) == expected


def test_per_unit_twelve_decimals() -> None:
    # 0.123456789012 x 1,000,000 = 123,456.789012 -> 123,457
    assert line_amount(price=per_unit("0.123456789012"), quantity=1_000_000) == 123457
    # 0.000000000001 x 10^12 = 1 exactly
    assert line_amount(price=per_unit("0.000000000001"), quantity=10**12) == 1


def test_per_unit_is_exact_beyond_default_decimal_precision() -> None:
    # 123,456,789.123456789012 x 10^20 = 12,345,678,912,345,678,901,200,000,000
    # (29 significant digits: the default 28-digit context would round it)
    price = per_unit("123456789.123456789012")
    assert line_amount(price=price, quantity=10**20) == 12345678912345678901200000000


def test_per_unit_zero_quantity() -> None:
    # 0 x anything = 0
    assert line_amount(price=per_unit("9900"), quantity=0) == 0


# -- package (transform_quantity) -----------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "packages", "expected"),
    [
        # ceil(0 / 1,000) = 0 packages -> 0
        (0, 0, 0),
        # ceil(1 / 1,000) = 1 package x 500 = 500
        (1, 1, 500),
        # ceil(1,000 / 1,000) = 1 -> 500
        (1000, 1, 500),
        # ceil(1,001 / 1,000) = 2 -> 1,000
        (1001, 2, 1000),
        # ceil(12,345 / 1,000) = 13 -> 6,500
        (12345, 13, 6500),
    ],
)
def test_package_per_thousand_rounded_up(quantity: int, packages: int, expected: int) -> None:
    # $5.00 (500 cents) per started 1,000 calls
    price = per_unit("500", transform_divide_by=1000, transform_round="up")
    assert billable_quantity(price=price, quantity=quantity) == packages
    assert line_amount(price=price, quantity=quantity) == expected


@pytest.mark.parametrize(
    ("quantity", "packages", "expected"),
    [
        # floor(999 / 1,000) = 0 -> 0
        (999, 0, 0),
        # floor(1,000 / 1,000) = 1 -> 500
        (1000, 1, 500),
        # floor(2,999 / 1,000) = 2 -> 1,000
        (2999, 2, 1000),
        # floor(12,345 / 1,000) = 12 -> 6,000
        (12345, 12, 6000),
    ],
)
def test_package_per_thousand_rounded_down(quantity: int, packages: int, expected: int) -> None:
    # $5.00 (500 cents) per full 1,000 calls
    price = per_unit("500", transform_divide_by=1000, transform_round="down")
    assert billable_quantity(price=price, quantity=quantity) == packages
    assert line_amount(price=price, quantity=quantity) == expected


def test_package_with_decimal_package_price() -> None:
    # 0.25 cents per started 3 units; 10 units -> ceil(10/3) = 4 -> 4 x 0.25 = 1.0 -> 1
    price = per_unit("0.25", transform_divide_by=3, transform_round="up")
    assert rate_quantity(price=price, quantity=10) == D("1.00")
    assert line_amount(price=price, quantity=10) == 1


def test_package_rating_keeps_raw_and_billed_quantity() -> None:
    price = per_unit("500", transform_divide_by=1000, transform_round="up")
    result = rate(price=price, quantity=1001)
    # raw 1,001 calls, billed as ceil(1,001/1,000) = 2 packages
    assert (result.quantity, result.billed_quantity) == (1001, 2)


# -- volume ---------------------------------------------------------------------

VOLUME = tiered(
    "volume",
    # 1..100 units: 10 cents each + 100 flat
    Tier(100, D("10"), D("100")),
    # 101..1,000: 8 cents each + 200 flat
    Tier(1000, D("8"), D("200")),
    # 1,001+: 5 cents each + 1,000 flat
    Tier(None, D("5"), D("1000")),
)


@pytest.mark.parametrize(
    ("quantity", "tier_index", "expected"),
    [
        # 0 falls in the first tier: 0 x 10 + 100 = 100
        (0, 0, 100),
        # 1 x 10 + 100 = 110
        (1, 0, 110),
        # up_to is inclusive: 100 x 10 + 100 = 1,100
        (100, 0, 1100),
        # 101 is in tier 2, ALL units at 8: 101 x 8 + 200 = 808 + 200 = 1,008
        (101, 1, 1008),
        # 1,000 x 8 + 200 = 8,200
        (1000, 1, 8200),
        # 1,001 x 5 + 1,000 = 5,005 + 1,000 = 6,005
        (1001, 2, 6005),
        # 20,000 x 5 + 1,000 = 101,000
        (20000, 2, 101000),
    ],
)
def test_volume_with_flat_fees(quantity: int, tier_index: int, expected: int) -> None:
    result = rate(price=VOLUME, quantity=quantity)
    assert len(result.tier_breakdown) == 1
    assert result.tier_breakdown[0].tier_index == tier_index
    assert result.tier_breakdown[0].quantity == quantity
    assert line_amount(price=VOLUME, quantity=quantity) == expected


def test_volume_total_goes_down_as_usage_goes_up() -> None:
    # 100 units -> 1,100 but 101 units -> 1,008; 1,000 -> 8,200 but 1,001 -> 6,005
    assert line_amount(price=VOLUME, quantity=101) < line_amount(price=VOLUME, quantity=100)
    assert line_amount(price=VOLUME, quantity=1001) < line_amount(price=VOLUME, quantity=1000)


def test_volume_decimal_rate_rounds_once() -> None:
    # one tier up to 10 at 0.15, then 0.1 for all units;
    # 3 units: 3 x 0.15 = 0.45 -> 0; 15 units: 15 x 0.1 = 1.5 -> 2
    price = tiered("volume", Tier(10, D("0.15")), Tier(None, D("0.1")))
    assert line_amount(price=price, quantity=3) == 0
    assert line_amount(price=price, quantity=15) == 2


# -- graduated --------------------------------------------------------------------

GRADUATED = tiered(
    "graduated",
    # units 1..5 at 100 each, flat 500 once reached
    Tier(5, D("100"), D("500")),
    # units 6..10 at 80 each, flat 300 once reached
    Tier(10, D("80"), D("300")),
    # units 11+ at 50 each, flat 1,000 once reached
    Tier(None, D("50"), D("1000")),
)


@pytest.mark.parametrize(
    ("quantity", "slices", "expected"),
    [
        # nothing used, but the first tier is always reached: flat 500
        (0, (0,), 500),
        # 1 x 100 + 500 = 600
        (1, (1,), 600),
        # 5 x 100 + 500 = 1,000 (tier 2 not reached: up_to is inclusive)
        (5, (5,), 1000),
        # 1,000 + (1 x 80 + 300) = 1,380
        (6, (5, 1), 1380),
        # 1,000 + (5 x 80 + 300) = 1,000 + 700 = 1,700
        (10, (5, 5), 1700),
        # 1,700 + (2 x 50 + 1,000) = 2,800
        (12, (5, 5, 2), 2800),
    ],
)
def test_graduated_with_flat_fees(quantity: int, slices: tuple[int, ...], expected: int) -> None:
    result = rate(price=GRADUATED, quantity=quantity)
    assert tuple(charge.quantity for charge in result.tier_breakdown) == slices
    assert line_amount(price=GRADUATED, quantity=quantity) == expected


def test_graduated_quantity_zero_without_flat_fee_is_zero() -> None:
    # first tier 0 x 10, no flat -> 0
    price = tiered("graduated", Tier(10, D("10")), Tier(None, D("5"), D("700")))
    assert line_amount(price=price, quantity=0) == 0


def test_graduated_sums_tiers_before_rounding_once() -> None:
    # units 1..3 at 0.4, then 0.3: 4 units = 3 x 0.4 + 1 x 0.3 = 1.2 + 0.3 = 1.5 -> 2
    # (rounding each tier first would give 1 + 0 = 1)
    price = tiered("graduated", Tier(3, D("0.4")), Tier(None, D("0.3")))
    assert rate_quantity(price=price, quantity=4) == D("1.5")
    assert line_amount(price=price, quantity=4) == 2


def test_graduated_flat_only_tier() -> None:
    # tier 1: flat 1,000 for up to 100 units, no unit amount; then 2 each
    # 150 units: 1,000 + 50 x 2 = 1,100
    price = tiered("graduated", Tier(100, None, D("1000")), Tier(None, D("2")))
    assert line_amount(price=price, quantity=150) == 1100


# -- hybrid Pro plan ------------------------------------------------------------

PRO_BASE = PriceSpec(
    id="price_pro_base",
    currency="usd",
    unit_amount_decimal=D("9900"),  # $99.00 per month, licensed
    usage_type="licensed",
    lookup_key="pro_base",
)
PRO_CALLS = PriceSpec(
    id="price_pro_calls",
    currency="usd",
    billing_scheme="tiered",
    tiers_mode="graduated",
    # first 10,000 calls included, then $0.002 = 0.2 cents per call
    tiers=(Tier(10_000, D("0"), D("0")), Tier(None, D("0.2"))),
    usage_type="metered",
    lookup_key="pro_calls",
    included_units=10_000,
)


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        # within the allowance -> 0
        (0, 0),
        (10_000, 0),
        # 1 over: 0.2 -> 0
        (10_001, 0),
        # 3 over: 0.6 -> 1
        (10_003, 1),
        # 2,345 over: 2,345 x 0.2 = 469.0 -> 469
        (12_345, 469),
        # 90,000 over: 18,000
        (100_000, 18_000),
    ],
)
def test_pro_plan_overage(calls: int, expected: int) -> None:
    assert line_amount(price=PRO_CALLS, quantity=calls) == expected


def test_pro_plan_period_total() -> None:
    # $99 base + 12,345 calls: 9,900 + 469 = 10,369 cents = $103.69
    total = line_amount(price=PRO_BASE, quantity=1) + line_amount(price=PRO_CALLS, quantity=12_345)
    assert total == 10_369
    assert format_money(total, "usd") == "$103.69"


# -- seats -------------------------------------------------------------------------


def test_seats_licensed_price() -> None:
    # $8.00 per seat, 12 seats: 12 x 800 = 9,600
    seats = per_unit("800", usage_type="licensed", lookup_key="seats")
    assert line_amount(price=seats, quantity=12) == 9600


def test_seats_on_a_last_meter() -> None:
    # a metered seats price on a `last` meter is rated on the last reported value:
    # reports 10, 14, 12 -> quantity 12 -> 12 x 800 = 9,600
    seats = per_unit("800", usage_type="metered", meter="mtr_seats")
    reported = [10, 14, 12]
    assert line_amount(price=seats, quantity=reported[-1]) == 9600


# -- zero-decimal currency --------------------------------------------------------------


def test_jpy_amounts_are_whole_yen() -> None:
    # 3 yen per call, 1,234 calls = 3,702 yen, shown without decimals
    price = per_unit("3", currency="jpy")
    amount = line_amount(price=price, quantity=1234)
    assert amount == 3702
    assert format_money(amount, "jpy") == "¥3,702"


def test_jpy_decimal_unit_amount_rounds_to_whole_yen() -> None:
    # 0.5 yen x 3 = 1.5 yen -> 2 yen
    assert line_amount(price=per_unit("0.5", currency="jpy"), quantity=3) == 2


# -- inputs the engine refuses ----------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 1.0, True, "3", None])
def test_quantity_must_be_a_non_negative_int(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        line_amount(price=per_unit("10"), quantity=bad)  # type: ignore[arg-type]
