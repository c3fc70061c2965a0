"""Builders for emulator tests: a customer on a test clock, a meter, a plan, one period."""

from __future__ import annotations

import time
import uuid

import stripe

T0 = 1767225600  # 2026-01-01T00:00:00Z, the test clocks' start
FEB_1 = 1769904000  # 2026-02-01T00:00:00Z, end of the first monthly period
MAR_1 = 1772323200  # 2026-03-01T00:00:00Z
DRAFT_HOUR = 3600  # a renewal invoice is a draft this long (the emulator's default)


def wait_ready(client: stripe.StripeClient, clock_id: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        clock = client.v1.test_helpers.test_clocks.retrieve(clock_id)
        if clock.status == "ready":
            return clock
        time.sleep(0.02)
    raise AssertionError("test clock did not become ready")


def clock_customer(client: stripe.StripeClient, pm: str = "pm_card_visa", frozen: int = T0):
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": frozen})
    customer = client.v1.customers.create(
        {
            "email": "ops@example.com",
            "name": "Example Co",
            "test_clock": clock.id,
            "payment_method": pm,
            "invoice_settings": {"default_payment_method": pm},
        }
    )
    return clock, customer


def meter(client: stripe.StripeClient, event_name: str, formula: str = "sum"):
    return client.v1.billing.meters.create(
        {
            "display_name": event_name.replace("_", " ").title(),
            "event_name": event_name,
            "default_aggregation": {"formula": formula},
        }
    )


def product(client: stripe.StripeClient, name: str = "Meterdesk Pro"):
    return client.v1.products.create({"name": name})


def metered_price(client, product_id: str, meter_id: str, **pricing):
    return client.v1.prices.create(
        {
            "product": product_id,
            "currency": "usd",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter_id},
            **pricing,
        }
    )


def send_usage(client, customer_id: str, event_name: str, values, *, start: int = T0):
    """One v1 meter event per value, one second apart from ``start``."""
    for i, value in enumerate(values):
        client.v1.billing.meter_events.create(
            {
                "event_name": event_name,
                "payload": {"stripe_customer_id": customer_id, "value": str(value)},
                "identifier": f"{customer_id}-{event_name}-{i}",
                "timestamp": start + i,
            }
        )


def advance(client, clock_id: str, to: int):
    clock = client.v1.test_helpers.test_clocks.advance(clock_id, {"frozen_time": to})
    assert clock.status == "advancing"
    return wait_ready(client, clock_id)


def renewal_invoice(client, subscription_id: str):
    invoices = client.v1.invoices.list({"subscription": subscription_id, "limit": 100}).data
    cycles = [i for i in invoices if i.billing_reason == "subscription_cycle"]
    assert len(cycles) == 1, [i.billing_reason for i in invoices]
    return cycles[0]


def bill_one_period(client, *, formula: str = "sum", values=(), pm="pm_card_visa", **pricing):
    """A customer on a clock subscribes to one metered price, sends ``values`` as meter
    events, and the clock moves to the period end and past the hour the renewal stays a
    draft (finalized and charged). Returns (renewal invoice, subscription)."""
    clock, customer = clock_customer(client, pm)
    m = meter(client, f"units_{uuid.uuid4().hex[:8]}", formula)
    price = metered_price(client, product(client).id, m.id, **pricing)
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    send_usage(client, customer.id, m.event_name, values)
    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    return renewal_invoice(client, sub.id), client.v1.subscriptions.retrieve(sub.id)
