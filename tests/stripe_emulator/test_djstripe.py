"""dj-stripe 2.11 against the emulator (issue 3, acceptance 4): ``djstripe_sync_models``
mirrors what the emulator holds, a webhook endpoint made in dj-stripe's admin is created
in the emulator, and the emulator's signed deliveries become dj-stripe ``Event`` rows.

dj-stripe's admin refuses loopback URLs, so the endpoint is registered with a public
base URL and the emulator forwards its deliveries to the live server (like ``stripe
listen --forward-to``; ``POST /_emulator/webhook_forwarding``).
"""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from djstripe import models as djstripe_models

from billing.services.accounts import account_create
from billing.services.subscriptions import subscription_create
from stripe_emulator.testing import control
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PUBLIC = "https://meterdesk.example"
SYNCED = ("Account", "Customer", "Product", "Price", "Subscription", "Invoice")


def _all(listing) -> list:
    return list(listing.auto_paging_iter())


@pytest.fixture
def pro_subscription(demo_catalog, stripe_emulator):
    account = account_create(name="Acme", billing_email="billing@acme.example")
    return account, subscription_create(account=account, plan=demo_catalog["pro"])


def test_sync_models_mirrors_the_emulator(pro_subscription, stripe_client):
    account, subscription = pro_subscription
    # Start from an empty mirror: everything below comes from the command.
    for model in (
        djstripe_models.Invoice,
        djstripe_models.Subscription,
        djstripe_models.Customer,
        djstripe_models.Price,
        djstripe_models.Product,
        djstripe_models.Account,
    ):
        model.objects.all().delete()

    out = io.StringIO()
    call_command("djstripe_sync_models", *SYNCED, "--fail-on-error", stdout=out, stderr=out)

    remote_account = stripe_client.v1.accounts.retrieve_current()
    assert list(djstripe_models.Account.objects.values_list("id", flat=True)) == [remote_account.id]

    products = _all(stripe_client.v1.products.list({"limit": 100}))
    assert len(products) == 5  # starter, bulk, growth, scale, pro
    assert set(djstripe_models.Product.objects.values_list("id", flat=True)) == {
        p.id for p in products
    }

    prices = _all(stripe_client.v1.prices.list({"limit": 100}))
    assert len(prices) == 9  # demo.toml: 7 in usd, starter also in kwd, scale also in jpy
    mirrored = {p.id: p for p in djstripe_models.Price.objects.all()}
    assert set(mirrored) == {p.id for p in prices}
    for price in prices:
        assert mirrored[price.id].product_id == price.product
        assert mirrored[price.id].lookup_key == price.lookup_key
        assert mirrored[price.id].stripe_data["unit_amount"] == price.unit_amount
    pro_base = djstripe_models.Price.objects.get(lookup_key="pro_base")
    assert pro_base.stripe_data["unit_amount"] == 9900
    assert pro_base.stripe_data["recurring"]["usage_type"] == "licensed"

    customer = djstripe_models.Customer.objects.get()
    assert customer.id == subscription.customer_id
    assert customer.email == "billing@acme.example"
    assert customer.subscriber == account  # linked back through its metadata

    mirrored_sub = djstripe_models.Subscription.objects.get()
    assert mirrored_sub.id == subscription.id
    assert mirrored_sub.customer_id == customer.id
    assert mirrored_sub.stripe_data["status"] == "active"
    assert {i.price.id for i in mirrored_sub.items.all()} == {
        p.id for p in prices if (p.lookup_key or "").startswith("pro_")
    }

    (invoice,) = djstripe_models.Invoice.objects.all()
    (remote_invoice,) = stripe_client.v1.invoices.list({"customer": customer.id}).data
    assert invoice.id == remote_invoice.id
    # dahlia names the subscription under parent.subscription_details; the top-level
    # invoice.subscription dj-stripe 2.11 fills its foreign key from is gone (basil), so
    # that key stays empty with real Stripe and Meterdesk must not read it.
    details = invoice.stripe_data["parent"]["subscription_details"]
    assert details["subscription"] == subscription.id
    assert invoice.subscription_id is None and "subscription" not in invoice.stripe_data
    assert invoice.customer_id == customer.id
    # $99 base fee in advance; the metered items (API calls, seats) bill in arrears, and a
    # flexible-mode subscription (the default) leaves them off its first invoice.
    assert invoice.stripe_data["billing_reason"] == "subscription_create"
    assert invoice.stripe_data["status"] == "paid"
    assert invoice.stripe_data["total"] == 9900
    assert invoice.stripe_data["amount_paid"] == 9900
    lines = sorted(line["amount"] for line in invoice.stripe_data["lines"]["data"])
    assert lines == [9900]


