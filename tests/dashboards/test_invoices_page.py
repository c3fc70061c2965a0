from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from billing.services.accounts import account_create, account_ensure_stripe_customer
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_invoices_list_amounts_periods_status_links_and_usage_lines(
    client, stripe_client, demo_catalog
):
    start = datetime(2026, 9, 1, tzinfo=UTC)
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(start.timestamp())}
    )
    account = account_create(name="Clocked", billing_email="ap@clocked.example")
    customer = account_ensure_stripe_customer(
        account=account, payment_method="pm_card_visa", test_clock=clock.id
    )
    subscription_create(account=account, plan=demo_catalog["pro"])
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=start + timedelta(days=5))
    stripe_client.v1.billing.meter_events.create(
        {
            "event_name": "api_calls",
            "identifier": "calls-sept",
            "timestamp": int((start + timedelta(days=3)).timestamp()),
            "payload": {"stripe_customer_id": customer.id, "value": "12345"},
        }
    )
    test_clock_advance(  # past the period end and the hour the renewal is a draft
        client=stripe_client, clock_id=clock.id, to=datetime(2026, 10, 1, 1, 1, tzinfo=UTC)
    )
    stripe_sync_everything(client=stripe_client)

    client.force_login(make_user(account, "ivy"))
    html = client.get(reverse("dashboards:invoices")).content.decode()
    # First invoice: $99.00 base in advance. Renewal: $99.00 for October in advance plus
    # September's calls in arrears: (12,345 - 10,000) x 0.2¢ = 469¢ -> $103.69 in all.
    assert html.count('class="pill pill-paid"') == 2
    assert "$99.00" in html and "$103.69" in html
    renewal = html[html.index("$103.69") :]
    # The renewal's own period (Stripe's: the period that closed) and each line's: the
    # base fee for October in advance, the calls for September in arrears.
    assert '<dd data-testid="invoice-period">Sep 1 – Oct 1, 2026</dd>' in renewal
    base = renewal[renewal.index('data-testid="line-base_fee"') :]
    assert "Pro base fee" in base[:400] and "Oct 1 – Nov 1, 2026" in base[:600]
    metered = renewal[renewal.index('data-testid="line-metered"') :]
    assert "API calls: 12,345 calls" in metered[:400]
    assert "Sep 1 – Oct 1, 2026" in metered[:600] and "$4.69" in metered[:900]
    assert "View invoice" in html


def test_a_renewal_draft_says_when_it_finalizes_and_its_usage_is_not_final(
    client, stripe_client, demo_catalog, settings
):
    """Right after the period end Stripe's renewal invoice is a draft for an hour; the
    page says so (not "paid", not a bare "draft") and marks its usage lines as not final;
    after the hour it is paid and the marks are gone."""
    settings.TIME_ZONE = "UTC"
    start = datetime(2026, 9, 1, tzinfo=UTC)
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(start.timestamp())}
    )
    account = account_create(name="Drafty", billing_email="ap@drafty.example")
    customer = account_ensure_stripe_customer(
        account=account, payment_method="pm_card_visa", test_clock=clock.id
    )
    subscription_create(account=account, plan=demo_catalog["pro"])
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=start + timedelta(days=5))
    stripe_client.v1.billing.meter_events.create(
        {
            "event_name": "api_calls",
            "identifier": "calls-sept-draft",
            "timestamp": int((start + timedelta(days=3)).timestamp()),
            "payload": {"stripe_customer_id": customer.id, "value": "12345"},
        }
    )
    october = datetime(2026, 10, 1, tzinfo=UTC)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=october + timedelta(minutes=1))
    stripe_sync_everything(client=stripe_client)
    client.force_login(make_user(account, "dora"))

    html = client.get(reverse("dashboards:invoices")).content.decode()
    assert html.count('class="pill pill-paid"') == 1  # only the first invoice
    assert 'data-testid="draft"' in html
    # Finalizes an hour after the period end: Oct 1, 01:00 UTC.
    assert "— finalizes at <time" in html and "Oct 1, 01:00 UTC" in html
    assert 'data-testid="usage-not-final"' in html
    assert "$4.69 (so far)" in html and "API calls: 12,345 calls" in html
    assert "Total so far" in html  # the breakdown's total is not final either

    test_clock_advance(client=stripe_client, clock_id=clock.id, to=october + timedelta(hours=1))
    stripe_sync_everything(client=stripe_client)
    html = client.get(reverse("dashboards:invoices")).content.decode()
    assert html.count('class="pill pill-paid"') == 2
    assert 'data-testid="draft"' not in html and "usage-not-final" not in html
    assert "API calls: 12,345 calls" in html and "(so far)" not in html
    assert '<td class="num" data-col="total">$4.69</td>' in html
