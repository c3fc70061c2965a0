"""stripe_sync_everything mirrors customers and subscriptions on test clocks too: Stripe
lists them only when asked for their clock (issue 13), so the sync asks for each."""

import pytest
from djstripe.models import Customer, Subscription

from billing.services.accounts import account_create
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create

pytestmark = pytest.mark.django_db


def test_sync_mirrors_objects_with_and_without_a_test_clock(stripe_client, demo_catalog):
    clock = stripe_client.v1.test_helpers.test_clocks.create({"frozen_time": 1767225600})
    on_clock = account_create(name="Clocked Co", billing_email="c@example.com")
    plain = account_create(name="Plain Co", billing_email="p@example.com")
    subscription_create(account=on_clock, plan=demo_catalog["pro"], test_clock=clock.id)
    subscription_create(account=plain, plan=demo_catalog["pro"])
    Customer.objects.all().delete()  # what a fresh mirror sees
    Subscription.objects.all().delete()
    # Without test_clock Stripe lists only the plain customer and subscription.
    assert len(stripe_client.v1.customers.list().data) == 1
    assert len(stripe_client.v1.subscriptions.list().data) == 1

    report = stripe_sync_everything()

    assert not report.errors, report.errors
    assert (report.counts["customers"], report.counts["subscriptions"]) == (2, 2)
    names = set(Customer.objects.values_list("subscriber__name", flat=True))
    assert names == {"Clocked Co", "Plain Co"}
    assert Subscription.objects.count() == 2
