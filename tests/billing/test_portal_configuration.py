"""The portal button against a Stripe that wants a saved portal configuration first:
without one the click is a page saying so (502, logged for staff), never a 500; after
``billing_catalog apply`` (which ensures the configuration) it is a 303 to the session."""

from pathlib import Path

import pytest
import requests
import stripe
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from billing.models import Membership
from billing.services import portal_configuration
from billing.services.accounts import account_create, membership_add
from billing.services.portal_configuration import portal_configuration_ensure

pytestmark = pytest.mark.django_db
DEMO = Path(__file__).resolve().parents[2] / "billing" / "catalog" / "demo.toml"
NO_CONFIGURATION = "You can’t create a portal session in test mode until you save"


@pytest.fixture
def owner(stripe_emulator):
    account = account_create(name="Initech", billing_email="billing@initech.example")
    user = get_user_model().objects.create_user("peter", password="pw-peter")
    membership_add(account=account, user=user, role=Membership.Role.OWNER)
    return user


def test_without_a_configuration_the_click_shows_a_message_not_a_500(client, owner, caplog):
    client.force_login(owner)
    response = client.post(reverse("billing:portal"))
    assert response.status_code == 502
    html = response.content.decode()
    assert 'data-testid="portal-unavailable"' in html
    assert "couldn't open the billing portal" in html
    assert NO_CONFIGURATION not in html  # Stripe's words are for staff, not customers
    logged = [r for r in caplog.records if r.name == "billing.services.portal"]
    assert len(logged) == 1 and NO_CONFIGURATION in logged[0].getMessage()


def test_staff_see_stripes_words_on_the_page(client, owner):
    owner.is_staff = True
    owner.save()
    client.force_login(owner)
    response = client.post(reverse("billing:portal"))
    assert response.status_code == 502
    assert "Stripe refused the request (HTTP 400)" in response.content.decode()
    assert NO_CONFIGURATION in response.content.decode()


def test_stripe_unreachable_is_a_503_saying_try_again(client, owner, monkeypatch):
    def down(**kwargs):
        raise stripe.APIConnectionError("connection refused")

    monkeypatch.setattr("billing.services.portal.portal_configuration_find", down)
    client.force_login(owner)
    response = client.post(reverse("billing:portal"))
    assert response.status_code == 503
    assert "try again in a few minutes" in response.content.decode()


def test_after_catalog_apply_the_click_redirects_to_the_session(
    client, owner, stripe_client, emulator_url
):
    call_command("billing_catalog", "apply", str(DEMO))
    [config] = stripe_client.v1.billing_portal.configurations.list().data
    features = config.features
    assert features.invoice_history.enabled and features.payment_method_update.enabled
    assert (features.subscription_cancel.enabled, features.subscription_cancel.mode) == (
        True,
        "at_period_end",
    )
    assert config.business_profile.headline and config.metadata[portal_configuration.TAG] == "1"
    client.force_login(owner)
    response = client.post(reverse("billing:portal"))
    assert response.status_code == 303
    assert response["Location"].startswith(emulator_url + "/p/session/")
    assert requests.get(response["Location"], timeout=10).status_code == 200


def test_ensure_is_idempotent_and_reuses_an_existing_default(stripe_client, capsys):
    call_command("billing_catalog", "apply", str(DEMO))
    assert "created   portal configuration bpc_" in capsys.readouterr().out
    call_command("billing_catalog", "apply", str(DEMO))
    assert "reused    portal configuration bpc_" in capsys.readouterr().out
    assert len(stripe_client.v1.billing_portal.configurations.list().data) == 1


def test_an_operators_default_configuration_is_used_as_it_is(stripe_client):
    # Saved by the operator before Meterdesk ran (the first one is the default).
    theirs = stripe_client.v1.billing_portal.configurations.create(
        {"features": {"invoice_history": {"enabled": True}}}
    )
    assert portal_configuration_ensure(client=stripe_client) == (theirs.id, False)
    again = stripe_client.v1.billing_portal.configurations.retrieve(theirs.id)
    assert (
        dict(again.metadata) == {}
        and len(stripe_client.v1.billing_portal.configurations.list().data) == 1
    )
