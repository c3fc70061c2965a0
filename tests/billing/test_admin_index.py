"""The admin staff open (issue 14, item 10): Meterdesk's models first, dj-stripe's unused
ones gone and the rest under one "Stripe mirror (dj-stripe)" section, readable names,
narrow reconciliation / usage-report lists and a "View dashboard as customer" link."""

import re

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse
from djstripe import models as djstripe_models

from billing.models import Account
from usage.models import ReconciliationResult

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(get_user_model().objects.create_superuser("boss", "b@x.test", "pw"))
    return client


def test_index_shows_meterdesk_first_and_one_stripe_mirror_section(staff_client):
    html = staff_client.get(reverse("admin:index")).content.decode()
    captions = re.findall(r'<caption>\s*<a [^>]*class="section"[^>]*>([^<]+)</a>', html)
    assert captions[:3] == ["Billing", "Usage", "Stripe mirror (dj-stripe)"], captions
    billing = html.index('class="app-billing')
    usage = html.index('class="app-usage')
    assert billing < usage < html.index('class="app-djstripe')
    # Within the apps: accounts, meters, plans; events, reports, reconciliation, alerts.
    order = [html.index(f">{name}</a>") for name in ("Accounts", "Meters", "Plans")]
    order += [
        html.index(f">{name}</a>", usage)
        for name in (
            "Usage events",
            "Usage reports",
            "Reconciliation results",
            "Alert rules",
            "Alert deliveries",
        )
    ]
    assert order == sorted(order)
    assert "Alert deliverys" not in html
    assert 'id="meterdesk-reports"' in html  # the revenue report, above the apps


def test_only_the_djstripe_models_meterdesk_uses_stay_registered():
    registered = {m.__name__ for m in admin.site._registry if m._meta.app_label == "djstripe"}
    assert registered == {
        "Customer", "Subscription", "Invoice", "Price", "Product", "Event",
        "WebhookEndpoint", "WebhookEventTrigger",
    }  # fmt: skip
    assert djstripe_models.Charge not in admin.site._registry


def test_account_list_and_change_page_link_to_the_dashboard_as_customer(staff_client):
    account = Account.objects.create(name="Acme Analytics", billing_email="a@acme.test")
    link = f'<a href="/dashboard/?account={account.pk}">View dashboard as customer</a>'
    listing = staff_client.get(reverse("admin:billing_account_changelist")).content.decode()
    assert link in listing
    change = reverse("admin:billing_account_change", args=[account.pk])
    assert link in staff_client.get(change).content.decode()


def test_reconciliation_list_has_account_names_and_short_columns(staff_client):
    from billing.models import Meter

    account = Account.objects.create(name="Acme Analytics", billing_email="a@acme.test")
    meter = Meter.objects.create(event_name="api_calls", display_name="API calls")
    from datetime import UTC, datetime

    ReconciliationResult.objects.create(
        account=account, meter=meter, period_start=datetime(2026, 10, 11, tzinfo=UTC),
        period_end=datetime(2026, 11, 11, tzinfo=UTC), ledger_value=10_500,
        stripe_value=10_400, difference=100, status="mismatch",
        suggested_action="Stripe has fewer events than the ledger: " + "x" * 200,
        checked_at=datetime(2026, 11, 12, 3, 0, tzinfo=UTC),
    )  # fmt: skip
    html = staff_client.get(reverse("admin:usage_reconciliationresult_changelist")).content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', html)
    assert headers == ["account_name", "meter_name", "period", "ledger", "stripe",
                       "difference", "too_late", "status", "action", "checked"]  # fmt: skip
    assert ">Acme Analytics<" in html and "cus_" not in html
    assert "Oct 11\u2013Nov 11 2026" in html
    assert "x" * 60 not in html  # the long action is cut in the list
