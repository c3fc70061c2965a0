"""Renewal invoices are drafts for an hour of clock time, as in Stripe: ``invoice.created``
at the period end, ``automatically_finalizes_at`` an hour later, usage reported in that
hour for the closed period counted, then finalized and charged (``invoice.finalized``,
``invoice.paid``). The old emulator finalized and charged at the period end."""

from __future__ import annotations

from .helpers import (
    DRAFT_HOUR,
    FEB_1,
    T0,
    advance,
    clock_customer,
    meter,
    metered_price,
    product,
    renewal_invoice,
)


def test_renewal_is_a_draft_until_an_hour_after_the_period_end(client, webhook_receiver):
    client.v1.webhook_endpoints.create({"url": webhook_receiver.url, "enabled_events": ["*"]})
    clock, customer = clock_customer(client)
    m = meter(client, "draft_units")
    price = metered_price(client, product(client).id, m.id, unit_amount=3)
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})

    def send(value: int, identifier: str, at: int) -> None:
        client.v1.billing.meter_events.create(
            {"event_name": m.event_name, "identifier": identifier, "timestamp": at,
             "payload": {"stripe_customer_id": customer.id, "value": str(value)}}
        )  # fmt: skip

    send(100, "in-period", T0 + 10)
    advance(client, clock.id, FEB_1)
    draft = renewal_invoice(client, sub.id)
    assert draft.status == "draft" and draft.number is None
    assert draft.automatically_finalizes_at == FEB_1 + DRAFT_HOUR
    assert draft.attempted is False and draft.status_transitions.finalized_at is None
    assert draft.total == 100 * 3  # usage so far

    # In the grace hour, late usage of the closed period still counts.
    advance(client, clock.id, FEB_1 + 600)
    send(20, "late-but-in-grace", FEB_1 - 5)
    assert renewal_invoice(client, sub.id).status == "draft"

    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    paid = renewal_invoice(client, sub.id)
    assert paid.id == draft.id and paid.status == "paid"
    assert paid.automatically_finalizes_at is None
    assert paid.status_transitions.finalized_at == FEB_1 + DRAFT_HOUR
    # (100 + 20) units x 3 cents = 360: the line was brought up to date at finalization.
    assert paid.total == paid.amount_paid == 360
    assert [line.quantity for line in paid.lines.data] == [120]

    def seen(deliveries):
        return [d["type"] for d in deliveries if draft.id in d["body"]]

    webhook_receiver.wait_for(lambda d: "invoice.paid" in seen(d))
    order = [t for t in seen(webhook_receiver.deliveries) if t.startswith("invoice.")]
    assert order[:1] == ["invoice.created"]
    assert order.index("invoice.finalized") < order.index("invoice.paid")


def test_a_long_jump_closes_periods_and_finalizes_drafts_in_time_order(client):
    clock, customer = clock_customer(client)
    m = meter(client, "jump_units")
    price = metered_price(client, product(client).id, m.id, unit_amount=1)
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    advance(client, clock.id, FEB_1 + 40 * 86400)  # past Feb 1 and Mar 1 and their hours
    invoices = client.v1.invoices.list({"subscription": sub.id, "limit": 10}).data
    cycles = [i for i in invoices if i.billing_reason == "subscription_cycle"]
    assert len(cycles) == 2 and all(i.status == "paid" for i in cycles)
    finalized = sorted(i.status_transitions.finalized_at for i in cycles)
    assert finalized == [FEB_1 + DRAFT_HOUR, 1772323200 + DRAFT_HOUR]  # Feb 1, Mar 1 + 1 h
