"""The HTTP contract: auth, errors, form decoding, pagination, expand, resources' CRUD."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import stripe

from .conftest import make_client
from .helpers import FEB_1, T0, advance, clock_customer, meter, metered_price, product


def raw(base_url: str, method: str, path: str, body: bytes | None = None, headers=None):
    request = urllib.request.Request(
        base_url + path, data=body, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def test_health_needs_no_key(emulator):
    status, body, _ = raw(emulator, "GET", "/_emulator/health")
    assert status == 200 and body["status"] == "ok"


@pytest.mark.parametrize(
    "auth", [None, "Bearer ", "Basic abc", "Bearer pk_test_123", "Bearer sk_live_123"]
)
def test_api_needs_a_secret_test_key(emulator, auth):
    status, body, _ = raw(
        emulator, "GET", "/v1/customers", headers={"Authorization": auth} if auth else {}
    )
    assert status == 401
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"]


def test_authentication_error_through_the_client(emulator):
    with pytest.raises(stripe.AuthenticationError):
        make_client(emulator, "rk_live_nope").v1.customers.list()


def test_unknown_url_and_unknown_object(client, emulator):
    status, body, _ = raw(
        emulator, "GET", "/v1/nothing_here", headers={"Authorization": "Bearer sk_test_1"}
    )
    assert status == 404 and "Unrecognized request URL" in body["error"]["message"]
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.retrieve("cus_missing")
    assert info.value.http_status == 404
    assert info.value.code == "resource_missing"
    assert info.value.param == "id"


def test_missing_param_is_a_400_with_param(client):
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.prices.create({"currency": "usd", "unit_amount": 5})
    assert info.value.http_status == 400
    assert info.value.param == "product"


def test_pagination(client):
    made = [client.v1.products.create({"name": f"P{i}"}).id for i in range(5)]
    newest_first = list(reversed(made))
    page = client.v1.products.list({"limit": 2})
    assert [p.id for p in page.data] == newest_first[:2] and page.has_more
    assert page.url == "/v1/products"
    page2 = client.v1.products.list({"limit": 2, "starting_after": page.data[-1].id})
    assert [p.id for p in page2.data] == newest_first[2:4] and page2.has_more
    page3 = client.v1.products.list({"limit": 2, "starting_after": page2.data[-1].id})
    assert [p.id for p in page3.data] == newest_first[4:] and not page3.has_more
    back = client.v1.products.list({"limit": 2, "ending_before": page3.data[0].id})
    assert [p.id for p in back.data] == newest_first[2:4]
    assert [p.id for p in client.v1.products.list().auto_paging_iter()] == newest_first


def test_expand(client):
    _, customer = clock_customer(client)
    price = client.v1.prices.create(
        {
            "product_data": {"name": "Seat"},
            "currency": "usd",
            "unit_amount": 1000,
            "recurring": {"interval": "month"},
        }
    )
    sub = client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": price.id, "quantity": 3}],
            "expand": ["latest_invoice", "customer"],
        }
    )
    assert sub.customer.email == "ops@example.com"
    assert sub.latest_invoice.total == 3000  # 3 seats x 1,000
    # The customer is on a test clock: Stripe lists its subscriptions only when asked
    # for that clock (or that customer).
    assert client.v1.subscriptions.list({"expand": ["data.customer"]}).data == []
    listed = client.v1.subscriptions.list(
        {"expand": ["data.customer"], "test_clock": customer.test_clock}
    )
    assert listed.data[0].customer.id == customer.id
    item = sub["items"].data[0]
    assert item.price.id == price.id and item.plan.amount == 1000 and item.quantity == 3


def test_customer_crud_and_metadata(client):
    customer = client.v1.customers.create({"name": "A", "metadata": {"tier": "gold", "x": "1"}})
    updated = client.v1.customers.update(customer.id, {"metadata": {"x": ""}, "email": "a@b.co"})
    assert updated.metadata.to_dict() == {"tier": "gold"}
    assert updated.email == "a@b.co"
    assert client.v1.customers.list({"email": "a@b.co"}).data[0].id == customer.id
    gone = client.v1.customers.delete(customer.id)
    assert gone.deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.update(customer.id, {"name": "B"})


def test_price_validation_and_lookup_keys(client):
    prod = product(client)
    tiered = {
        "product": prod.id,
        "currency": "usd",
        "billing_scheme": "tiered",
        "tiers_mode": "volume",
        "recurring": {"interval": "month"},
    }
    with pytest.raises(stripe.InvalidRequestError):  # the last tier must be inf
        client.v1.prices.create({**tiered, "tiers": [{"up_to": 10, "unit_amount": 1}]})
    with pytest.raises(stripe.InvalidRequestError):  # not combinable with tiers
        client.v1.prices.create(
            {
                **tiered,
                "tiers": [{"up_to": "inf", "unit_amount": 1}],
                "transform_quantity": {"divide_by": 10, "round": "up"},
            }
        )
    with pytest.raises(stripe.InvalidRequestError):  # a metered price needs a meter
        client.v1.prices.create(
            {
                "product": prod.id,
                "currency": "usd",
                "unit_amount": 1,
                "recurring": {"interval": "month", "usage_type": "metered"},
            }
        )
    price = client.v1.prices.create(
        {
            "product": prod.id,
            "currency": "usd",
            "unit_amount_decimal": "0.0125",
            "lookup_key": "std",
        }
    )
    assert price.unit_amount is None and price.type == "one_time"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.prices.create(
            {"product": prod.id, "currency": "usd", "unit_amount": 1, "lookup_key": "std"}
        )
    moved = client.v1.prices.create(
        {
            "product": prod.id,
            "currency": "usd",
            "unit_amount": 2,
            "lookup_key": "std",
            "transfer_lookup_key": True,
        }
    )
    found = client.v1.prices.list({"lookup_keys": ["std"]}).data
    assert [p.id for p in found] == [moved.id]


def test_meter_lifecycle(client):
    m = meter(client, "gb_stored", "last")
    assert m.customer_mapping.event_payload_key == "stripe_customer_id"
    assert m.value_settings.event_payload_key == "value"
    with pytest.raises(stripe.InvalidRequestError):  # event_name is unique
        meter(client, "gb_stored")
    renamed = client.v1.billing.meters.update(m.id, {"display_name": "Storage"})
    assert renamed.display_name == "Storage"
    with pytest.raises(stripe.InvalidRequestError):  # only display_name can change
        client.v1.billing.meters.update(m.id, {"event_name": "other"})
    assert client.v1.billing.meters.deactivate(m.id).status == "inactive"
    assert client.v1.billing.meters.list({"status": "active"}).data == []
    assert client.v1.billing.meters.reactivate(m.id).status == "active"


def test_subscription_update_cancel_and_items(client):
    clock, customer = clock_customer(client)
    prod = product(client)
    seat = client.v1.prices.create(
        {
            "product": prod.id,
            "currency": "usd",
            "unit_amount": 500,
            "recurring": {"interval": "month"},
        }
    )
    m = meter(client, "jobs")
    jobs = metered_price(client, prod.id, m.id, unit_amount=3)
    sub = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": seat.id, "quantity": 2}]}
    )
    item = client.v1.subscription_items.create({"subscription": sub.id, "price": jobs.id})
    assert item.current_period_end == sub["items"].data[0].current_period_end
    updated = client.v1.subscriptions.update(
        sub.id,
        {
            "items": [{"id": sub["items"].data[0].id, "quantity": 4}],
            "proration_behavior": "none",  # this test is about the items, not prorations
            "cancel_at_period_end": True,
            "metadata": {"plan": "team"},
        },
    )
    assert updated.cancel_at_period_end and updated.metadata.plan == "team"
    assert {i.id for i in client.v1.subscription_items.list({"subscription": sub.id}).data} == {
        i.id for i in updated["items"].data
    }
    client.v1.billing.meter_events.create(
        {"event_name": "jobs", "payload": {"stripe_customer_id": customer.id, "value": "10"}}
    )
    advance(client, clock.id, FEB_1)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert ended.status == "canceled" and ended.ended_at == FEB_1
    final = client.v1.invoices.retrieve(ended.latest_invoice)
    # Cancelled at period end: only the arrears usage, 10 x 3 = 30 (no new seats).
    assert final.total == 30
    other = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": seat.id}]})
    assert client.v1.subscriptions.cancel(other.id).status == "canceled"
    assert client.v1.subscriptions.list({"customer": customer.id}).data == []
    assert len(client.v1.subscriptions.list({"customer": customer.id, "status": "all"}).data) == 2


def test_invoice_finalize_void_and_manual_lifecycle(client):
    customer = client.v1.customers.create({"email": "m@example.com"})
    draft = client.v1.invoices.create({"customer": customer.id})
    assert draft.status == "draft" and draft.number is None
    final = client.v1.invoices.finalize_invoice(draft.id)
    # Nothing is owed on an empty invoice: finalized then paid.
    assert final.status == "paid" and final.number.endswith("-0001")
    another = client.v1.invoices.create(
        {"customer": customer.id, "collection_method": "send_invoice"}
    )
    client.v1.invoices.delete(another.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.retrieve(another.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(final.id)  # only open invoices can be voided


def test_void_open_invoice(client):
    _, customer = clock_customer(client, pm="pm_card_chargeCustomerFail")
    price = client.v1.prices.create(
        {
            "product_data": {"name": "X"},
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "month"},
        }
    )
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    # The first charge fails: the subscription is incomplete and its invoice open.
    assert sub.status == "incomplete"
    voided = client.v1.invoices.void_invoice(sub.latest_invoice)
    assert voided.status == "void" and voided.status_transitions.voided_at == T0


def test_declined_card_fails_at_attach(client):
    customer = client.v1.customers.create({})
    with pytest.raises(stripe.CardError) as info:
        client.v1.payment_methods.attach("pm_card_chargeDeclined", {"customer": customer.id})
    assert info.value.code == "card_declined" and info.value.http_status == 402
    pm = client.v1.payment_methods.attach("pm_card_visa", {"customer": customer.id})
    assert pm.card.last4 == "4242" and pm.customer == customer.id
    listed = client.v1.payment_methods.list({"customer": customer.id, "type": "card"})
    assert [p.id for p in listed.data] == [pm.id]
    assert client.v1.payment_methods.detach(pm.id).customer is None


def test_create_preview_for_a_new_subscription(client):
    customer = client.v1.customers.create({})
    price = client.v1.prices.create(
        {
            "product_data": {"name": "X"},
            "currency": "usd",
            "unit_amount": 1250,
            "recurring": {"interval": "month"},
        }
    )
    preview = client.v1.invoices.create_preview(
        {
            "customer": customer.id,
            "subscription_details": {"items": [{"price": price.id, "quantity": 2}]},
        }
    )
    assert preview.total == 2500  # 2 x 1,250
    assert preview.lines.data[0].quantity == 2
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoices.create_preview({"customer": customer.id})
    assert info.value.code == "invoice_upcoming_none"


def test_stripe_version_header_is_accepted_and_answered(emulator):
    client = make_client(emulator, stripe_version="2026-05-27.dahlia")
    assert client.v1.customers.create({"name": "v"}).name == "v"
    _, _, headers = raw(
        emulator, "GET", "/v1/customers", headers={"Authorization": "Bearer sk_test_1"}
    )
    assert headers["Stripe-Version"] == "2026-05-27.dahlia"
    assert headers["Request-Id"].startswith("req_")


def test_plan_change_replaces_every_item_at_once(client):
    _, customer = clock_customer(client)
    prod = product(client)
    old = client.v1.prices.create(
        {
            "product": prod.id,
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "month"},
        }
    )
    new = client.v1.prices.create(
        {
            "product": prod.id,
            "currency": "usd",
            "unit_amount": 200,
            "recurring": {"interval": "month"},
        }
    )
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": old.id}]})
    item_id = sub["items"].data[0].id
    with pytest.raises(stripe.InvalidRequestError):  # nothing would be left: no change at all
        client.v1.subscriptions.update(sub.id, {"items": [{"id": item_id, "deleted": True}]})
    with pytest.raises(stripe.InvalidRequestError):  # a bad new price: no change at all
        client.v1.subscriptions.update(
            sub.id, {"items": [{"id": item_id, "deleted": True}, {"price": "price_nope"}]}
        )
    assert [i.id for i in client.v1.subscriptions.retrieve(sub.id)["items"].data] == [item_id]
    changed = client.v1.subscriptions.update(
        sub.id,
        {
            "items": [{"id": item_id, "deleted": True}, {"price": new.id}],
            "proration_behavior": "none",
        },
    )
    assert [i.price.id for i in changed["items"].data] == [new.id]
    # Deleting and re-adding the same price in one update is allowed too.
    again = client.v1.subscriptions.update(
        sub.id,
        {
            "items": [
                {"id": changed["items"].data[0].id, "deleted": True},
                {"price": new.id, "quantity": 2},
            ]
        },
    )
    assert [(i.price.id, i.quantity) for i in again["items"].data] == [(new.id, 2)]


def test_a_failed_create_leaves_nothing_behind(client, webhook_receiver):
    client.v1.webhook_endpoints.create({"url": webhook_receiver.url, "enabled_events": ["*"]})
    with pytest.raises(stripe.CardError):
        client.v1.customers.create(
            {"email": "d@example.com", "payment_method": "pm_card_chargeDeclined"}
        )
    assert client.v1.customers.list().data == []
    assert client.v1.events.list().data == []
    client.v1.products.create({"name": "after"})
    webhook_receiver.wait_for(lambda d: len(d) == 1)
    assert [d["type"] for d in webhook_receiver.deliveries] == ["product.created"]
