"""Acceptance 3: every pricing model billed through a test clock period close.

Each expected amount is worked out by hand in the comment next to it (amounts in cents).
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import stripe

from .helpers import (
    FEB_1,
    advance,
    bill_one_period,
    clock_customer,
    meter,
    metered_price,
    product,
    renewal_invoice,
    send_usage,
)

VOLUME_TIERS = [
    {"up_to": 1000, "unit_amount": 5, "flat_amount": 1000},
    {"up_to": 10000, "unit_amount": 3, "flat_amount": 2000},
    {"up_to": "inf", "unit_amount": 1, "flat_amount": 5000},
]
GRADUATED_TIERS = [
    {"up_to": 1000, "unit_amount": 0, "flat_amount": 500},
    {"up_to": 5000, "unit_amount_decimal": "0.5", "flat_amount": 1000},
    {"up_to": "inf", "unit_amount_decimal": "0.25", "flat_amount": 2500},
]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # 2,500 units fall in tier 2: 2,500 x 3 + flat 2,000 = 9,500
        ([1000, 1500], 9500),
        # 10,000 units (tier 2, up_to inclusive): 10,000 x 3 + 2,000 = 32,000
        ([10000], 32000),
        # 10,001 units fall in tier 3: 10,001 x 1 + 5,000 = 15,001 (less than for 10,000)
        ([10000, 1], 15001),
        # 0 units fall in tier 1: 0 x 5 + flat 1,000 = 1,000
        ([], 1000),
    ],
)
def test_volume_tiers_with_flat_fees(client, values, expected):
    invoice, _ = bill_one_period(
        client, values=values, billing_scheme="tiered", tiers_mode="volume", tiers=VOLUME_TIERS
    )
    assert invoice.total == expected
    assert invoice.lines.data[0].quantity == sum(values)
    assert invoice.status == "paid"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # tier 1: 1,000 x 0 + flat 500 = 500
        # tier 2: 4,000 x 0.5 = 2,000 + flat 1,000 = 3,000
        # tier 3: 1,001 x 0.25 = 250.25 + flat 2,500 = 2,750.25
        # total 6,250.25 -> rounded once, half up: 6,250
        ([5000, 1001], 6250),
        # 1,001 units: tier 1 500; tier 2 1 x 0.5 = 0.5 + flat 1,000 -> 1,500.5 -> 1,501
        ([1001], 1501),
        # 1,000 units: only tier 1 is reached: 500
        ([1000], 500),
        # 0 units: the first tier's flat fee still applies: 500
        ([], 500),
    ],
)
def test_graduated_tiers_with_flat_fees(client, values, expected):
    invoice, _ = bill_one_period(
        client,
        values=values,
        billing_scheme="tiered",
        tiers_mode="graduated",
        tiers=GRADUATED_TIERS,
    )
    assert invoice.total == expected


@pytest.mark.parametrize(
    ("rounding", "values", "expected"),
    [
        # 2,001 units / 1,000 = 2.001 packages, rounded up to 3: 3 x 250 = 750
        ("up", [2000, 1], 750),
        # 2,999 units / 1,000 = 2.999 packages, rounded down to 2: 2 x 250 = 500
        ("down", [2999], 500),
        # exactly 2,000 units = 2 packages either way: 500
        ("up", [2000], 500),
    ],
)
def test_package_pricing_rounds_up_and_down(client, rounding, values, expected):
    invoice, _ = bill_one_period(
        client,
        values=values,
        unit_amount=250,
        transform_quantity={"divide_by": 1000, "round": rounding},
    )
    assert invoice.total == expected
    assert invoice.lines.data[0].quantity == sum(values)


@pytest.mark.parametrize(
    ("unit", "values", "expected"),
    [
        # 12,345 x 0.015 = 185.175 -> 185
        ("0.015", [12345], 185),
        # 100 x 0.125 = 12.5 -> half up: 13
        ("0.125", [100], 13),
        # 3 x 33.333333333333 = 99.999999999999 -> 100
        ("33.333333333333", [1, 1, 1], 100),
    ],
)
def test_decimal_unit_amount(client, unit, values, expected):
    invoice, _ = bill_one_period(client, values=values, unit_amount_decimal=unit)
    assert invoice.total == expected
    assert invoice.lines.data[0].pricing.unit_amount_decimal == Decimal(unit)


def test_last_meter_bills_the_latest_value(client):
    # A seats meter with formula "last": values 5, 9, 7 sent at T0+0s, +1s, +2s, plus a
    # 4 sent last but timestamped earliest. The latest timestamp wins: 7 seats.
    clock, customer = clock_customer(client)
    seats = meter(client, "seats", "last")
    price = metered_price(client, product(client).id, seats.id, unit_amount=1200)
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    send_usage(client, customer.id, "seats", [5, 9, 7], start=clock.frozen_time + 10)
    client.v1.billing.meter_events.create(
        {
            "event_name": "seats",
            "timestamp": clock.frozen_time,
            "payload": {"stripe_customer_id": customer.id, "value": "4"},
        }
    )
    advance(client, clock.id, FEB_1)
    # 7 seats x 1,200 = 8,400
    invoice = renewal_invoice(client, sub.id)
    assert invoice.lines.data[0].quantity == 7
    assert invoice.total == 8400


def test_count_meter_counts_events(client):
    # formula "count": 4 events whatever their values; 4 x 25 = 100
    invoice, _ = bill_one_period(client, formula="count", values=[10, 1, 1, 300], unit_amount=25)
    assert invoice.total == 100


def test_failed_payment_leaves_invoice_open_and_subscription_past_due(client, webhook_receiver):
    endpoint = client.v1.webhook_endpoints.create(
        {
            "url": webhook_receiver.url,
            "enabled_events": ["invoice.payment_failed", "customer.subscription.updated"],
        }
    )
    # Metered only, so the first invoice is 0 and paid without a charge; the renewal is
    # 1,000 units x 2 = 2,000 and the card declines it.
    invoice, sub = bill_one_period(
        client, values=[400, 600], unit_amount=2, pm="pm_card_chargeCustomerFail"
    )
    assert invoice.total == 2000
    assert invoice.status == "open"
    assert invoice.amount_paid == 0
    assert invoice.amount_remaining == 2000
    assert invoice.attempted is True
    assert sub.status == "past_due"

    def failed(deliveries):
        return any(d["type"] == "invoice.payment_failed" for d in deliveries)

    deliveries = webhook_receiver.wait_for(failed)
    payload = next(d for d in deliveries if d["type"] == "invoice.payment_failed")
    event = stripe.Webhook.construct_event(payload["body"], payload["signature"], endpoint.secret)
    assert event.data.object.id == invoice.id
    assert json.loads(payload["body"])["data"]["object"]["status"] == "open"

    # Paying again with a working card settles it and the subscription is active again.
    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(invoice.id)
    paid = client.v1.invoices.pay(invoice.id, {"payment_method": "pm_card_visa"})
    assert paid.status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_several_periods_close_on_one_long_advance(client):
    # Licensed 1,500 per month; a jump of three months closes three periods: one invoice
    # at creation plus three renewals, each 1,500.
    clock, customer = clock_customer(client)
    price = client.v1.prices.create(
        {
            "product": product(client).id,
            "currency": "usd",
            "unit_amount": 1500,
            "recurring": {"interval": "month"},
        }
    )
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    advance(client, clock.id, 1775001600)  # 2026-04-01
    invoices = client.v1.invoices.list({"subscription": sub.id}).data
    assert [i.total for i in invoices] == [1500] * 4
    assert [i.billing_reason for i in invoices].count("subscription_cycle") == 3
    item = client.v1.subscriptions.retrieve(sub.id)["items"].data[0]
    assert item.current_period_start == 1775001600
