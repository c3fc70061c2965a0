"""The past-due banner: amount due, open invoices with their hosted pay links, the
suspension deadline and the portal; suspended wording; the poll carries it out of band."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from billing.mirror.invoices import open_invoices_for_account
from billing.models import Account, Membership
from billing.past_due import past_due_notice_for_account
from billing.services.accounts import account_create
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from tests.factories import make_user

pytestmark = pytest.mark.django_db

FAILED_AT = datetime(2026, 10, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def declined(stripe_client, demo_catalog):
    """Pro with a card whose charges fail: the first invoice ($99.00 base in advance, the
    metered lines at $0) stays open; marked past due as the webhook would."""
    account = account_create(name="Declined Co", billing_email="ap@declined.example")
    subscription_create(
        account=account, plan=demo_catalog["pro"], payment_method="pm_card_chargeCustomerFail"
    )
    stripe_sync_everything(client=stripe_client)
    Account.objects.filter(pk=account.pk).update(
        status=Account.Status.PAST_DUE, past_due_since=FAILED_AT
    )
    account.refresh_from_db()
    return account


def test_open_invoices_and_deadline(declined, settings):
    settings.BILLING_PAST_DUE_GRACE_HOURS = 72
    [invoice] = open_invoices_for_account(account=declined)
    # Pro's first invoice: $99.00 base fee in advance + API calls 0 + seats 0 = 9,900¢.
    assert (invoice.status, invoice.amount_remaining, invoice.currency) == ("open", 9900, "usd")
    assert invoice.hosted_invoice_url.endswith(f"/invoices/{invoice.id}")
    notice = past_due_notice_for_account(account=declined)
    assert notice.amount_due == 9900 and notice.invoices == (invoice,)
    # Oct 1 09:30 UTC + 72 h = Oct 4 09:30 UTC.
    assert notice.suspends_at == datetime(2026, 10, 4, 9, 30, tzinfo=UTC)
    Account.objects.filter(pk=declined.pk).update(status=Account.Status.ACTIVE)
    declined.refresh_from_db()
    assert past_due_notice_for_account(account=declined) is None


def test_banner_for_billing_and_member(client, declined):
    [invoice] = open_invoices_for_account(account=declined)
    client.force_login(make_user(declined, "bea", Membership.Role.BILLING))
    html = client.get(reverse("dashboards:home")).content.decode()
    banner = html[
        html.index('id="account-status"') : html.index(
            "</form>", html.index("update-payment-method")
        )
    ]
    assert 'Payment failed — <span data-testid="amount-due">$99.00</span> due.' in banner
    assert "Pay by <time" in banner and ">Oct 4, 2026, 09:30 UTC</time>" in banner
    assert f'href="{invoice.hosted_invoice_url}" target="_blank"' in banner
    assert f"Invoice {invoice.number} · <strong>$99.00</strong>" in banner
    assert f'action="{reverse("billing:portal")}"' in banner and "Update payment method" in banner

    client.force_login(make_user(declined, "max", Membership.Role.MEMBER))
    member = client.get(reverse("dashboards:home")).content.decode()
    assert "$99.00</span> due" in member and 'data-testid="pay-invoice"' not in member
    assert "Ask an owner or billing member of Declined Co to pay before then." in member


def test_suspended_says_what_restores_it(client, declined):
    Account.objects.filter(pk=declined.pk).update(status=Account.Status.SUSPENDED)
    client.force_login(make_user(declined, "sue"))
    html = client.get(reverse("dashboards:home")).content.decode()
    assert "<strong>Service suspended.</strong>" in html
    assert 'Pay <strong data-testid="amount-due">$99.00</strong> to restore it' in html
    assert "Pay by" not in html and 'data-testid="pay-invoice"' in html


def test_poll_carries_the_banner_out_of_band(client, declined):
    client.force_login(make_user(declined, "pia"))
    poll = client.get(reverse("dashboards:home"), HTTP_HX_REQUEST="true").content.decode()
    assert poll.count('id="account-status"') == 1
    assert '<div id="account-status" aria-live="polite" hx-swap-oob="true">' in poll
    assert "$99.00</span> due" in poll
    # Paid (the webhook made the account active): the same poll empties the banner.
    Account.objects.filter(pk=declined.pk).update(status=Account.Status.ACTIVE, past_due_since=None)
    poll = client.get(reverse("dashboards:home"), HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-swap-oob="true">' in poll and "status-banner" not in poll
