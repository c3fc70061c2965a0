"""Register this deployment's dj-stripe webhook URL with Stripe.

dj-stripe's admin form refuses loopback URLs (it expects ``stripe listen``), but the
local demo and the tests have the emulator deliver straight to 127.0.0.1, so this
service creates the endpoint the same way the form does: through dj-stripe's API
wrapper, with ``metadata.djstripe_uuid`` so the mirror routes deliveries to it.
"""

import uuid
from urllib.parse import urljoin

from django.conf import settings
from django.urls import reverse
from djstripe.models import WebhookEndpoint

from billing.stripe_api import api_key


def webhook_endpoint_register(*, base_url: str, enabled_events: list[str] | None = None):
    """Create (or reuse, for the same URL) a Stripe endpoint for our dj-stripe view."""
    for existing in WebhookEndpoint.objects.filter(url__startswith=base_url.rstrip("/") + "/"):
        if existing.stripe_data.get("status", "enabled") == "enabled" and existing.secret:
            return existing
    endpoint_uuid = uuid.uuid4()
    path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint_uuid})
    data = WebhookEndpoint._api_create(
        api_key=api_key(),
        url=urljoin(base_url, path),
        enabled_events=enabled_events or ["*"],
        api_version=settings.STRIPE_API_VERSION,
        metadata={"djstripe_uuid": str(endpoint_uuid)},
    )
    endpoint = WebhookEndpoint.sync_from_stripe_data(data, api_key=api_key())
    if not endpoint.secret and data.get("secret"):
        endpoint.secret = data["secret"]
        endpoint.save(update_fields=["secret"])
    return endpoint
