"""Budgets and hard caps: bill_amount and units_until, worked by hand and brute force.

Amounts are in cents (usd minor units); unit amounts are Decimal cents, so $0.002 per
call is Decimal("0.2"). A line rounds half up once (line_amount), so a line exceeds a
room of R cents exactly when its exact amount reaches R + 0.5.
"""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.pricing import PriceSpec, Tier, bill_amount, line_amount, units_until

D = Decimal

BASE = PriceSpec(id="price_base", currency="usd", unit_amount_decimal=D("9900"))  # $99
CALLS = PriceSpec(  # first 10,000 free, 10,001-100,000 at $0.004, above at $0.002
    id="price_calls",
    currency="usd",
    billing_scheme="tiered",
    tiers_mode="graduated",
    tiers=(Tier(10_000, D("0")), Tier(100_000, D("0.4")), Tier(None, D("0.2"))),
    usage_type="metered",
)
CALLS_WITH_FLAT = PriceSpec(  # as CALLS plus $10 entering tier 2 and $5 entering tier 3
    id="price_calls_flat",
    currency="usd",
    billing_scheme="tiered",
    tiers_mode="graduated",
    tiers=(
        Tier(10_000, D("0")),
        Tier(100_000, D("0.4"), D("1000")),
        Tier(None, D("0.2"), D("500")),
    ),
    usage_type="metered",
)
PER_CALL = PriceSpec(
    id="price_per_call", currency="usd", unit_amount_decimal=D("0.2"), usage_type="metered"
)
VOLUME = PriceSpec(  # whole quantity at its tier: <=1,000 at 1c, <=10,000 at 0.5c + $1
    id="price_volume",
    currency="usd",
    billing_scheme="tiered",
    tiers_mode="volume",
    tiers=(Tier(1_000, D("1")), Tier(10_000, D("0.5"), D("100")), Tier(None, D("0.25"))),
    usage_type="metered",
)


def package(round_: str) -> PriceSpec:
    # 50c per started (up) or completed (down) package of 1,000 calls
    return PriceSpec(
        id=f"price_package_{round_}",
        currency="usd",
        unit_amount_decimal=D("50"),
        transform_divide_by=1000,
        transform_round=round_,  # type: ignore[arg-type]
        usage_type="metered",
    )


# -- per unit -------------------------------------------------------------------------


def test_per_unit_two_tenths_of_a_cent_under_500_dollars() -> None:
    # limit 50,000c. Exceeds when 0.2 q >= 50,000.5, i.e. q >= 250,002.5 -> 250,003:
    # 250,002 x 0.2 = 50,000.4 -> 50,000 (fits), 250,003 x 0.2 = 50,000.6 -> 50,001
    assert units_until(items=[(PER_CALL, 0)], index=0, limit=50_000) == 250_002
    assert bill_amount(items=[(PER_CALL, 250_002)]) == 50_000
    assert bill_amount(items=[(PER_CALL, 250_003)]) == 50_001
    # 100,000 calls used (20,000c): 250,002 - 100,000 = 150,002 more
    assert units_until(items=[(PER_CALL, 100_000)], index=0, limit=50_000) == 150_002


def test_per_unit_sub_cent_rounding() -> None:
    # 0.35c per unit, limit 350: 1,001 x 0.35 = 350.35 -> 350; 1,002 x 0.35 = 350.7 -> 351
    price = PriceSpec(id="p", currency="usd", unit_amount_decimal=D("0.35"))
    assert units_until(items=[(price, 0)], index=0, limit=350) == 1_001
    assert units_until(items=[(price, 1_001)], index=0, limit=350) == 0
    # half rounds up: 0.5 x 3 = 1.5 -> 2 > 1, so only 2 units fit a 1c limit (1.0 -> 1)
    half = PriceSpec(id="h", currency="usd", unit_amount_decimal=D("0.5"))
    assert units_until(items=[(half, 0)], index=0, limit=1) == 2


def test_zero_unit_price_never_exceeds() -> None:
    free = PriceSpec(id="f", currency="usd", unit_amount_decimal=D("0"))
    assert units_until(items=[(BASE, 1), (free, 10**9)], index=1, limit=9_900) is None
    # ... but a bill already over the limit gives 0: 9,900 > 9,899
    assert units_until(items=[(BASE, 1), (free, 0)], index=1, limit=9_899) == 0


# -- graduated ------------------------------------------------------------------------


