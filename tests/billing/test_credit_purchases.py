"""Paid credits are bought before they are granted: a one-off invoice for the purchase
price, charged to the card on file; the Stripe grant is made once that invoice is paid
(at once, through the ``invoice.paid`` webhook, or by the periodic pass when the webhook
is lost), never twice, and never when the invoice is voided. Objects are counted through
Stripe's API (the emulator). Every amount is worked by hand in a comment."""

from datetime import UTC, datetime, timedelta

import pytest
import stripe
import time_machine

from billing.models import Account, CreditGrant
from billing.services.accounts import account_ensure_stripe_customer
from billing.services.credits import (
    credit_grant_advance,
    credit_grant_create,
    credit_grant_retry,
    credit_grants_advance_stale,
)
from billing.services.webhook_endpoints import webhook_endpoint_register
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
Status = CreditGrant.Status
LATER = timedelta(minutes=6)  # past the periodic pass's 5 minutes


def _account(name: str, *, currency: str = "usd", card: str = "pm_card_visa") -> Account:
    account = Account.objects.create(name=name, billing_email="b@x.test", currency=currency)
    account_ensure_stripe_customer(account=account, payment_method=card)
    return account


def _customer(account) -> str:
    return account.djstripe_customers.get().id


def _counts(client, account) -> tuple[int, int, int]:
    """(invoices, invoice items, credit grants) Stripe has for the account's customer."""
    cus = _customer(account)
    return (
        len(client.v1.invoices.list({"customer": cus, "limit": 100}).data),
        len(client.v1.invoice_items.list({"customer": cus, "limit": 100}).data),
        len(client.v1.billing.credit_grants.list({"customer": cus, "limit": 100}).data),
    )


def _fresh(grant) -> CreditGrant:
    grant.refresh_from_db()
    return grant


def test_paid_grant_is_charged_then_granted(stripe_client, stripe_emulator):
    account = _account("Prepay Co")
    # $100.00 of credits sold for $90.00: 10,000 and 9,000 cents.
    grant = _fresh(
        credit_grant_create(
            account=account, name="Prepaid pack", category="paid", amount=10_000,
            purchase_amount=9_000,
        )
    )  # fmt: skip
    assert (grant.status, grant.last_error) == (Status.ACTIVE, "")
    invoice = stripe_client.v1.invoices.retrieve(grant.purchase_invoice_id)
    assert (invoice.status, invoice.total, invoice.amount_paid) == ("paid", 9_000, 9_000)
    assert (invoice.currency, invoice.collection_method) == ("usd", "charge_automatically")
    assert invoice.description == "Prepaid usage credits"
    assert invoice.metadata["meterdesk_credit_grant"] == str(grant.pk)
    [line] = stripe_client.v1.invoices.line_items.list(invoice.id).data
    assert (line.amount, line.description) == (9_000, "Prepaid usage credits")
    remote = stripe_client.v1.billing.credit_grants.retrieve(grant.stripe_id)
    assert (remote.category, remote.amount.monetary.value) == ("paid", 10_000)
    assert remote.metadata["meterdesk_grant"] == str(grant.pk)
    assert _counts(stripe_client, account) == (1, 1, 1)

    # Without a purchase price the customer pays the credits' face value: 5,000 cents.
    other = _fresh(credit_grant_create(account=account, name="Pack", category="paid", amount=5_000))
    assert (other.status, other.purchase_amount) == (Status.ACTIVE, 5_000)
    assert stripe_client.v1.invoices.retrieve(other.purchase_invoice_id).total == 5_000
    assert _counts(stripe_client, account) == (2, 2, 2)


def test_retries_make_one_invoice_one_item_and_one_grant(stripe_client, stripe_emulator):
    account = _account("Retry Co")
    grant = _fresh(credit_grant_create(account=account, name="P", category="paid", amount=2_000))
    invoice_id, grant_id = grant.purchase_invoice_id, grant.stripe_id
    # The task redelivered, staff's Retry, the periodic pass.
    credit_grant_advance(grant_id=grant.pk)
    credit_grant_retry(grant=grant)
    credit_grants_advance_stale(now=datetime.now(UTC) + LATER)
    # A worker that died before recording anything: the invoice and the grant are found
    # again by their metadata.
    CreditGrant.objects.filter(pk=grant.pk).update(
        status=Status.AWAITING_PAYMENT, purchase_invoice_id="", stripe_id=""
    )
    again = credit_grant_advance(grant_id=grant.pk)
    assert (again.status, again.purchase_invoice_id, again.stripe_id) == (
        Status.ACTIVE, invoice_id, grant_id,
    )  # fmt: skip
    assert _counts(stripe_client, account) == (1, 1, 1)


def test_after_a_day_the_invoice_is_found_by_its_metadata(
    stripe_client, stripe_emulator, monkeypatch
):
    from stripe._invoice_service import InvoiceService

    account = _account("Slow Co")
    grant = _fresh(credit_grant_create(account=account, name="P", category="paid", amount=800))
    invoice_id = grant.purchase_invoice_id
    CreditGrant.objects.filter(pk=grant.pk).update(
        status=Status.AWAITING_PAYMENT, purchase_invoice_id="", stripe_id=""
    )
    made = []
    monkeypatch.setattr(InvoiceService, "create", lambda *a, **k: made.append(a))
    # Two days on, Stripe has forgotten the idempotency key: no create is even tried.
    with time_machine.travel(datetime.now(UTC) + timedelta(days=2)):
        again = credit_grant_advance(grant_id=grant.pk)
    assert (again.status, again.purchase_invoice_id, made) == (Status.ACTIVE, invoice_id, [])
    assert _counts(stripe_client, account) == (1, 1, 1)


