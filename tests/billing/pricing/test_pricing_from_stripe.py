"""Stripe price JSON -> PriceSpec."""

import copy
import json
from decimal import Decimal
from typing import Any

import pytest
import stripe

from billing.pricing import PriceSpec, Tier, line_amount, price_spec_from_stripe

D = Decimal

# The canonical price example from Stripe's OpenAPI fixtures (fixtures3.json,
# resources["price"], MIT licensed), verbatim.
FIXTURE_PRICE: dict[str, Any] = {
    "active": True,
    "billing_scheme": "per_unit",
    "created": 1234567890,
    "currency": "usd",
    "custom_unit_amount": {"maximum": None, "minimum": None, "preset": None},
    "id": "price_1PgafmB7WZ01zgkW6dKueIc5",
    "livemode": False,
    "lookup_key": None,
    "metadata": {},
    "nickname": None,
    "object": "price",
    "product": "prod_QXg1hqf4jFNsqG",
    "recurring": {
        "interval": "month",
        "interval_count": 1,
        "meter": None,
        "usage_type": "licensed",
        "trial_period_days": None,
    },
    "tax_behavior": "unspecified",
    "tiers_mode": None,
    "transform_quantity": {"divide_by": 1592560163, "round": "down"},
    "type": "recurring",
    "unit_amount": 2000,
    "unit_amount_decimal": "2000",
}

PRO_CALLS_JSON: dict[str, Any] = {
    "id": "price_pro_calls",
    "object": "price",
    "billing_scheme": "tiered",
    "currency": "usd",
    "lookup_key": "pro_calls",
    "nickname": "API calls",
    "recurring": {
        "interval": "month",
        "interval_count": 1,
        "meter": "mtr_api_calls",
        "usage_type": "metered",
    },
    "tiers": [
        {
            "flat_amount": None,
            "flat_amount_decimal": None,
            "unit_amount": 0,
            "unit_amount_decimal": "0",
            "up_to": 10000,
        },
        {
            "flat_amount": None,
            "flat_amount_decimal": None,
            "unit_amount": None,
            "unit_amount_decimal": "0.2",
            "up_to": None,
        },
    ],
    "tiers_mode": "graduated",
    "transform_quantity": None,
    "type": "recurring",
    "unit_amount": None,
    "unit_amount_decimal": None,
}


def test_fixture_price() -> None:
    spec = price_spec_from_stripe(FIXTURE_PRICE)
    assert spec == PriceSpec(
        id="price_1PgafmB7WZ01zgkW6dKueIc5",
        currency="usd",
        billing_scheme="per_unit",
        unit_amount_decimal=D("2000"),
        tiers_mode=None,
        tiers=(),
        transform_divide_by=1592560163,
        transform_round="down",
        usage_type="licensed",
        interval="month",
        interval_count=1,
        included_units=0,
        nickname=None,
        lookup_key=None,
        meter=None,
    )
    # floor(5 / 1,592,560,163) = 0 packages -> 0
    assert line_amount(price=spec, quantity=5) == 0
    # 3,185,120,326 = 2 x 1,592,560,163 -> 2 packages x 2,000 = 4,000
    assert line_amount(price=spec, quantity=3_185_120_326) == 4000


def test_fixture_price_as_json_text_and_stripe_object() -> None:
    from_text = price_spec_from_stripe(json.loads(json.dumps(FIXTURE_PRICE)))
    from_object = price_spec_from_stripe(
        stripe.StripeObject.construct_from(copy.deepcopy(FIXTURE_PRICE), "sk_test_x")
    )
    assert from_text == from_object == price_spec_from_stripe(FIXTURE_PRICE)


def test_graduated_metered_price() -> None:
    spec = price_spec_from_stripe(PRO_CALLS_JSON)
    assert spec.billing_scheme == "tiered"
    assert spec.tiers_mode == "graduated"
    assert spec.tiers == (Tier(10_000, D("0"), None), Tier(None, D("0.2"), None))
    assert (spec.usage_type, spec.meter, spec.lookup_key) == (
        "metered",
        "mtr_api_calls",
        "pro_calls",
    )
    assert spec.included_units == 10_000
    assert spec.unit_amount_decimal is None
    # 2,345 x 0.2 = 469
    assert line_amount(price=spec, quantity=12_345) == 469