def test_graduated_plan_with_base_fee_crossing_500_dollars() -> None:
    # bill = 9,900 base + calls line; limit 50,000 leaves 40,100c for calls.
    # At 100,000 calls: 90,000 x 0.4 = 36,000 (bill 45,900). Above: 0.2 per call, so
    # 36,000 + 0.2 x >= 40,100.5 -> x >= 20,502.5 -> 20,503 -> q = 120,503.
    items = [(BASE, 1), (CALLS, 0)]
    assert units_until(items=items, index=1, limit=50_000) == 120_502
    # 36,000 + 20,502 x 0.2 = 40,100.4 -> 40,100: bill 50,000 = $500.00, still fits
    assert bill_amount(items=[(BASE, 1), (CALLS, 120_502)]) == 50_000
    # 36,000 + 20,503 x 0.2 = 40,100.6 -> 40,101: bill 50,001, over
    assert bill_amount(items=[(BASE, 1), (CALLS, 120_503)]) == 50_001


def test_graduated_plan_at_499_99() -> None:
    # 120,495 calls: 36,000 + 20,495 x 0.2 = 40,099.0; bill 9,900 + 40,099 = 49,999
    items = [(BASE, 1), (CALLS, 120_495)]
    assert bill_amount(items=items) == 49_999
    # 120,502 is the last quantity within $500 (above): 120,502 - 120,495 = 7
    assert units_until(items=items, index=1, limit=50_000) == 7
    # a $499.99 limit: the calls line may round to 40,099, i.e. 0.2 x <= 4,099.4 ->
    # x <= 20,497 -> 2 more calls
    assert units_until(items=items, index=1, limit=49_999) == 2
    # growing the base instead: one more $99 seat -> 59,899 > 50,000 -> 0
    assert units_until(items=items, index=0, limit=50_000) == 0


def test_graduated_flat_fee_is_charged_entering_the_tier() -> None:
    # At 10,000 calls the bill is 9,900. Call 10,001 enters tier 2: 1,000 + 0.4 = 1,000.4
    # -> 1,000, bill 10,900. With a $105 limit nothing more fits.
    items = [(BASE, 1), (CALLS_WITH_FLAT, 10_000)]
    assert bill_amount(items=items) == 9_900
    assert bill_amount(items=[(BASE, 1), (CALLS_WITH_FLAT, 10_001)]) == 10_900
    assert units_until(items=items, index=1, limit=10_500) == 0
    # limit 47,000 (37,100 for calls): at 100,000 the line is 1,000 + 36,000 = 37,000;
    # call 100,001 adds the $5 flat: 37,500.2 -> 37,500 > 37,100. 100,000 - 10,000 more.
    assert units_until(items=items, index=1, limit=47_000) == 90_000
    # limit 50,000 (40,100): 37,500 + 0.2 x >= 40,100.5 -> x >= 13,002.5 -> 13,003,
    # q = 113,003: 113,002 - 10,000 = 103,002 more
    assert units_until(items=items, index=1, limit=50_000) == 103_002
    assert bill_amount(items=[(BASE, 1), (CALLS_WITH_FLAT, 113_002)]) == 50_000
    assert bill_amount(items=[(BASE, 1), (CALLS_WITH_FLAT, 113_003)]) == 50_001


def test_graduated_free_last_tier_never_exceeds() -> None:
    # 100 calls at 10c, then free: the line never passes 1,000
    capped = PriceSpec(
        id="capped",
        currency="usd",
        billing_scheme="tiered",
        tiers_mode="graduated",
        tiers=(Tier(100, D("10")), Tier(None, D("0"))),
    )
    assert units_until(items=[(capped, 0)], index=0, limit=1_000) is None
    # limit 999: 99 x 10 = 990 fits, 100 x 10 = 1,000 does not
    assert units_until(items=[(capped, 0)], index=0, limit=999) == 99


# -- volume ---------------------------------------------------------------------------


def test_volume_bill_drops_entering_a_cheaper_tier() -> None:
    # 1,000 x 1 = 1,000; 1,001 x 0.5 + 100 = 600.5 -> 601: the bill drops
    assert bill_amount(items=[(VOLUME, 1_000)]) == 1_000
    assert bill_amount(items=[(VOLUME, 1_001)]) == 601
    # limit 1,000: 1,000 fits, then tier 2 until 100 + 0.5 q >= 1,000.5 -> q >= 1,801
    assert units_until(items=[(VOLUME, 0)], index=0, limit=1_000) == 1_800
    # limit 999: call 1,000 costs 1,000 > 999: stop there (first crossing), although
    # from call 1,001 on the bill (601) would fit again
    assert units_until(items=[(VOLUME, 0)], index=0, limit=999) == 999
    # starting in tier 2 at 1,500 (850): the same 1,801 -> 300 more
    assert units_until(items=[(VOLUME, 1_500)], index=0, limit=1_000) == 300


