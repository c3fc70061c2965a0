"""Staff find ledger rows by the Stripe customer id, through the billing mirror."""

import pytest

from billing.mirror.customers import customer_id_for_account
from billing.services.accounts import account_create
from billing.services.subscriptions import subscription_create
from tests.factories import ingest

pytestmark = pytest.mark.django_db


def test_usage_event_admin_search_by_customer_id(admin_client, pro_account, demo_catalog):
    other = account_create(name="Other Co", billing_email="o@example.com")
    subscription_create(account=other, plan=demo_catalog["starter"])
    ingest(customer_id_for_account(account=other), "api_calls", [1, 1], "other")
    customer = customer_id_for_account(account=pro_account)
    page = admin_client.get("/admin/usage/usageevent/", {"q": customer})
    assert page.status_code == 200
    # Acme's ledger: 10,500 API calls + 2 seat events; not Other Co's 2 events.
    assert page.context["cl"].queryset.count() == 10_502
    assert set(page.context["cl"].queryset.values_list("account_id", flat=True)) == {pro_account.pk}
    # Name search still works, and an unknown id finds nothing.
    assert (
        admin_client.get("/admin/usage/usageevent/", {"q": "Other"}).context["cl"].queryset.count()
        == 2
    )
    # An identifier finds its one event (through EventIdentifier, not a ledger scan).
    found = admin_client.get("/admin/usage/usageevent/", {"q": "other-1"}).context["cl"]
    assert list(found.queryset.values_list("identifier", "account_id")) == [("other-1", other.pk)]
    assert (
        admin_client.get("/admin/usage/usageevent/", {"q": "cus_nobody"})
        .context["cl"]
        .queryset.count()
        == 0
    )