def _admin_create_endpoint(admin_client) -> djstripe_models.WebhookEndpoint:
    add_url = reverse("admin:djstripe_webhookendpoint_add")
    page = admin_client.get(add_url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert "base_url" in form.fields
    response = admin_client.post(
        add_url,
        {
            "enabled_events": ["*"],
            "base_url": PUBLIC,
            "api_version": settings.STRIPE_API_VERSION,
            "djstripe_validation_method": "verify_signature",
            "djstripe_tolerance": 300,
            "metadata": "{}",
        },
    )
    errors = response.context["adminform"].form.errors if response.context else None
    assert response.status_code == 302, errors
    return djstripe_models.WebhookEndpoint.objects.get()


def test_endpoint_from_the_admin_receives_signed_deliveries(
    admin_client, live_server, demo_catalog, stripe_client, stripe_emulator
):
    endpoint = _admin_create_endpoint(admin_client)
    expected_url = f"{PUBLIC}/stripe/webhook/{endpoint.djstripe_uuid}/"
    assert endpoint.url == expected_url
    assert endpoint.secret.startswith("whsec_")
    (remote,) = stripe_client.v1.webhook_endpoints.list().data
    assert (remote.id, remote.url, remote.enabled_events) == (endpoint.id, expected_url, ["*"])
    assert remote.metadata["djstripe_uuid"] == str(endpoint.djstripe_uuid)

    control(
        stripe_emulator, "/_emulator/webhook_forwarding", {"from": PUBLIC, "to": live_server.url}
    )
    before = {e.id for e in _all(stripe_client.v1.events.list({"limit": 100}))}

    account = account_create(name="Hooked", billing_email="ap@hooked.example")
    subscription_create(account=account, plan=demo_catalog["pro"])

    def since_endpoint() -> dict[str, str]:
        """The emulator's events since the endpoint exists, id -> type."""
        events = _all(stripe_client.v1.events.list({"limit": 100}))
        return {e.id: e.type for e in events if e.id not in before}

    def all_landed():
        # dj-stripe stores the Event while processing and marks the trigger processed
        # after it: wait for the trigger too, or a loaded machine sees it half done.
        expected = since_endpoint()
        landed = djstripe_models.Event.objects.filter(id__in=expected).count()
        processed = djstripe_models.WebhookEventTrigger.objects.filter(
            webhook_endpoint=endpoint, event_id__in=expected, processed=True
        ).count()
        return expected if landed == processed == len(expected) else None

    emitted = wait_for(all_landed, timeout=60, what="the emulator's events as dj-stripe Events")
    assert {
        "customer.created",
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
    } <= set(emitted.values())
    triggers = djstripe_models.WebhookEventTrigger.objects.filter(webhook_endpoint=endpoint)
    assert triggers.count() == len(emitted)
    assert all(t.valid and t.processed and not t.exception for t in triggers)
    assert {t.event_id for t in triggers} == set(emitted)
    assert dict(djstripe_models.Event.objects.values_list("id", "type")) == emitted

    # Every attempt went to the live server, under the endpoint's own path, and was
    # answered 200 (the emulator logs an attempt once the answer is back).
    def attempts_logged():
        attempts = control(stripe_emulator, "/_emulator/webhook_deliveries")["data"]
        return attempts if {a["event"] for a in attempts} == set(emitted) else None

    attempts = wait_for(attempts_logged, timeout=5, what="the emulator's delivery log")
    assert {a["url"] for a in attempts} == {f"{live_server.url}{endpoint.url[len(PUBLIC) :]}"}
    assert [a["status"] for a in attempts] == [200] * len(emitted)


def test_delivery_signed_with_another_secret_is_rejected(
    admin_client, live_server, stripe_client, stripe_emulator
):
    endpoint = _admin_create_endpoint(admin_client)
    control(
        stripe_emulator, "/_emulator/webhook_forwarding", {"from": PUBLIC, "to": live_server.url}
    )
    # The real endpoint is switched off in the emulator; an impostor registered for the
    # same dj-stripe URL signs with its own secret, which dj-stripe does not know.
    stripe_client.v1.webhook_endpoints.update(endpoint.id, {"disabled": True})
    impostor = stripe_client.v1.webhook_endpoints.create(
        {"url": endpoint.url, "enabled_events": ["product.created"]}
    )
    assert impostor.secret != endpoint.secret

    product = stripe_client.v1.products.create({"name": "Unsigned"})
    (event,) = stripe_client.v1.events.list({"type": "product.created"}).data

    def rejected():
        attempts = control(stripe_emulator, "/_emulator/webhook_deliveries")["data"]
        return [a for a in attempts if a["event"] == event.id and a["status"] == 400]

    wait_for(rejected, timeout=60, what="the impostor's delivery to be refused")
    stripe_client.v1.webhook_endpoints.delete(impostor.id)  # stop its retries

    triggers = djstripe_models.WebhookEventTrigger.objects.filter(webhook_endpoint=endpoint)
    assert triggers.exists()  # one per attempt that reached dj-stripe before the delete
    for trigger in triggers:
        assert event.id in trigger.body
        assert (trigger.valid, trigger.processed, trigger.event_id) == (False, False, None)
    assert not djstripe_models.Event.objects.filter(id=event.id).exists()
    assert not djstripe_models.Product.objects.filter(id=product.id).exists()
