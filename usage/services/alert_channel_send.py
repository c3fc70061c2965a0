"""Sending alert channel deliveries (operator webhooks, Slack) and retrying them.

Each send leases its row first (a conditional UPDATE: pending, due, not leased), so two
workers never POST the same delivery at once; a worker that dies frees it when the lease
lapses. One attempt is one POST with a 5-second connect and read timeout and no
redirects followed. A 2xx answer delivers; anything else (non-2xx, timeout, connection
error) records the status code, the first 2,000 characters of the answer or the error,
and schedules the next attempt after ``RETRY_DELAYS`` (30 s, 2 min, 10 min, 1 h, 6 h);
the attempt after the last delay failing marks the delivery ``failed`` (admin: "retry
now"). Webhooks are signed at send time (``usage.webhook_signature``), over the stored
body, so a retry carries a fresh timestamp and the same body. Every POST goes through
``usage.outbound_http.guarded_post`` (SSRF guard: a host resolving to a non-public address
is refused, recorded as ``failed`` and never retried).
"""

import logging
from collections.abc import Iterable
from datetime import timedelta
from functools import partial

import requests
import urllib3
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from usage.models_webhooks import ChannelDelivery
from usage.outbound_http import OutboundRefused, guarded_post
from usage.services.alert_channels import URL_REFUSED, url_allowed
from usage.webhook_signature import HEADER, signature_header

logger = logging.getLogger(__name__)
Status = ChannelDelivery.Status
TIMEOUT_SECONDS = 5.0
LEASE = timedelta(seconds=60)  # longer than one POST's connect + read timeouts
RETRY_DELAYS = tuple(timedelta(seconds=s) for s in (30, 2 * 60, 10 * 60, 60 * 60, 6 * 60 * 60))
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
RESPONSE_KEPT = 2_000
PASS_LIMIT = 100


def _due(now):
    return (
        ChannelDelivery.objects.filter(status=Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
    )


def _lease(delivery_id: int, now) -> bool:
    return bool(_due(now).filter(pk=delivery_id).update(lease_until=now + LEASE))


def _headers(delivery: ChannelDelivery, now) -> dict:
    headers = {}
    if delivery.channel == ChannelDelivery.Channel.WEBHOOK:
        headers[HEADER] = signature_header(
            secret=delivery.endpoint.secret, timestamp=int(now.timestamp()), body=delivery.payload
        )
        headers["X-Meterdesk-Delivery"] = str(delivery.pk)
    return headers


def channel_post(*, url: str, payload: str, headers: dict | None = None):
    """One guarded POST of ``payload`` (JSON) to ``url``: (status code or None, the first
    ``RESPONSE_KEPT`` characters of the answer, the error or "", refused). ``refused``: the
    URL was never requested (not http(s), or the SSRF guard) and must not be retried."""
    if not url_allowed(url):
        return None, "", URL_REFUSED, True
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Meterdesk-Alerts/1",
        **(headers or {}),
    }
    try:
        response = guarded_post(
            url,
            data=payload.encode(),
            headers=headers,
            timeout=(TIMEOUT_SECONDS, TIMEOUT_SECONDS),
        )
        with response:  # streamed: a huge answer is not read
            head = response.raw.read(4 * RESPONSE_KEPT, decode_content=True) or b""
            text = head.decode(response.encoding or "utf-8", "replace")[:RESPONSE_KEPT]
            return response.status_code, text, "", False
    except OutboundRefused as exc:
        return None, "", f"refused: {exc}"[:300], True
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        return None, "", f"{type(exc).__name__}: {exc}"[:300], False


def channel_delivery_send(*, delivery_id: int) -> str | None:
    """One attempt at one delivery, if it is due and this worker leases it; returns the
    status it was left in (None: not due, or leased by another worker)."""
    now = timezone.now()
    if not _lease(delivery_id, now):
        return None
    delivery = ChannelDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    code, text, error, refused = channel_post(
        url=delivery.url, payload=delivery.payload, headers=_headers(delivery, now)
    )
    attempts = delivery.attempts + 1
    done = timezone.now()
    fields = {
        "attempts": attempts,
        "lease_until": None,
        "last_status_code": code,
        "last_response": text,
        "last_error": error,
    }
    if code is not None and 200 <= code < 300:
        fields.update(status=Status.DELIVERED, delivered_at=done, next_attempt_at=None)
    elif attempts >= MAX_ATTEMPTS or refused:
        fields.update(status=Status.FAILED, next_attempt_at=None)
    else:
        fields.update(next_attempt_at=done + RETRY_DELAYS[attempts - 1])
    ChannelDelivery.objects.filter(pk=delivery_id).update(**fields)
    status = fields.get("status", Status.PENDING)
    if status != Status.DELIVERED:
        logger.info("channel delivery %s attempt %s: %s %s", delivery_id, attempts, code, error)
    return status


def channel_deliveries_send_due(*, ids: Iterable[int] | None = None, limit: int = PASS_LIMIT):
    """Send the due pending deliveries (all of them, or those of ``ids``), oldest first;
    returns {status: count} of the attempts made."""
    now = timezone.now()
    due = _due(now)
    if ids is not None:
        due = due.filter(pk__in=list(ids))
    counts: dict[str, int] = {}
    for delivery_id in due.order_by("created_at", "pk").values_list("pk", flat=True)[:limit]:
        status = channel_delivery_send(delivery_id=delivery_id)
        if status is not None:
            counts[status] = counts.get(status, 0) + 1
    return counts


def channel_deliveries_send_after_commit(ids: list[int]) -> None:
    """Queue the send of just-claimed deliveries once the claim commits (a broker error
    is logged and swallowed: the retry beat entry sends them anyway)."""
    if not ids:
        return
    from usage.tasks import send_alert_channels

    queue = partial(send_alert_channels.delay, ids)
    queue.__qualname__ = "send_alert_channels.delay"
    transaction.on_commit(queue, robust=True)


def channel_deliveries_retry_now(*, ids: Iterable[int]) -> int:
    """Staff's "retry now": pending or failed deliveries become due at once (a failed
    one gets one more attempt) and are queued; returns how many."""
    ids = list(
        ChannelDelivery.objects.filter(pk__in=list(ids))
        .exclude(status=Status.DELIVERED)
        .values_list("pk", flat=True)
    )
    ChannelDelivery.objects.filter(pk__in=ids).update(
        status=Status.PENDING, next_attempt_at=None, lease_until=None
    )
    channel_deliveries_send_after_commit(ids)
    return len(ids)
