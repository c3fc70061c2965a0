import pytest
import requests
from django.contrib.auth import get_user_model
from django.urls import reverse

from billing.models import Membership
from billing.services.accounts import (
    account_create,
    account_ensure_stripe_customer,
    membership_add,
)
from billing.services.portal_configuration import portal_configuration_ensure
from billing.stripe_api import stripe_client

pytestmark = pytest.mark.django_db


def _member(account, username: str, role: str):
    user = get_user_model().objects.create_user(username, password="pw-" + username)
    membership_add(account=account, user=user, role=role)
    return user


@pytest.fixture
def two_accounts(stripe_emulator):
    # Stripe (and the emulator) refuse portal sessions until a configuration is saved;
    # ``billing_catalog apply`` ensures one, here without the rest of the catalog.
    portal_configuration_ensure(client=stripe_client())
    a = account_create(name="Acme", billing_email="billing@acme.example")
    b = account_create(name="Globex", billing_email="billing@globex.example")
    for account in (a, b):
        account_ensure_stripe_customer(account=account, payment_method="pm_card_visa")
    return a, b


@pytest.mark.parametrize("role", [Membership.Role.OWNER, Membership.Role.BILLING])
def test_owner_and_billing_reach_their_own_portal_page(client, two_accounts, role, emulator_url):
    a, b = two_accounts
    client.force_login(_member(a, f"a-{role}", role))
    response = client.post(reverse("billing:portal"))
    assert response.status_code == 303
    portal_url = response["Location"]
    assert portal_url.startswith(emulator_url)  # the emulator's portal page
    page = requests.get(portal_url, timeout=10)
    assert page.status_code == 200
    a_customer = a.djstripe_customers.get().id
    b_customer = b.djstripe_customers.get().id
    assert a_customer in page.text
    assert b_customer not in page.text
    # The way back leads to the dashboard.
    assert "http://testserver/dashboard/" in page.text


def test_member_gets_403(client, two_accounts):
    a, _ = two_accounts
    client.force_login(_member(a, "a-member", Membership.Role.MEMBER))
    response = client.post(reverse("billing:portal"))
    assert response.status_code == 403


def test_portal_needs_post_and_login(client, two_accounts):
    assert client.get(reverse("billing:portal")).status_code == 405
    response = client.post(reverse("billing:portal"))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_users_of_a_only_ever_get_sessions_for_a(client, two_accounts, emulator_url):
    a, b = two_accounts
    owner_a = _member(a, "owner-a", Membership.Role.OWNER)
    client.force_login(owner_a)
    b_customer = b.djstripe_customers.get().id
    # Whatever a user of A sends, the session is for A's customer.
    for data in ({"customer": b_customer}, {"account": str(b.pk)}, {}):
        response = client.post(reverse("billing:portal"), data)
        assert response.status_code == 303
        page = requests.get(response["Location"], timeout=10).text
        assert b_customer not in page
        assert a.djstripe_customers.get().id in page
