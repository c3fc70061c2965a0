"""The one way Meterdesk code talks to Stripe: a configured ``StripeClient``.

``STRIPE_API_HOST`` (the emulator in local and test) is read at call time, never at
import, and also applied to the module-level ``stripe.api_base`` that dj-stripe uses.
"""

import stripe
from django.conf import settings
from djstripe.settings import djstripe_settings


def api_base() -> str:
    return getattr(settings, "STRIPE_API_HOST", "") or stripe.DEFAULT_API_BASE


def meter_events_base() -> str:
    return getattr(settings, "STRIPE_API_HOST", "") or stripe.DEFAULT_METER_EVENTS_API_BASE


def stripe_client(*, max_network_retries: int = 2) -> stripe.StripeClient:
    """A client for the configured account; retried POSTs reuse their idempotency key.
    Every call gives up after ``STRIPE_TIMEOUT_SECONDS`` (stripe-python's default is 80)."""
    stripe.api_base = api_base()
    return stripe.StripeClient(
        djstripe_settings.STRIPE_SECRET_KEY,
        stripe_version=settings.STRIPE_API_VERSION,
        base_addresses={"api": api_base(), "meter_events": meter_events_base()},
        max_network_retries=max_network_retries,
        http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS),
    )


def api_key() -> str:
    stripe.api_base = api_base()
    return djstripe_settings.STRIPE_SECRET_KEY
