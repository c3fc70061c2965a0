"""Prorations on a subscription update, their preview, and schedules that change the
prices at the period's end (stripe_emulator.prorations, .resources.subscription_schedules).

April 2026 has 30 days: a monthly period from 2026-04-01 00:00 UTC is 2,592,000 s."""

import pytest
import stripe

from .helpers import advance, clock_customer, meter, metered_price, product, send_usage

APR_1 = 1775001600  # 2026-04-01T00:00:00Z
APR_16 = APR_1 + 15 * 86400  # half-way: 15 of 30 days left
MAY_1 = APR_1 + 30 * 86400
JUN_1 = MAY_1 + 31 * 86400
HOUR = 3600


def _licensed(client, amount: int, name: str):
    return client.v1.prices.create(
        {
            "product": product(client, name).id,
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": "month"},
        }
    )


def _subscribed(client, amount: int = 1000):
    clock, customer = clock_customer(client, frozen=APR_1)
    old = _licensed(client, amount, "Basic")
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": old.id}]})
    return clock, customer, sub


def _change(sub, price_id: str) -> list[dict]:
    return [{"id": sub["items"].data[0].id, "price": price_id}]


def _amounts(invoice) -> list[int]:
    return sorted(line.amount for line in invoice.lines.data)


def test_upgrade_half_way_previews_and_invoices_the_same_prorations(client):
    clock, _customer, sub = _subscribed(client)
    new = _licensed(client, 2000, "Premium")
    advance(client, clock.id, APR_16)
    preview = client.v1.invoices.create_preview(
        {
            "subscription": sub.id,
            "subscription_details": {
                "items": _change(sub, new.id),
                "proration_behavior": "always_invoice",
                "proration_date": APR_16,
            },
        }
    )
    # Stripe's own example: $10 -> $20 half-way = -$5 unused + $10 remaining = $5.
    assert _amounts(preview) == [-500, 1000]
    assert preview.total == 500
    assert preview.billing_reason == "subscription_update"
    descriptions = sorted(line.description for line in preview.lines.data)
    assert descriptions == [
        "Remaining time on 1 \u00d7 Premium after 16 Apr 2026",
        "Unused time on 1 \u00d7 Basic after 16 Apr 2026",
    ]
    assert all(line.parent.subscription_item_details.proration for line in preview.lines.data)
    updated = client.v1.subscriptions.update(
        sub.id,
        {
            "items": _change(sub, new.id),
            "proration_behavior": "always_invoice",
            "proration_date": APR_16,
        },
    )
    invoice = client.v1.invoices.retrieve(updated.latest_invoice)
    assert invoice.billing_reason == "subscription_update"
    assert (invoice.total, invoice.status, invoice.amount_paid) == (500, "paid", 500)
    assert _amounts(invoice) == _amounts(preview)
    # The period and the billing date stay: the renewal on May 1 bills $20 in advance.
    item = updated["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (APR_1, MAY_1)
    advance(client, clock.id, MAY_1 + HOUR + 1)
    renewal = [
        i
        for i in client.v1.invoices.list({"subscription": sub.id}).data
        if i.billing_reason == "subscription_cycle"
    ]
    assert [i.total for i in renewal] == [2000]


def test_proration_is_to_the_second(client):
    clock, _customer, sub = _subscribed(client)
    new = _licensed(client, 9900, "Pro")
    at = APR_1 + 10 * 86400 + 12 * HOUR  # Apr 11 12:00: 19.5 days left
    advance(client, clock.id, at + 60)
    preview = client.v1.invoices.create_preview(
        {
            "subscription": sub.id,
            "subscription_details": {
                "items": _change(sub, new.id),
                "proration_behavior": "always_invoice",
                "proration_date": at,
            },
        }
    )
    # remaining = 19.5 / 30 = 0.65: -1000 x 0.65 = -650; 9900 x 0.65 = 6435; total 5785
    assert _amounts(preview) == [-650, 6435]
    assert preview.total == 5785


def test_create_prorations_are_billed_with_the_renewal(client):
    clock, customer, sub = _subscribed(client)
    new = _licensed(client, 2000, "Premium")
    advance(client, clock.id, APR_16)
    client.v1.subscriptions.update(sub.id, {"items": _change(sub, new.id)})  # the default
    pending = client.v1.invoice_items.list({"customer": customer.id}).data
    assert sorted((i.amount, i.proration) for i in pending) == [(-500, True), (1000, True)]
    assert [i.billing_reason for i in client.v1.invoices.list({"subscription": sub.id}).data] == [
        "subscription_create"
    ]
    advance(client, clock.id, MAY_1 + HOUR + 1)
    renewal = next(
        i
        for i in client.v1.invoices.list({"subscription": sub.id}).data
        if i.billing_reason == "subscription_cycle"
    )
    # Stripe's update docs: $100 -> $200 on May 15 bills $250 on Jun 1; here
    # $20 next month + ($10 - $5) = $25.
    assert renewal.total == 2500


def test_no_prorations_with_none(client):
    clock, customer, sub = _subscribed(client)
    new = _licensed(client, 2000, "Premium")
    advance(client, clock.id, APR_16)
    updated = client.v1.subscriptions.update(
        sub.id, {"items": _change(sub, new.id), "proration_behavior": "none"}
    )
    assert client.v1.invoice_items.list({"customer": customer.id}).data == []
    assert client.v1.invoices.retrieve(updated.latest_invoice).billing_reason == (
        "subscription_create"
    )


def test_metered_items_are_not_prorated(client):
    clock, customer = clock_customer(client, frozen=APR_1)
    m = meter(client, "calls_prorate")
    cheap = metered_price(client, product(client).id, m.id, unit_amount=1)
    dear = metered_price(client, product(client).id, m.id, unit_amount=2)
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": cheap.id}]})
    send_usage(client, customer.id, m.event_name, [100], start=APR_1 + 60)
    advance(client, clock.id, APR_16)
    preview = client.v1.invoices.create_preview(
        {
            "subscription": sub.id,
            "subscription_details": {
                "items": _change(sub, dear.id),
                "proration_behavior": "always_invoice",
            },
        }
    )
    assert (preview.total, preview.lines.data) == (0, [])
    updated = client.v1.subscriptions.update(
        sub.id, {"items": _change(sub, dear.id), "proration_behavior": "always_invoice"}
    )
    # nothing to invoice: no invoice made now
    assert client.v1.invoices.retrieve(updated.latest_invoice).billing_reason == (
        "subscription_create"
    )


def test_proration_date_outside_the_period_is_refused(client):
    _clock, _customer, sub = _subscribed(client)
    new = _licensed(client, 2000, "Premium")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.update(
            sub.id, {"items": _change(sub, new.id), "proration_date": MAY_1 + 1}
        )
    assert caught.value.param == "proration_date"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.create_preview(
            {
                "subscription": sub.id,
                "subscription_details": {
                    "items": _change(sub, new.id),
                    "proration_date": APR_1 - 1,
                },
            }
        )
    assert caught.value.param == "subscription_details[proration_date]"


def test_schedule_changes_the_price_at_the_period_end_only(client):
    clock, _customer, sub = _subscribed(client)
    new = _licensed(client, 2000, "Premium")
    advance(client, clock.id, APR_16)
    schedule = client.v1.subscription_schedules.create({"from_subscription": sub.id})
    assert schedule.id.startswith("sub_sched_")
    assert [(p.start_date, p.end_date) for p in schedule.phases] == [(APR_1, MAY_1)]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscription_schedules.create({"from_subscription": sub.id})
    assert caught.value.param == "from_subscription"
    old_price = sub["items"].data[0].price.id
    schedule = client.v1.subscription_schedules.update(
        schedule.id,
        {
            "end_behavior": "release",
            "phases": [
                {
                    "items": [{"price": old_price, "quantity": 1}],
                    "start_date": APR_1,
                    "end_date": MAY_1,
                },
                {
                    "items": [{"price": new.id, "quantity": 1}],
                    "duration": {"interval": "month"},
                    "metadata": {"plan": "premium"},
                },
            ],
        },
    )
    assert [(p.start_date, p.end_date) for p in schedule.phases] == [
        (APR_1, MAY_1),
        (MAY_1, JUN_1),
    ]
    # The next renewal previews on the new price; nothing is due now.
    upcoming = client.v1.invoices.create_preview({"subscription": sub.id})
    assert upcoming.total == 2000
    advance(client, clock.id, MAY_1 - 1)
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == old_price
    advance(client, clock.id, MAY_1 + HOUR + 1)
    now = client.v1.subscriptions.retrieve(sub.id)
    assert now["items"].data[0].price.id == new.id
    assert now.metadata["plan"] == "premium"
    renewal = next(
        i
        for i in client.v1.invoices.list({"subscription": sub.id}).data
        if i.billing_reason == "subscription_cycle"
    )
    assert (renewal.total, renewal.status) == (2000, "paid")  # $20 in advance, no prorations
    # After its last phase the schedule lets the subscription go on by itself.
    advance(client, clock.id, JUN_1 + HOUR + 1)
    done = client.v1.subscription_schedules.retrieve(schedule.id)
    assert (done.status, done.released_subscription) == ("released", sub.id)
    assert client.v1.subscriptions.retrieve(sub.id).schedule is None


def test_schedule_release_before_the_boundary_keeps_the_price(client):
    clock, _customer, sub = _subscribed(client)
    new = _licensed(client, 2000, "Premium")
    schedule = client.v1.subscription_schedules.create({"from_subscription": sub.id})
    old_price = sub["items"].data[0].price.id
    client.v1.subscription_schedules.update(
        schedule.id,
        {
            "phases": [
                {"items": [{"price": old_price}], "start_date": APR_1, "end_date": MAY_1},
                {"items": [{"price": new.id}]},
            ]
        },
    )
    released = client.v1.subscription_schedules.release(schedule.id)
    assert released.status == "released"
    advance(client, clock.id, MAY_1 + HOUR + 1)
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == old_price


def test_item_routes_prorate_a_quantity_change(client):
    clock, customer, sub = _subscribed(client)
    advance(client, clock.id, APR_16)
    item_id = sub["items"].data[0].id
    client.v1.subscription_items.update(
        item_id, {"quantity": 3, "proration_behavior": "always_invoice"}
    )
    invoice = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    # Half of the period left: 1 x $10 x 1/2 = -$5 unused, 3 x $10 x 1/2 = $15 remaining.
    assert _amounts(invoice) == [-500, 1500]
    assert (invoice.total, invoice.billing_reason) == (1000, "subscription_update")
    # The default, create_prorations: a second seat price added half-way is pending.
    extra = _licensed(client, 400, "Support")
    client.v1.subscription_items.create({"subscription": sub.id, "price": extra.id})
    pending = client.v1.invoice_items.list({"customer": customer.id, "pending": True}).data
    assert [(i.amount, i.proration) for i in pending] == [(200, True)]  # 400 x 1/2