def test_volume_flat_fee_alone_can_exceed() -> None:
    # limit 50: 50 x 1 = 50 fits; 51 x 1 = 51 does not
    assert units_until(items=[(VOLUME, 0)], index=0, limit=50) == 50
    # limit 2,600: tier 2 ends at 10,000: 100 + 5,000 = 5,100 > 2,600 at 5,001
    # (100 + 0.5 x 5,001 = 2,600.5 -> 2,601)
    assert units_until(items=[(VOLUME, 0)], index=0, limit=2_600) == 5_000


# -- packages -------------------------------------------------------------------------


def test_package_rounded_up() -> None:
    # 50c per started 1,000: 11 packages (550) > 500 >= 10 packages (500).
    # ceil(q / 1,000) >= 11 <=> q >= 10,001 -> 10,000 fit
    assert units_until(items=[(package("up"), 0)], index=0, limit=500) == 10_000
    assert bill_amount(items=[(package("up"), 10_000)]) == 500
    assert bill_amount(items=[(package("up"), 10_001)]) == 550
    # already at 9,500 (10 packages): 500 more
    assert units_until(items=[(package("up"), 9_500)], index=0, limit=500) == 500


def test_package_rounded_down() -> None:
    # 50c per completed 1,000: floor(q / 1,000) >= 11 <=> q >= 11,000 -> 10,999 fit
    assert units_until(items=[(package("down"), 0)], index=0, limit=500) == 10_999
    assert bill_amount(items=[(package("down"), 10_999)]) == 500
    assert bill_amount(items=[(package("down"), 11_000)]) == 550


# -- inputs and scale -----------------------------------------------------------------


def test_bill_amount_rounds_each_line_then_adds() -> None:
    # 9,900 + round(1,001 x 0.35 = 350.35) = 9,900 + 350 = 10,250; no items -> 0
    sub_cent = PriceSpec(id="s", currency="usd", unit_amount_decimal=D("0.35"))
    assert bill_amount(items=[(BASE, 1), (sub_cent, 1_001)]) == 10_250
    assert bill_amount(items=[]) == 0


def test_mixed_currencies_and_bad_arguments_are_refused() -> None:
    eur = PriceSpec(id="e", currency="eur", unit_amount_decimal=D("1"))
    with pytest.raises(ValueError, match="one currency"):
        bill_amount(items=[(BASE, 1), (eur, 1)])
    with pytest.raises(ValueError, match="one currency"):
        units_until(items=[(BASE, 1), (eur, 1)], index=1, limit=10**6)
    with pytest.raises(IndexError):
        units_until(items=[(BASE, 1)], index=1, limit=10**6)
    with pytest.raises(ValueError, match="quantity"):
        bill_amount(items=[(BASE, -1)])
    with pytest.raises(TypeError, match="limit"):
        units_until(items=[(BASE, 1)], index=0, limit=D("100"))  # type: ignore[arg-type]


def test_huge_answers_need_no_scan() -> None:
    # 1e-12 cent per unit, limit 10^12 cents: q x 10^-12 >= 10^12 + 0.5
    # <=> q >= 10^24 + 5 x 10^11, so 10^24 + 5 x 10^11 - 1 units fit
    tiny = PriceSpec(id="t", currency="usd", unit_amount_decimal=D("0.000000000001"))
    fit = units_until(items=[(tiny, 0)], index=0, limit=10**12)
    assert fit == 10**24 + 5 * 10**11 - 1
    assert line_amount(price=tiny, quantity=fit) == 10**12
    assert line_amount(price=tiny, quantity=fit + 1) == 10**12 + 1


# -- properties -----------------------------------------------------------------------
# The reference is line_amount itself: a linear scan over units for small prices, and
# the bounds of the answer for realistic ones (12-decimal amounts, millions of units).