def test_up_to_inf_as_in_requests() -> None:
    data = copy.deepcopy(PRO_CALLS_JSON)
    data["tiers"][1]["up_to"] = "inf"
    assert price_spec_from_stripe(data).tiers[1].up_to is None


def test_integer_amounts_without_decimal_strings() -> None:
    data = {
        "id": "price_vol",
        "currency": "usd",
        "billing_scheme": "tiered",
        "tiers_mode": "volume",
        "recurring": {"interval": "month", "usage_type": "metered"},
        "tiers": [
            {"up_to": 100, "unit_amount": 10, "flat_amount": 100},
            {"up_to": None, "unit_amount": 5, "flat_amount": 1000},
        ],
    }
    spec = price_spec_from_stripe(data)
    assert spec.tiers == (Tier(100, D("10"), D("100")), Tier(None, D("5"), D("1000")))
    assert spec.interval_count == 1
    # 101 falls in tier 2: 101 x 5 + 1,000 = 1,505
    assert line_amount(price=spec, quantity=101) == 1505


def test_decimal_string_wins_over_integer_amount() -> None:
    data = copy.deepcopy(FIXTURE_PRICE)
    data.update(unit_amount=0, unit_amount_decimal="0.35", transform_quantity=None)
    spec = price_spec_from_stripe(data)
    assert spec.unit_amount_decimal == D("0.35")
    # 0.35 x 1,001 = 350.35 -> 350
    assert line_amount(price=spec, quantity=1001) == 350


def test_flat_amount_decimal_string() -> None:
    data = copy.deepcopy(PRO_CALLS_JSON)
    data["tiers"][0].update(flat_amount=None, flat_amount_decimal="9900.5")
    assert price_spec_from_stripe(data).tiers[0].flat_amount_decimal == D("9900.5")


def test_one_time_price_is_rated_as_licensed() -> None:
    data = copy.deepcopy(FIXTURE_PRICE)
    data.update(recurring=None, type="one_time", transform_quantity=None)
    spec = price_spec_from_stripe(data)
    assert (spec.usage_type, spec.interval) == ("licensed", None)


def test_upper_case_currency_is_normalised() -> None:
    data = copy.deepcopy(FIXTURE_PRICE)
    data["currency"] = "JPY"
    assert price_spec_from_stripe(data).currency == "jpy"


def test_decimals_from_parse_float_are_accepted() -> None:
    text = '{"id": "p", "currency": "usd", "unit_amount_decimal": 0.35}'
    spec = price_spec_from_stripe(json.loads(text, parse_float=Decimal))
    assert spec.unit_amount_decimal == D("0.35")


def test_float_amounts_are_refused() -> None:
    data = copy.deepcopy(FIXTURE_PRICE)
    data["unit_amount_decimal"] = 0.35
    with pytest.raises(TypeError):
        price_spec_from_stripe(data)


def test_tiered_price_without_expanded_tiers() -> None:
    data = {k: v for k, v in PRO_CALLS_JSON.items() if k != "tiers"}
    with pytest.raises(ValueError, match="expand"):
        price_spec_from_stripe(data)


def test_custom_unit_amount_price_cannot_be_rated() -> None:
    data = copy.deepcopy(FIXTURE_PRICE)
    data.update(unit_amount=None, unit_amount_decimal=None, transform_quantity=None)
    with pytest.raises(ValueError):
        price_spec_from_stripe(data)


def test_tiers_with_transform_are_refused() -> None:
    data = copy.deepcopy(PRO_CALLS_JSON)
    data["transform_quantity"] = {"divide_by": 1000, "round": "up"}
    with pytest.raises(ValueError, match="transform"):
        price_spec_from_stripe(data)


def test_missing_usage_type_with_a_meter_is_metered() -> None:
    data = copy.deepcopy(PRO_CALLS_JSON)
    del data["recurring"]["usage_type"]
    assert price_spec_from_stripe(data).usage_type == "metered"
    data["recurring"]["meter"] = None
    assert price_spec_from_stripe(data).usage_type == "licensed"
