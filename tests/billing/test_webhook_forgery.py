"""Webhooks are never accepted unsigned, in any settings (issue 12, item 8: with DEBUG
on, dj-stripe let a request bring its own signing secret in ``X-Djstripe-Webhook-Secret``)."""

import json
import time

import pytest
import stripe
from djstripe.models import Event, WebhookEventTrigger

from billing.services.webhook_endpoints import webhook_endpoint_register

pytestmark = pytest.mark.django_db

ATTACKER_SECRET = "whsec_chosen_by_the_attacker_0000000000"


def _forged(body: str) -> dict[str, str]:
    t = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{t}.{body}", ATTACKER_SECRET)
    return {
        "HTTP_STRIPE_SIGNATURE": f"t={t},v1={signature}",
        "HTTP_X_DJSTRIPE_WEBHOOK_SECRET": ATTACKER_SECRET,
    }


@pytest.mark.parametrize("debug", [True, False])
def test_a_forged_event_with_its_own_secret_header_is_refused(client, settings, debug):
    settings.DEBUG = debug
    endpoint = webhook_endpoint_register(base_url="http://testserver")
    body = json.dumps(
        {
            "id": "evt_forged_1",
            "object": "event",
            "type": "customer.subscription.deleted",
            "livemode": False,
            "api_version": settings.STRIPE_API_VERSION,
            "created": int(time.time()),
            "data": {"object": {"id": "sub_forged", "object": "subscription"}},
        }
    )
    path = endpoint.url.removeprefix("http://testserver")
    response = client.post(path, data=body, content_type="application/json", **_forged(body))
    assert response.status_code == 400
    assert not Event.objects.filter(id="evt_forged_1").exists()
    assert WebhookEventTrigger.objects.get().valid is False


@pytest.fixture(autouse=True)
def _emulator(stripe_emulator):
    return stripe_emulator


def test_an_endpoint_set_to_no_validation_still_verifies_signatures(client, settings):
    """dj-stripe's admin lets staff set an endpoint's validation to "None"; an unsigned
    (here: wrongly signed) event must still be refused."""
    endpoint = webhook_endpoint_register(base_url="http://testserver")
    type(endpoint).objects.filter(pk=endpoint.pk).update(djstripe_validation_method="none")
    body = json.dumps(
        {
            "id": "evt_unsigned_1",
            "object": "event",
            "type": "customer.subscription.deleted",
            "livemode": False,
            "api_version": settings.STRIPE_API_VERSION,
            "created": int(time.time()),
            "data": {"object": {"id": "sub_forged", "object": "subscription"}},
        }
    )
    path = endpoint.url.removeprefix("http://testserver")
    response = client.post(
        path, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=00"
    )
    assert response.status_code == 400
    assert not Event.objects.filter(id="evt_unsigned_1").exists()
