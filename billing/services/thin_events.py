"""Stripe thin events: the event destination they are delivered to, their receipt
(signature checked, stored once) and their processing (the whole event fetched, handed to
the handlers registered in :mod:`billing.thin_events`).

Why not dj-stripe: dj-stripe 2.11's webhook view takes v1 snapshot events (``object:
event`` with ``data.object``); thin events (``object: v2.core.event``, no ``data``) are
delivered by v2 event destinations with their own signing secret
(https://docs.stripe.com/event-destinations). stripe-python 15 verifies and parses them
with ``StripeClient.parse_event_notification`` (the same ``Stripe-Signature`` check as
snapshot webhooks) and fetches the whole event with ``GET /v2/core/events/{id}``
("The payload of thin events is unversioned. During processing, you must fetch the
versioned event from the API", https://docs.stripe.com/api/v2/core/events/event-types).
"""

from __future__ import annotations

import logging
from urllib.parse import urljoin

import stripe
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from billing.models import ThinEvent, ThinEventDestination
from billing.thin_events import thin_event_handlers

log = logging.getLogger(__name__)

THIN_EVENT_TYPES = ["v1.billing.meter.error_report_triggered"]


class ThinEventRejected(Exception):
    """The delivery is not a verified thin event (bad or missing signature, bad body)."""


def thin_event_destination_register(*, base_url: str, client=None) -> ThinEventDestination:
    """Create (or reuse, for the same URL) the Stripe event destination of our receiver."""
    from billing.stripe_api import stripe_client

    url = urljoin(base_url.rstrip("/") + "/", reverse("thin_events").lstrip("/"))
    existing = ThinEventDestination.objects.filter(url=url).first()
    if existing is not None:
        return existing
    client = client or stripe_client()
    created = client.v2.core.event_destinations.create(
        {
            "name": "Meterdesk thin events",
            "description": "Meter event error reports for Meterdesk's usage outbox",
            "type": "webhook_endpoint",
            "event_payload": "thin",
            "enabled_events": THIN_EVENT_TYPES,
            "webhook_endpoint": {"url": url},
            "include": ["webhook_endpoint.signing_secret", "webhook_endpoint.url"],
        }
    )
    return ThinEventDestination.objects.create(
        stripe_id=created.id,
        url=url,
        secret=created.webhook_endpoint.signing_secret,
        enabled_events=THIN_EVENT_TYPES,
    )


def thin_event_receive(*, payload: bytes, signature: str | None) -> ThinEvent:
    """Verify a delivery against every destination's secret and store it once (a
    redelivery returns the stored row). Raises ``ThinEventRejected``."""
    from billing.stripe_api import stripe_client

    client = stripe_client()
    notification = None
    for secret in ThinEventDestination.objects.values_list("secret", flat=True):
        try:
            notification = client.parse_event_notification(payload, signature, secret)
            break
        except stripe.SignatureVerificationError:
            continue
        except (ValueError, KeyError) as exc:
            raise ThinEventRejected(f"not a thin event: {exc}") from None
    if notification is None:
        raise ThinEventRejected("no event destination's secret verifies the signature")
    related = getattr(notification, "related_object", None)
    try:
        with transaction.atomic():
            return ThinEvent.objects.create(
                stripe_id=notification.id,
                type=notification.type,
                related_object_id=related.id if related is not None else "",
                created=str(notification.created),
            )
    except IntegrityError:  # delivered again: one row, processed once
        return ThinEvent.objects.get(stripe_id=notification.id)


def thin_event_process(*, thin_event_id: int, client=None) -> bool:
    """Fetch the whole event and run its handlers; True once processed. Errors are
    recorded on the row (it stays pending for the beat task), never raised."""
    from billing.stripe_api import stripe_client

    row = ThinEvent.objects.get(pk=thin_event_id)
    if row.processed_at is not None:
        return True
    ThinEvent.objects.filter(pk=row.pk).update(attempts=row.attempts + 1)
    try:
        client = client or stripe_client()
        event = client.v2.core.events.retrieve(row.stripe_id).to_dict(for_json=True)
        outcomes = [
            handler(event=event) for handler in thin_event_handlers(event_type=row.type)
        ] or ["no handler for this type"]
    except Exception as exc:
        log.exception("thin event %s (%s) could not be processed", row.stripe_id, row.type)
        ThinEvent.objects.filter(pk=row.pk).update(last_error=f"{type(exc).__name__}: {exc}")
        return False
    ThinEvent.objects.filter(pk=row.pk).update(
        data=event.get("data"),
        processed_at=timezone.now(),
        last_error="",
        outcome="; ".join(outcomes)[:4000],
    )
    return True


def thin_events_process_pending(*, limit: int = 100) -> int:
    """Process stored thin events not processed yet (the queued task was lost or
    failed); returns how many were processed."""
    pending = ThinEvent.objects.filter(processed_at__isnull=True).order_by("received_at")
    ids = list(pending.values_list("pk", flat=True)[:limit])
    return sum(thin_event_process(thin_event_id=pk) for pk in ids)
