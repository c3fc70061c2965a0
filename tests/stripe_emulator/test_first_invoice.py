"""A subscription's first invoice charges nothing for its metered items: they bill in
arrears. "For subscriptions with billing_mode=flexible, Stripe excludes metered line items
from the first invoice"; with classic, "a zero monetary value invoice line item for each
metered subscription item"
(https://docs.stripe.com/billing/subscriptions/usage-based/use-cases/credits-based-pricing-model).
The old emulator rated the metered item at quantity 0 and so charged a graduated first
tier's flat fee in advance (and again at renewal)."""

from __future__ import annotations

from .helpers import clock_customer, meter, metered_price, product

# Graduated with a $10.00 flat fee on the first tier: rated at quantity 0 it would be
# 0 x 5 + 1,000 = 1,000 cents -- which must NOT appear on the first invoice.
TIERS = [
    {"up_to": 1000, "unit_amount": 5, "flat_amount": 1000},
    {"up_to": "inf", "unit_amount": 1},
]


def _subscribe(client, **extra):
    _, customer = clock_customer(client)
    prod = product(client)
    usage = metered_price(
        client, prod.id, meter(client, "first_invoice_calls").id,
        billing_scheme="tiered", tiers_mode="graduated", tiers=TIERS,
    )  # fmt: skip
    base = client.v1.prices.create(
        {"product": prod.id, "currency": "usd", "unit_amount": 9900,
         "recurring": {"interval": "month"}}
    )  # fmt: skip
    sub = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": base.id}, {"price": usage.id}], **extra}
    )
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    lines = invoice.lines.data
    return invoice, lines, usage


def test_flexible_first_invoice_leaves_metered_items_off(client):
    invoice, lines, usage = _subscribe(client)
    # Only the $99.00 base fee in advance: 9,900 cents.
    assert invoice.billing_reason == "subscription_create"
    assert invoice.total == 9900
    assert [line.amount for line in lines] == [9900]
    assert usage.id not in {line.pricing.price_details.price for line in lines}


def test_classic_first_invoice_lists_metered_items_at_zero(client):
    invoice, lines, usage = _subscribe(client, billing_mode={"type": "classic"})
    # $99.00 base + a zero line for the metered item (not the 1,000-cent flat fee).
    assert invoice.total == 9900
    by_price = {line.pricing.price_details.price: line.amount for line in lines}
    assert by_price[usage.id] == 0
    assert sorted(by_price.values()) == [0, 9900]
