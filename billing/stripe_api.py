"""The one way Meterdesk code talks to Stripe: a configured ``StripeClient``.

The client is built once per configuration (secret key, API and meter-events hosts, API
version, timeout, retries) and reused; changing a setting (tests do) gives a new one.
``STRIPE_API_HOST`` (the emulator in local and test) is read at call time, never at
import, and nothing here touches module globals per call.

dj-stripe's ``sync_from_stripe_data``/``api_retrieve`` use stripe-python's module-level
requestor, whose host is the global ``stripe.api_base`` (dj-stripe 2.11 has no way to
pass a host per call). It is pointed at ``STRIPE_API_HOST`` once, by
``BillingConfig.ready()`` through :func:`point_module_stripe_at_api_host`, and again
only when the setting changes (``setting_changed``, i.e. in tests).
"""

import os
from functools import lru_cache

import stripe
from django.conf import settings
from djstripe.settings import djstripe_settings


def api_base() -> str:
    return getattr(settings, "STRIPE_API_HOST", "") or stripe.DEFAULT_API_BASE


def meter_events_base() -> str:
    return getattr(settings, "STRIPE_API_HOST", "") or stripe.DEFAULT_METER_EVENTS_API_BASE


def api_key() -> str:
    return djstripe_settings.STRIPE_SECRET_KEY


def stripe_client(*, max_network_retries: int = 2) -> stripe.StripeClient:
    """A client for the configured account; retried POSTs reuse their idempotency key.
    Every call gives up after ``STRIPE_TIMEOUT_SECONDS`` (stripe-python's default is 80)."""
    return _client(
        api_key(),
        api_base(),
        meter_events_base(),
        settings.STRIPE_API_VERSION,
        settings.STRIPE_TIMEOUT_SECONDS,
        max_network_retries,
        os.getpid(),  # a forked worker builds its own (connection pools are per process)
    )


@lru_cache(maxsize=8)
def _client(
    key: str,
    base: str,
    meter_events: str,
    version: str,
    timeout: int,
    max_network_retries: int,
    _pid: int,
) -> stripe.StripeClient:
    return stripe.StripeClient(
        key,
        stripe_version=version,
        base_addresses={"api": base, "meter_events": meter_events},
        max_network_retries=max_network_retries,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def point_module_stripe_at_api_host(**_kwargs) -> None:
    """Where dj-stripe's calls go: ``stripe.api_base``, set from ``STRIPE_API_HOST``."""
    stripe.api_base = api_base()
