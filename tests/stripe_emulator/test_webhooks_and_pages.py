"""Events, webhook delivery (signing, filtering, retries) and the pages the emulator serves."""

from __future__ import annotations

import time
import urllib.request

import stripe

from .conftest import Receiver
from .helpers import clock_customer


def test_events_are_listed_and_retrievable(client):
    customer = client.v1.customers.create({"email": "e@example.com"})
    client.v1.customers.update(customer.id, {"name": "Renamed"})
    events = client.v1.events.list({"type": "customer.*"}).data
    assert [e.type for e in events] == ["customer.updated", "customer.created"]
    updated = client.v1.events.retrieve(events[0].id)
    assert updated.data.object.name == "Renamed"
    assert updated.data.previous_attributes.name is None
    assert updated["request"]["idempotency_key"]  # stripe-python sends one on every POST
    only = client.v1.events.list({"types": ["customer.created"]}).data
    assert [e.type for e in only] == ["customer.created"]


def test_enabled_events_filter_and_retries_with_backoff(client):
    receiver = Receiver(fail_first=2)  # answers 500 twice, then 200
    try:
        endpoint = client.v1.webhook_endpoints.create(
            {"url": receiver.url, "enabled_events": ["product.created", "product.updated"]}
        )
        product = client.v1.products.create({"name": "A"})
        client.v1.customers.create({"email": "not-sent@example.com"})  # not enabled
        client.v1.products.update(product.id, {"name": "B"})
        deliveries = receiver.wait_for(lambda d: len(d) >= 2)
        assert receiver.attempts == 4  # two failures, then the two events
        assert [d["type"] for d in deliveries] == ["product.created", "product.updated"]
        for delivery in deliveries:
            stripe.Webhook.construct_event(delivery["body"], delivery["signature"], endpoint.secret)
        time.sleep(0.2)
        assert len(receiver.deliveries) == 2
        assert "secret" not in client.v1.webhook_endpoints.retrieve(endpoint.id)
        pending = client.v1.events.list({"type": "product.created"}).data[0]
        assert pending.pending_webhooks == 0
    finally:
        receiver.close()


def test_delivery_does_not_block_requests_when_endpoint_is_down(client):
    client.v1.webhook_endpoints.create(
        {"url": "http://127.0.0.1:9/unreachable", "enabled_events": ["*"]}
    )
    start = time.monotonic()
    for i in range(5):
        client.v1.products.create({"name": f"P{i}"})
    assert time.monotonic() - start < 2


def test_hosted_invoice_and_portal_pages(client):
    _, customer = clock_customer(client)
    price = client.v1.prices.create(
        {
            "product_data": {"name": "Team plan"},
            "currency": "usd",
            "unit_amount": 4900,
            "recurring": {"interval": "month"},
        }
    )
    sub = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}], "expand": ["latest_invoice"]}
    )
    page = urllib.request.urlopen(sub.latest_invoice.hosted_invoice_url).read().decode()
    assert "49.00 USD" in page and "Team plan" in page and "paid" in page
    config = client.v1.billing_portal.configurations.create(
        {
            "business_profile": {"headline": "Meterdesk"},
            "features": {"invoice_history": {"enabled": True}},
        }
    )
    assert config.is_default is True
    session = client.v1.billing_portal.sessions.create(
        {"customer": customer.id, "return_url": "http://localhost:8000/billing/"}
    )
    assert session.configuration == config.id
    portal = urllib.request.urlopen(session.url).read().decode()
    assert customer.id in portal and "ops@example.com" in portal
    assert sub.latest_invoice.number in portal
    assert 'href="http://localhost:8000/billing/"' in portal or (
        "href='http://localhost:8000/billing/'" in portal
    )
