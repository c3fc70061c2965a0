"""dj-stripe 2.11's Invoice admin shows a ``paid`` column read from ``stripe_data["paid"]``,
a field API basil removed (issue 13): with real Stripe its changelist and change pages
raised KeyError. Billing re-registers it reading dahlia's ``status``."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from djstripe.models import Invoice

from billing.services.accounts import account_create
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def test_invoice_admin_pages_work_with_dahlia_invoices(staff_client, demo_catalog):
    account = account_create(name="Initech", billing_email="ap@initech.example")
    subscription_create(account=account, plan=demo_catalog["pro"])
    assert not stripe_sync_everything().errors
    (invoice,) = Invoice.objects.all()
    assert "paid" not in invoice.stripe_data and invoice.stripe_data["status"] == "paid"

    listing = staff_client.get(reverse("admin:djstripe_invoice_changelist"))
    assert listing.status_code == 200
    assert invoice.id in listing.content.decode()
    change = staff_client.get(reverse("admin:djstripe_invoice_change", args=[invoice.pk]))
    assert change.status_code == 200
