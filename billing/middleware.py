"""Webhooks are never accepted unsigned, in any settings.

dj-stripe, when ``DEBUG`` is on, lets a request replace the endpoint's signing secret
with its own ``X-Djstripe-Webhook-Secret`` header (meant for ``stripe listen``); anyone
who can reach a DEBUG deployment could then sign a forged event with a secret of their
choosing (djstripe/models/webhooks.py, ``WebhookEventTrigger.validate``). The header is
dropped before any view sees it; ``stripe listen --forward-to`` and the emulator's
forwarding sign with the endpoint's real secret (``billing_webhook_register``).
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

OVERRIDE_HEADER = "HTTP_X_DJSTRIPE_WEBHOOK_SECRET"


def drop_webhook_secret_override(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        request.META.pop(OVERRIDE_HEADER, None)
        request.__dict__.pop("headers", None)  # rebuilt from META without it
        return get_response(request)

    return middleware