def test_stripe_unreachable_between_steps_resumes_where_it_stopped(
    stripe_client, stripe_emulator, monkeypatch
):
    from stripe._invoice_item_service import InvoiceItemService

    real = InvoiceItemService.create
    failures = [stripe.APIConnectionError("connection reset")]

    def create(self, params=None, options=None):
        if failures:
            raise failures.pop()
        return real(self, params, options)

    monkeypatch.setattr(InvoiceItemService, "create", create)
    account = _account("Flaky Co")
    grant = _fresh(credit_grant_create(account=account, name="P", category="paid", amount=3_000))
    # The invoice exists (a draft without its line); the grant waits for the next pass.
    assert (grant.status, grant.last_error) == (Status.AWAITING_PAYMENT, "connection reset")
    assert stripe_client.v1.invoices.retrieve(grant.purchase_invoice_id).status == "draft"
    assert _counts(stripe_client, account) == (1, 0, 0)
    assert credit_grants_advance_stale(now=datetime.now(UTC) + LATER) == 1
    grant = _fresh(grant)
    assert (grant.status, grant.last_error) == (Status.ACTIVE, "")
    invoice = stripe_client.v1.invoices.retrieve(grant.purchase_invoice_id)
    # One line of 3,000 cents, paid.
    assert (invoice.status, invoice.total) == ("paid", 3_000)
    assert _counts(stripe_client, account) == (1, 1, 1)


@pytest.fixture
def endpoint(live_server, stripe_emulator):
    return webhook_endpoint_register(base_url=live_server.url)


def test_declined_card_waits_and_invoice_paid_webhook_grants(stripe_client, endpoint):
    account = _account("Declined Co", card="pm_card_chargeCustomerFail")
    grant = _fresh(credit_grant_create(account=account, name="P", category="paid", amount=4_000))
    assert grant.status == Status.AWAITING_PAYMENT and "declined" in grant.last_error
    assert stripe_client.v1.invoices.retrieve(grant.purchase_invoice_id).status == "open"
    assert _counts(stripe_client, account) == (1, 1, 0)  # no credits without payment
    # The customer pays the open invoice with another card: Stripe sends invoice.paid.
    stripe_client.v1.invoices.pay(grant.purchase_invoice_id, {"payment_method": "pm_card_visa"})
    wait_for(lambda: _fresh(grant).status == Status.ACTIVE, timeout=20, what="grant active")
    grant = _fresh(grant)
    assert grant.last_error == ""
    remote = stripe_client.v1.billing.credit_grants.retrieve(grant.stripe_id)
    assert remote.amount.monetary.value == 4_000
    assert _counts(stripe_client, account) == (1, 1, 1)


def test_lost_webhook_is_caught_by_the_periodic_pass(stripe_client, stripe_emulator):
    account = _account("Quiet Co", card="pm_card_chargeCustomerFail")
    grant = _fresh(credit_grant_create(account=account, name="P", category="paid", amount=1_500))
    stripe_client.v1.invoices.pay(grant.purchase_invoice_id, {"payment_method": "pm_card_visa"})
    assert _fresh(grant).status == Status.AWAITING_PAYMENT  # no webhook endpoint here
    assert credit_grants_advance_stale() == 0  # checked 5 minutes after the last look
    assert credit_grants_advance_stale(now=datetime.now(UTC) + LATER) == 1
    assert _fresh(grant).status == Status.ACTIVE
    assert _counts(stripe_client, account) == (1, 1, 1)


def test_voided_purchase_invoice_cancels_the_grant(stripe_client, endpoint):
    account = _account("Void Co", card="pm_card_chargeCustomerFail")
    grant = _fresh(credit_grant_create(account=account, name="P", category="paid", amount=2_500))
    stripe_client.v1.invoices.void_invoice(grant.purchase_invoice_id)
    wait_for(lambda: _fresh(grant).status == Status.CANCELED, timeout=20, what="canceled")
    assert _fresh(grant).last_error == "The purchase invoice is void."
    credit_grants_advance_stale(now=datetime.now(UTC) + LATER)
    credit_grant_advance(grant_id=grant.pk)
    assert _fresh(grant).status == Status.CANCELED
    assert _counts(stripe_client, account) == (1, 1, 0)


def test_admin_sells_yen_credits_in_whole_yen(admin_client, stripe_client, stripe_emulator):
    account = _account("Yen KK", currency="jpy")
    response = admin_client.post(
        "/admin/billing/creditgrant/add/",
        {"account": account.pk, "category": "paid", "amount": "1234", "purchase_amount": "",
         "name": "Yen pack", "priority": "50", "effective_at_0": "", "effective_at_1": "",
         "expires_at_0": "", "expires_at_1": ""},
    )  # fmt: skip
    assert response.status_code == 302, response.context["adminform"].form.errors
    grant = CreditGrant.objects.get(account=account)
    # "1234" yen: JPY has no minor unit: 1,234 credits, charged ¥1,234.
    assert (grant.amount, grant.purchase_amount, grant.currency) == (1_234, 1_234, "jpy")
    assert grant.status == Status.ACTIVE
    invoice = stripe_client.v1.invoices.retrieve(grant.purchase_invoice_id)
    assert (invoice.currency, invoice.total, invoice.status) == ("jpy", 1_234, "paid")
    remote = stripe_client.v1.billing.credit_grants.retrieve(grant.stripe_id)
    assert (remote.amount.monetary.currency, remote.amount.monetary.value) == ("jpy", 1_234)
