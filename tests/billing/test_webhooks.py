"""Signed deliveries from the emulator drive account status through dj-stripe."""

import json
import time
from datetime import timedelta

import pytest
import requests
import stripe
import time_machine
from django.utils import timezone
from djstripe.models import Event, WebhookEventTrigger

from billing.access import account_may_use_product
from billing.models import Account
from billing.services.accounts import account_create, accounts_suspend_overdue
from billing.services.subscriptions import subscription_create
from billing.services.webhook_endpoints import webhook_endpoint_register
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _status(account: Account) -> str:
    account.refresh_from_db()
    return account.status


@pytest.fixture
def endpoint(live_server, stripe_emulator):
    return webhook_endpoint_register(base_url=live_server.url)


@pytest.fixture
def failing_account(endpoint, demo_catalog):
    """An account whose card is declined: subscribing to Pro ($99 in advance) fails."""
    account = account_create(name="Declined Co", billing_email="ap@declined.example")
    subscription_create(
        account=account, plan=demo_catalog["pro"], payment_method="pm_card_chargeCustomerFail"
    )
    wait_for(lambda: _status(account) == "past_due", timeout=60, what="past_due")
    return account


def _signed(body: str, secret: str, *, at: int | None = None) -> dict[str, str]:
    t = at or int(time.time())
    sig = stripe.WebhookSignature._compute_signature(f"{t}.{body}", secret)
    return {"Stripe-Signature": f"t={t},v1={sig}", "Content-Type": "application/json"}


def test_payment_failed_delivery_makes_account_past_due(failing_account, endpoint):
    failed = Event.objects.get(type="invoice.payment_failed")
    assert failed.stripe_data["data"]["object"]["customer"] == (
        failing_account.djstripe_customers.get().id
    )
    assert failing_account.past_due_since is not None
    # Within the grace period the account can still use the product.
    assert account_may_use_product(failing_account)
    # Every delivery to this test's endpoint passed dj-stripe's signature check. (The
    # live server outlives the test: a delivery still in flight from an earlier test's
    # endpoint, long gone from the database, may land during this one and be refused.)
    ours = WebhookEventTrigger.objects.filter(webhook_endpoint=endpoint)
    assert ours.filter(valid=False).count() == 0
    assert ours.filter(valid=True).count() >= 1


def test_tampered_signature_is_rejected_and_changes_nothing(failing_account, endpoint):
    failed = Event.objects.get(type="invoice.payment_failed")
    body = json.dumps({**failed.stripe_data, "id": "evt_forged", "type": "invoice.paid"})
    headers = _signed(body, endpoint.secret)
    tampered = body.replace("invoice.paid", "invoice.paid ")  # signed body != sent body
    response = requests.post(endpoint.url, data=tampered, headers=headers, timeout=10)
    assert response.status_code == 400
    wrong_key = requests.post(
        endpoint.url, data=body, headers=_signed(body, "whsec_not_the_secret"), timeout=10
    )
    assert wrong_key.status_code == 400
    assert _status(failing_account) == "past_due"
    assert not Event.objects.filter(id="evt_forged").exists()


def test_same_event_delivered_twice_has_one_effect(failing_account, endpoint):
    failed = Event.objects.get(type="invoice.payment_failed")
    failing_account.refresh_from_db()
    before = (
        failing_account.status,
        failing_account.past_due_since,
        failing_account.status_changed_at,
    )
    body = json.dumps(failed.stripe_data)
    for _ in range(2):
        response = requests.post(
            endpoint.url, data=body, headers=_signed(body, endpoint.secret), timeout=10
        )
        assert response.status_code == 200
    failing_account.refresh_from_db()
    after = (
        failing_account.status,
        failing_account.past_due_since,
        failing_account.status_changed_at,
    )
    assert after == before
    assert Event.objects.filter(id=failed.id).count() == 1


def test_out_of_order_older_event_cannot_undo_a_newer_one(failing_account, endpoint):
    """An invoice.paid newer than the failure reactivates; the older failure, replayed
    under a new event id (as if first delivered late), is ignored."""
    failed = Event.objects.get(type="invoice.payment_failed")
    created = failed.stripe_data["created"]
    paid = {
        **failed.stripe_data,
        "id": "evt_paid_later",
        "type": "invoice.paid",
        "created": created + 60,
    }
    late_failure = {**failed.stripe_data, "id": "evt_failed_late", "created": created + 30}
    for payload in (paid, late_failure):
        body = json.dumps(payload)
        response = requests.post(
            endpoint.url, data=body, headers=_signed(body, endpoint.secret), timeout=10
        )
        assert response.status_code == 200, response.content
    assert _status(failing_account) == "active"


def test_past_due_is_suspended_after_the_grace_period(failing_account, settings):
    settings.BILLING_PAST_DUE_GRACE_HOURS = 72
    since = failing_account.past_due_since
    with time_machine.travel(since + timedelta(hours=71), tick=False):
        assert accounts_suspend_overdue() == 0
    assert _status(failing_account) == "past_due"
    with time_machine.travel(since + timedelta(hours=72, seconds=1), tick=False):
        assert accounts_suspend_overdue() == 1
    assert _status(failing_account) == "suspended"
    assert not account_may_use_product(failing_account)
    assert timezone.now() > since


@pytest.mark.django_db
@pytest.mark.parametrize("event_type", ["invoice.paid", "invoice.payment_failed"])
def test_a_credit_purchase_invoice_does_not_move_the_account_status(event_type):
    """A past-due customer who buys credits is still past due (their subscription invoice
    is unpaid); a declined credit purchase does not make an active account past due."""
    from types import SimpleNamespace

    from billing.models import PendingAccountEvent
    from billing.webhooks import record_account_status_event

    def event(metadata):
        data = {"object": {"object": "invoice", "id": "in_1", "status": "paid",
                           "customer": "cus_1", "metadata": metadata}}  # fmt: skip
        return SimpleNamespace(id=f"evt_{len(metadata)}", type=event_type,
                               stripe_data={"data": data})  # fmt: skip

    record_account_status_event(sender=None, event=event({"meterdesk_credit_grant": "7"}))
    assert not PendingAccountEvent.objects.exists()
    # Any other invoice still moves it (one inbox row).
    record_account_status_event(sender=None, event=event({}))
    assert PendingAccountEvent.objects.count() == 1
