"""billing.stripe_api: one StripeClient per configuration, no module globals touched per call."""

import stripe

from billing.stripe_api import api_key, stripe_client


def test_the_client_is_built_once_per_configuration(settings):
    settings.STRIPE_API_HOST = "http://127.0.0.1:1"
    first = stripe_client()
    assert stripe_client() is first
    assert first._requestor.base_addresses["api"] == "http://127.0.0.1:1"
    assert first._requestor.base_addresses["meter_events"] == "http://127.0.0.1:1"
    # Each value that shapes the client gives a new one when it changes.
    settings.STRIPE_TIMEOUT_SECONDS = settings.STRIPE_TIMEOUT_SECONDS + 1
    second = stripe_client()
    assert second is not first and stripe_client() is second
    assert stripe_client(max_network_retries=0) is not second
    settings.STRIPE_API_HOST = "http://127.0.0.1:2"
    third = stripe_client()
    assert third._requestor.base_addresses["api"] == "http://127.0.0.1:2"
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_another"
    assert stripe_client() is not third


def test_building_a_client_or_reading_the_key_leaves_stripe_api_base_alone(monkeypatch):
    monkeypatch.setattr(stripe, "api_base", "http://sentinel.invalid")
    stripe_client()
    api_key()
    assert stripe.api_base == "http://sentinel.invalid"


def test_dj_stripe_module_host_follows_the_setting(settings):
    # dj-stripe's calls go through stripe-python's module-level host: set from the setting
    # at startup and whenever the setting changes, never per call.
    settings.STRIPE_API_HOST = "http://127.0.0.1:3"
    assert stripe.api_base == "http://127.0.0.1:3"
    settings.STRIPE_API_HOST = ""
    assert stripe.api_base == stripe.DEFAULT_API_BASE
