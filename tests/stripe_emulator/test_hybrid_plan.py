"""Acceptance 2: a hybrid plan billed end to end through stripe-python and test clocks."""

from __future__ import annotations

import json

import pytest
import stripe

from stripe_emulator.testing import control

from .conftest import make_client
from .helpers import FEB_1, MAR_1, T0, advance, clock_customer, meter, product

DAY = 86400


def test_hybrid_plan_renewal_invoice_summaries_and_signed_webhooks(
    emulator, client, webhook_receiver
):
    endpoint = client.v1.webhook_endpoints.create(
        {"url": webhook_receiver.url, "enabled_events": ["*"]}
    )
    assert endpoint.secret.startswith("whsec_")

    clock, customer = clock_customer(client)
    api_calls = meter(client, "api_call", "sum")
    pro = product(client, "Pro")
    base = client.v1.prices.create(
        {
            "product": pro.id,
            "currency": "usd",
            "unit_amount": 9900,
            "recurring": {"interval": "month"},
            "lookup_key": "pro_base",
        }
    )
    overage = client.v1.prices.create(
        {
            "product": pro.id,
            "currency": "usd",
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            "tiers": [
                {"up_to": 10000, "unit_amount": 0},  # the 10,000 included calls
                {"up_to": "inf", "unit_amount_decimal": "0.2"},  # then $0.002 = 0.2 cents
            ],
            "recurring": {"interval": "month", "usage_type": "metered", "meter": api_calls.id},
        }
    )
    sub = client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": base.id}, {"price": overage.id}],
            "expand": ["latest_invoice"],
        }
    )
    # First invoice: licensed in advance (9,900), metered nothing yet; paid at once.
    assert sub.status == "active"
    assert sub.latest_invoice.total == 9900
    assert sub.latest_invoice.status == "paid"
    assert sub.latest_invoice.billing_reason == "subscription_create"
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (T0, FEB_1)
    assert "current_period_end" not in sub  # dahlia: periods live on the items

    # Mid-period: the clock moves to Jan 16; usage is timestamped over the first 15 days
    # (accepted because it is within 35 days of the clock's time, not of real time).
    advance(client, clock.id, T0 + 15 * DAY)
    # 12,345 units: 40 v1 events of 300 (12,000) + 3 v2 stream events of 115 (345).
    for i in range(40):
        client.v1.billing.meter_events.create(
            {
                "event_name": "api_call",
                "identifier": f"v1-{i}",
                "timestamp": T0 + i * 3600,
                "payload": {"stripe_customer_id": customer.id, "value": "300"},
            }
        )
    for i in range(0, 40, 8):  # re-sent identifiers are refused (400), not counted twice
        with pytest.raises(stripe.InvalidRequestError, match="already exists"):
            client.v1.billing.meter_events.create(
                {
                    "event_name": "api_call",
                    "identifier": f"v1-{i}",
                    "timestamp": T0 + i * 3600,
                    "payload": {"stripe_customer_id": customer.id, "value": "300"},
                }
            )
    session = client.v2.billing.meter_event_session.create()
    streamer = make_client(emulator, session.authentication_token)
    batch = [
        {
            "event_name": "api_call",
            "identifier": f"v2-{i}",
            "timestamp": f"2026-01-1{i}T12:00:00.000Z",
            "payload": {"stripe_customer_id": customer.id, "value": "115"},
        }
        for i in range(3)
    ]
    streamer.v2.billing.meter_event_stream.create({"events": batch})
    streamer.v2.billing.meter_event_stream.create({"events": batch})  # a retried batch
    control(emulator, "/_emulator/meter_event_stream/drain", {})  # the stream counts later

    preview = client.v1.invoices.create_preview({"subscription": sub.id})
    assert preview.total == 9900 + 469  # what the renewal will be, as it stands

    advance(client, clock.id, FEB_1 + 3600)  # the period end, and the renewal's hour as a draft

    renewal = client.v1.invoices.list({"subscription": sub.id, "status": "paid"}).data[0]
    # 12,345 units: first 10,000 at 0; 2,345 x 0.2 cents = 469 cents; plus 9,900 in advance.
    assert renewal.billing_reason == "subscription_cycle"
    assert renewal.total == 9900 + 469 == 10369
    assert renewal.amount_paid == 10369
    assert renewal.status == "paid"
    assert renewal.parent.subscription_details.subscription == sub.id
    lines = {line.pricing.price_details.price: line for line in renewal.lines.data}
    assert lines[base.id].amount == 9900
    assert (lines[base.id].period.start, lines[base.id].period.end) == (FEB_1, MAR_1)
    assert lines[overage.id].amount == 469
    assert lines[overage.id].quantity == 12345
    assert (lines[overage.id].period.start, lines[overage.id].period.end) == (T0, FEB_1)
    assert lines[overage.id].parent.subscription_item_details.subscription == sub.id
    item = client.v1.subscriptions.retrieve(sub.id)["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (FEB_1, MAR_1)

    summaries = client.v1.billing.meters.event_summaries.list(
        api_calls.id, {"customer": customer.id, "start_time": T0, "end_time": FEB_1}
    )
    assert [s.aggregated_value for s in summaries.data] == [12345]
    daily = client.v1.billing.meters.event_summaries.list(
        api_calls.id,
        {
            "customer": customer.id,
            "start_time": T0,
            "end_time": FEB_1,
            "value_grouping_window": "day",
            "limit": 100,
        },
    )
    assert sum(s.aggregated_value for s in daily.data) == 12345

    wanted = [
        ("invoice.created", renewal.id),
        ("invoice.finalized", renewal.id),
        ("invoice.paid", renewal.id),
    ]

    def delivered(deliveries):
        seen = [(d["type"], json.loads(d["body"])["data"]["object"]["id"]) for d in deliveries]
        return all(w in seen for w in wanted)

    deliveries = webhook_receiver.wait_for(delivered)
    order = []
    for delivery in deliveries:
        event = stripe.Webhook.construct_event(
            delivery["body"], delivery["signature"], endpoint.secret
        )
        if event.data.object.id == renewal.id:
            order.append(event.type)
    # In order per object.
    assert [t for t in order if t in dict(wanted)] == [w[0] for w in wanted]
    assert json.loads(deliveries[0]["body"])["api_version"] == "2026-05-27.dahlia"
