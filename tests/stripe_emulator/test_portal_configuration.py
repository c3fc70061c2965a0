"""The portal needs a saved configuration first, as in Stripe's test mode: a session
created before any configuration exists is Stripe's 400 (the old emulator made a default
configuration by itself and answered 200)."""

from __future__ import annotations

import pytest
import stripe

from .helpers import clock_customer

NO_CONFIGURATION = (
    "You can’t create a portal session in test mode until you save your customer portal "
    "settings in test mode at https://dashboard.stripe.com/test/settings/billing/portal."
)


def test_a_session_without_any_configuration_is_stripes_400(client):
    _, customer = clock_customer(client)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing_portal.sessions.create({"customer": customer.id})
    assert err.value.http_status == 400
    assert err.value.error.type == "invalid_request_error"
    assert err.value.error.message == NO_CONFIGURATION
    # Nothing was made on the side: still no configuration, no session.
    assert client.v1.billing_portal.configurations.list().data == []
    events = [e.type for e in client.v1.events.list({"limit": 100}).data]
    assert "billing_portal.configuration.created" not in events
    assert "billing_portal.session.created" not in events


def test_once_a_configuration_is_created_sessions_work(client):
    _, customer = clock_customer(client)
    config = client.v1.billing_portal.configurations.create(
        {"features": {"invoice_history": {"enabled": True}}}
    )
    explicit = client.v1.billing_portal.sessions.create(
        {"customer": customer.id, "configuration": config.id}
    )
    implicit = client.v1.billing_portal.sessions.create({"customer": customer.id})
    assert explicit.configuration == implicit.configuration == config.id
