"""Acceptance 1: every object type the emulator serves has every top-level key of the same
type in Stripe's fixtures (``fixtures/fixtures3.json``, vendored with its MIT license from
Stripe's public OpenAPI repository), with a compatible JSON type."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from stripe_emulator.testing import reset

from .conftest import make_client
from .helpers import T0, advance, clock_customer, meter, product

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "fixtures3.json"
SERVED = [
    "account",
    "billing.meter",
    "billing.meter_event",
    "billing.meter_event_adjustment",
    "billing.meter_event_summary",
    "billing_portal.configuration",
    "billing_portal.session",
    "customer",
    "deleted_customer",
    "deleted_product",
    "deleted_subscription_item",
    "deleted_test_helpers.test_clock",
    "deleted_webhook_endpoint",
    "event",
    "invoice",
    "line_item",
    "payment_method",
    "plan",
    "price",
    "product",
    "subscription",
    "subscription_item",
    "test_helpers.test_clock",
    "webhook_endpoint",
]


# Keys the vendored fixtures still carry but API 2025-03-31.basil and later (the dahlia
# API this app pins) removed, so the emulator does not serve them: stripe-python 15's
# Invoice class has no ``subscription`` (it is ``parent.subscription_details.subscription``;
# changelog "Invoicing resources now specify how they were generated",
# https://docs.stripe.com/changelog/basil/2025-03-31/adds-new-parent-field-to-invoicing-objects).
REMOVED_SINCE_BASIL = {"invoice": {"subscription"}}


def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def compatible(expected, actual) -> bool:
    """Same JSON type; null is compatible with anything (nullable fields)."""
    return None in (expected, actual) or json_type(expected) == json_type(actual)


def call(base_url: str, method: str, path: str, data: dict | None = None) -> dict:
    """Raw HTTP, so that what is checked is the emulator's JSON, not the client's view."""
    from urllib.parse import urlencode

    body = urlencode(data or {}).encode() if method == "POST" else None
    request = urllib.request.Request(
        base_url + path,
        data=body,
        method=method,
        headers={"Authorization": "Bearer sk_test_shapes"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def served(emulator_url) -> dict[str, dict]:
    """One object of every served type, as raw JSON."""
    reset(emulator_url)
    client = make_client(emulator_url)
    get = lambda path: call(emulator_url, "GET", path)  # noqa: E731
    delete = lambda path: call(emulator_url, "DELETE", path)  # noqa: E731
    out = {"account": get("/v1/account")}

    endpoint = call(
        emulator_url,
        "POST",
        "/v1/webhook_endpoints",
        {"url": "http://127.0.0.1:9/hook", "enabled_events[0]": "*"},
    )
    out["webhook_endpoint"] = endpoint
    clock, customer = clock_customer(client)
    out["test_helpers.test_clock"] = get(f"/v1/test_helpers/test_clocks/{clock.id}")
    out["customer"] = get(f"/v1/customers/{customer.id}")
    pm = customer.invoice_settings.default_payment_method
    out["payment_method"] = get(f"/v1/payment_methods/{pm}")
    m = meter(client, "shape_calls")
    out["billing.meter"] = get(f"/v1/billing/meters/{m.id}")
    prod = product(client)
    price = client.v1.prices.create(
        {
            "product": prod.id,
            "currency": "usd",
            "unit_amount": 2000,
            "recurring": {"interval": "month"},
        }
    )
    metered = client.v1.prices.create(
        {
            "product": prod.id,
            "currency": "usd",
            "unit_amount": 1,
            "recurring": {"interval": "month", "usage_type": "metered", "meter": m.id},
        }
    )
    out["product"] = get(f"/v1/products/{prod.id}")
    out["price"] = get(f"/v1/prices/{price.id}")
    out["plan"] = get(f"/v1/plans/{price.id}")
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    out["subscription"] = get(f"/v1/subscriptions/{sub.id}")
    out["subscription_item"] = get(f"/v1/subscription_items/{sub['items'].data[0].id}")
    extra = client.v1.subscription_items.create({"subscription": sub.id, "price": metered.id})
    out["billing.meter_event"] = call(
        emulator_url,
        "POST",
        "/v1/billing/meter_events",
        {
            "event_name": "shape_calls",
            "payload[stripe_customer_id]": customer.id,
            "payload[value]": "25",
            "identifier": "shape-1",
        },
    )
    out["billing.meter_event_adjustment"] = call(
        emulator_url,
        "POST",
        "/v1/billing/meter_event_adjustments",
        {"event_name": "shape_calls", "type": "cancel", "cancel[identifier]": "shape-1"},
    )
    out["billing.meter_event_summary"] = get(
        f"/v1/billing/meters/{m.id}/event_summaries?customer={customer.id}"
        f"&start_time={T0}&end_time={T0 + 3600}"
    )["data"][0]
    advance(client, clock.id, T0 + 31 * 86400)
    invoice = client.v1.invoices.list({"subscription": sub.id}).data[0]
    out["invoice"] = get(f"/v1/invoices/{invoice.id}")
    out["line_item"] = get(f"/v1/invoices/{invoice.id}/lines")["data"][0]
    out["event"] = get("/v1/events?limit=1")["data"][0]
    config = call(
        emulator_url,
        "POST",
        "/v1/billing_portal/configurations",
        {  # features is required by Stripe (and by the emulator's parameter rules)
            "default_return_url": "https://example.com/account",
            "features[invoice_history][enabled]": "true",
        },
    )
    out["billing_portal.configuration"] = get(f"/v1/billing_portal/configurations/{config['id']}")
    out["billing_portal.session"] = call(
        emulator_url, "POST", "/v1/billing_portal/sessions", {"customer": customer.id}
    )
    out["deleted_subscription_item"] = delete(f"/v1/subscription_items/{extra.id}")
    out["deleted_webhook_endpoint"] = delete(f"/v1/webhook_endpoints/{endpoint['id']}")
    lonely = product(client, "No prices")
    out["deleted_product"] = delete(f"/v1/products/{lonely.id}")
    other = client.v1.customers.create({"email": "gone@example.com"})
    out["deleted_customer"] = delete(f"/v1/customers/{other.id}")
    out["deleted_test_helpers.test_clock"] = delete(f"/v1/test_helpers/test_clocks/{clock.id}")
    return out


@pytest.mark.parametrize("object_type", SERVED)
def test_every_fixture_key_is_served_with_a_compatible_type(served, object_type):
    expected = json.loads(FIXTURES.read_text())["resources"][object_type]
    for key in REMOVED_SINCE_BASIL.get(object_type, ()):
        expected.pop(key)
        assert key not in served[object_type], f"{object_type}.{key} was removed in basil"
    actual = served[object_type]
    missing = sorted(set(expected) - set(actual))
    assert not missing, f"{object_type} lacks {missing}"
    wrong = {
        key: (json_type(expected[key]), json_type(actual[key]))
        for key in expected
        if not compatible(expected[key], actual[key])
    }
    assert not wrong, f"{object_type}: (fixture type, emulator type) {wrong}"
    assert actual.get("object", expected.get("object")) == expected.get("object")
