"""Meterdesk's pricing engine against the emulator's invoices, to the cent.

The two implement Stripe's pricing rules independently (design.md). Hypothesis
generates prices (per-unit with up to 12 decimals, packages rounded up or down,
graduated and volume tier tables with unit and flat amounts) and quantities; the
emulator rates each through its invoices, the engine rates the same Stripe price JSON,
and the line amounts must be equal.
"""

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.pricing import line_amount, price_spec_from_stripe
from stripe_emulator.testing import reset

pytestmark = pytest.mark.slow

SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True
)


def amounts(max_value: int = 5_000):
    """Minor-unit amounts as Stripe's decimal strings: whole, or with up to 12 places."""
    return (
        st.integers(0, 12)
        .flatmap(
            lambda places: st.decimals(
                min_value=0,
                max_value=max_value,
                places=places,
                allow_nan=False,
                allow_infinity=False,
            )
        )
        .map(lambda d: format(d, "f"))
    )


@st.composite
def tier_tables(draw):
    bounds = sorted(draw(st.sets(st.integers(1, 50_000), min_size=0, max_size=4)))
    tiers = []
    for up_to in [*bounds, "inf"]:
        tier = {"up_to": up_to}
        choice = draw(st.sampled_from(["unit", "flat", "both"]))
        if choice in ("unit", "both"):
            tier["unit_amount_decimal"] = draw(amounts(500))
        if choice in ("flat", "both"):
            if draw(st.booleans()):
                tier["flat_amount"] = draw(st.integers(0, 50_000))
            else:
                tier["flat_amount_decimal"] = draw(amounts(50_000))
        tiers.append(tier)
    return tiers


@st.composite
def prices(draw):
    kind = draw(st.sampled_from(["per_unit", "package", "graduated", "volume"]))
    params = {"currency": "usd", "recurring": {"interval": "month", "usage_type": "licensed"}}
    if kind == "per_unit":
        params["unit_amount_decimal"] = draw(amounts())
    elif kind == "package":
        params["unit_amount"] = draw(st.integers(0, 100_000))
        params["transform_quantity"] = {
            "divide_by": draw(st.integers(1, 5_000)),
            "round": draw(st.sampled_from(["up", "down"])),
        }
    else:
        params.update(billing_scheme="tiered", tiers_mode=kind, tiers=draw(tier_tables()))
    return params


@pytest.fixture
def client(emulator_url):
    reset(emulator_url)
    return stripe.StripeClient(
        "sk_test_pricing_comparison_0000000000000",
        base_addresses={"api": emulator_url, "meter_events": emulator_url},
    )


def _engine_amount(client, price, quantity: int) -> int:
    # The engine reads the price as Stripe returns it (tiers need expand[]=tiers).
    remote = client.v1.prices.retrieve(price.id, {"expand": ["tiers"]})
    return line_amount(price=price_spec_from_stripe(remote), quantity=quantity)


@settings(SETTINGS, max_examples=500)
@given(price_params=prices(), quantity=st.integers(0, 200_000))
def test_engine_equals_emulator_invoice_preview(client, price_params, quantity):
    product = client.v1.products.create({"name": "Comparison"})
    customer = client.v1.customers.create({"name": "Comparison"})
    price = client.v1.prices.create({**price_params, "product": product.id})
    preview = client.v1.invoices.create_preview(
        {
            "customer": customer.id,
            "subscription_details": {"items": [{"price": price.id, "quantity": quantity}]},
        }
    )
    [line] = preview.lines.data
    assert line.quantity == quantity
    assert _engine_amount(client, price, quantity) == line.amount == preview.total


@settings(SETTINGS, max_examples=100)
@given(price_params=prices(), quantity=st.integers(0, 200_000))
def test_engine_equals_emulator_first_invoice(client, price_params, quantity):
    """Real invoices: a subscription bills its licensed quantity in advance."""
    product = client.v1.products.create({"name": "Comparison"})
    customer = client.v1.customers.create(
        {
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    price = client.v1.prices.create({**price_params, "product": product.id})
    subscription = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id, "quantity": quantity}]}
    )
    invoice = client.v1.invoices.retrieve(subscription.latest_invoice)
    [line] = invoice.lines.data
    assert _engine_amount(client, price, quantity) == line.amount == invoice.total


# Named cases, worked out by hand; both implementations must produce them.
NAMED = [
    # 0.35¢ × 1,001 = 350.35¢ → 350¢
    ({"unit_amount_decimal": "0.35"}, 1_001, 350),
    # half-up: 0.5¢ × 3 = 1.5¢ → 2¢
    ({"unit_amount_decimal": "0.5"}, 3, 2),
    # package of 1,000 at 50¢, rounded up: 12,345 → 13 packs × 50¢ = 650¢
    ({"unit_amount": 50, "transform_quantity": {"divide_by": 1000, "round": "up"}}, 12_345, 650),
    # rounded down: 12,345 → 12 packs × 50¢ = 600¢
    ({"unit_amount": 50, "transform_quantity": {"divide_by": 1000, "round": "down"}}, 12_345, 600),
    # Pro's calls: first 10,000 free, then 0.2¢: 2,345 × 0.2¢ = 469¢
    (
        {
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            "tiers": [
                {"up_to": 10_000, "unit_amount": 0},
                {"up_to": "inf", "unit_amount_decimal": "0.2"},
            ],
        },
        12_345,
        469,
    ),
    # volume with flat fees, 150 GB falls in tier 2: 150 × 8¢ + 1,000¢ = 2,200¢
    (
        {
            "billing_scheme": "tiered",
            "tiers_mode": "volume",
            "tiers": [
                {"up_to": 100, "unit_amount": 10, "flat_amount": 500},
                {"up_to": 1000, "unit_amount": 8, "flat_amount": 1000},
                {"up_to": "inf", "unit_amount": 5, "flat_amount": 2000},
            ],
        },
        150,
        2_200,
    ),
    # graduated with flat fees, 12,000 transactions:
    # 1,000 × 5¢ + 1,000 flat = 6,000; 9,000 × 3¢ + 500 flat = 27,500; 2,000 × 1¢ = 2,000
    # 6,000 + 27,500 + 2,000 = 35,500¢
    (
        {
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            "tiers": [
                {"up_to": 1000, "unit_amount": 5, "flat_amount": 1000},
                {"up_to": 10_000, "unit_amount": 3, "flat_amount": 500},
                {"up_to": "inf", "unit_amount": 1},
            ],
        },
        12_000,
        35_500,
    ),
]


@pytest.mark.parametrize(("extra", "quantity", "expected"), NAMED)
def test_named_cases_agree_with_the_hand_computation(client, extra, quantity, expected):
    product = client.v1.products.create({"name": "Named"})
    customer = client.v1.customers.create({"name": "Named"})
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "recurring": {"interval": "month", "usage_type": "licensed"},
            **extra,
        }
    )
    preview = client.v1.invoices.create_preview(
        {
            "customer": customer.id,
            "subscription_details": {"items": [{"price": price.id, "quantity": quantity}]},
        }
    )
    assert preview.total == expected
    assert _engine_amount(client, price, quantity) == expected