# small amounts: n / d cents with d in {1, 2, 4, 8, 10}, so halves and sub-cent
# remainders occur, and the smallest non-zero amount is 0.1
SMALL_AMOUNTS = st.builds(
    lambda n, d: D(n) / D(d), st.integers(0, 30), st.sampled_from([1, 2, 4, 8, 10])
)
# realistic amounts: up to 12 decimals, like Stripe's unit_amount_decimal
AMOUNTS = st.builds(
    lambda digits, places: D(digits).scaleb(-places),
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=12),
)


@st.composite
def prices(draw: st.DrawFn, amounts: st.SearchStrategy[Decimal], max_bound: int) -> PriceSpec:
    kind = draw(st.sampled_from(["per_unit", "package", "graduated", "volume"]))
    if kind == "per_unit":
        return PriceSpec(id="p", currency="usd", unit_amount_decimal=draw(amounts))
    if kind == "package":
        return PriceSpec(
            id="p",
            currency="usd",
            unit_amount_decimal=draw(amounts),
            transform_divide_by=draw(st.integers(1, 4)),
            transform_round=draw(st.sampled_from(["up", "down"])),
        )
    bounds = sorted(draw(st.sets(st.integers(1, max_bound), max_size=4)))
    tiers = tuple(
        Tier(up_to, draw(st.none() | amounts), draw(st.none() | amounts))
        for up_to in [*bounds, None]
    )
    return PriceSpec(id="p", currency="usd", billing_scheme="tiered", tiers_mode=kind, tiers=tiers)


def _tail(price: PriceSpec) -> tuple[Decimal, int, int]:
    """(unit amount past the last bound, units per package, last bound)."""
    if price.billing_scheme == "per_unit":
        assert price.unit_amount_decimal is not None
        return price.unit_amount_decimal, price.transform_divide_by or 1, 0
    return price.tiers[-1].unit_amount, 1, price.tiers[-2].up_to if len(price.tiers) > 1 else 0


@settings(max_examples=150, deadline=None)
@given(
    items=st.lists(
        st.tuples(prices(SMALL_AMOUNTS, 40), st.integers(0, 40)), min_size=1, max_size=3
    ),
    data=st.data(),
    limit=st.integers(0, 120),
)
def test_units_until_equals_a_linear_scan(
    items: list[tuple[PriceSpec, int]], data: st.DataObject, limit: int
) -> None:
    index = data.draw(st.integers(0, len(items) - 1))
    price, start = items[index]
    others = sum(line_amount(price=p, quantity=q) for i, (p, q) in enumerate(items) if i != index)
    assert bill_amount(items=items) == others + line_amount(price=price, quantity=start)
    unit, per_package, last_bound = _tail(price)
    # past the last bound the line grows by `unit` a package (so it passes limit + 1
    # within (limit + 1) / 0.1 packages), or stays put when `unit` is 0
    room_units = 0 if unit == 0 else (limit + 2) * 10 * per_package
    expected: int | None = None
    for extra in range(last_bound + room_units + 2):
        if others + line_amount(price=price, quantity=start + extra) > limit:
            expected = max(extra - 1, 0)
            break
    assert units_until(items=items, index=index, limit=limit) == expected


@settings(max_examples=150, deadline=None)
@given(
    items=st.lists(
        st.tuples(prices(AMOUNTS, 2_000_000), st.integers(0, 3_000_000)), min_size=1, max_size=4
    ),
    data=st.data(),
    limit=st.integers(0, 10**12),
)
def test_units_until_bounds_on_realistic_prices(
    items: list[tuple[PriceSpec, int]], data: st.DataObject, limit: int
) -> None:
    assert bill_amount(items=items) == sum(line_amount(price=p, quantity=q) for p, q in items)
    index = data.draw(st.integers(0, len(items) - 1))
    price, start = items[index]
    others = bill_amount(items=items[:index] + items[index + 1 :])
    fit = units_until(items=items, index=index, limit=limit)
    if others + line_amount(price=price, quantity=start) > limit:
        assert fit == 0
        return
    room = limit - others
    if fit is None:
        # never exceeds: the tail is free, and the line far out still fits
        assert _tail(price)[0] == 0
        assert line_amount(price=price, quantity=start + 10**15) <= room
        return
    assert line_amount(price=price, quantity=start + fit + 1) > room
    # every quantity up to start + fit fits; within a tier the line never decreases,
    # so checking each tier's last unit inside the range (and the range's end) suffices
    ends = [start + fit] + [
        tier.up_to for tier in price.tiers if tier.up_to is not None and start <= tier.up_to
    ]
    assert all(line_amount(price=price, quantity=q) <= room for q in ends if q <= start + fit)
