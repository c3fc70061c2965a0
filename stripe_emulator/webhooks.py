"""Events and their delivery to webhook endpoints.

Every change calls :func:`emit`, which stores an ``Event`` (see ``/v1/events``) and
queues it for each enabled endpoint whose ``enabled_events`` match (``*`` = all).
Each endpoint has one delivery thread that POSTs its events in the order they were
emitted (so, in order per object), signed with the endpoint secret::

    Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, f"{t}.{raw_body}")>

Thin events (v2, :func:`emit_thin`) go to event destinations with ``event_payload:
thin`` the same way and are signed the same way: stripe-python 15 verifies them with
``StripeClient.parse_event_notification`` -> ``WebhookSignature.verify_header``, the
check ``construct_event`` makes for snapshot events.

A non-2xx answer or a connection error is retried with exponential backoff
(``retry_base`` seconds doubling up to ``retry_cap``, at most ``max_attempts``
tries); then the event is given up for that endpoint and the next one is sent. API
requests never wait for delivery. The URL posted to is the endpoint's ``url`` after the
forwarding rules (:mod:`stripe_emulator.forwarding`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import urllib.error
import urllib.request

from . import API_VERSION
from .forwarding import Forwarding
from .store import Store, random_token

_current = threading.local()


def set_current_request(request_id: str | None, idempotency_key: str | None) -> None:
    """Remember the API request being served by this thread (for ``event.request``)."""
    _current.info = {"id": request_id, "idempotency_key": idempotency_key}


def sign(secret: str, body: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    v1 = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={v1}"


def endpoint_wants(endpoint: dict, event_type: str) -> bool:
    if endpoint.get("status") != "enabled":
        return False
    enabled = endpoint.get("enabled_events") or []
    return "*" in enabled or event_type in enabled


class Dispatcher:
    """Per-endpoint FIFO delivery threads."""

    def __init__(
        self,
        store: Store,
        *,
        retry_base=0.2,
        retry_cap=10.0,
        max_attempts=8,
        forwarding: Forwarding | None = None,
    ):
        self.store = store
        self.forwarding = forwarding or Forwarding()
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.max_attempts = max_attempts
        self._lock = threading.Lock()
        self._queues: dict[str, queue.Queue] = {}
        self._generation = 0
        self.deliveries: list[dict] = []  # attempts log, for /_emulator/webhook_deliveries

    def reset(self) -> None:
        with self._lock:
            self._generation += 1
            for q in self._queues.values():
                q.put(None)
            self._queues = {}
            self.deliveries = []

    def enqueue(self, endpoint_id: str, event_id: str, body: str) -> None:
        with self._lock:
            q = self._queues.get(endpoint_id)
            if q is None:
                q = self._queues[endpoint_id] = queue.Queue()
                threading.Thread(
                    target=self._work,
                    args=(endpoint_id, q, self._generation),
                    name=f"webhooks-{endpoint_id}",
                    daemon=True,
                ).start()
        q.put((event_id, body))

    def _work(self, endpoint_id: str, q: queue.Queue, generation: int) -> None:
        while True:
            item = q.get()
            if item is None or generation != self._generation:
                return
            event_id, body = item
            delay = self.retry_base
            for attempt in range(1, self.max_attempts + 1):
                if generation != self._generation:
                    return
                with self.store.lock:  # a webhook endpoint, or a v2 event destination
                    endpoint = self.store.find(endpoint_id)
                if endpoint is None:
                    return
                url = self.forwarding.rewrite(endpoint.get("_url") or endpoint["url"])
                status = self._post(url, endpoint["_secret"], body)
                del self.deliveries[:-999]  # keep the last thousand attempts
                self.deliveries.append(
                    {
                        "endpoint": endpoint_id,
                        "event": event_id,
                        "attempt": attempt,
                        "url": url,
                        "status": status,
                        "at": time.time(),
                    }
                )
                if status is not None and 200 <= status < 300:
                    self._delivered(event_id)
                    break
                time.sleep(delay)
                delay = min(delay * 2, self.retry_cap)

    def _delivered(self, event_id: str) -> None:
        with self.store.lock:
            event = self.store.get("event", event_id)
            if event and event["pending_webhooks"] > 0:
                event["pending_webhooks"] -= 1

    @staticmethod
    def _post(url: str, secret: str, body: str) -> int | None:
        request = urllib.request.Request(
            url,
            data=body.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": sign(secret, body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (OSError, ValueError):
            return None


def emit(
    store: Store,
    event_type: str,
    obj: dict,
    previous_attributes: dict | None = None,
) -> list[tuple[str, str, str]]:
    """Store an Event for ``obj`` (already in API shape); return its deliveries to queue,
    as (endpoint id, event id, body) -- the caller queues them once its request succeeds.

    Call with ``store.lock`` held."""
    data = {"object": obj}
    if previous_attributes:
        data["previous_attributes"] = previous_attributes
    endpoints = [e for e in store.all("webhook_endpoint") if endpoint_wants(e, event_type)]
    endpoints.reverse()  # oldest first
    event = {
        "id": "evt_" + random_token(24),
        "object": "event",
        "api_version": API_VERSION,
        "created": store.real_now(),
        "data": data,
        "livemode": False,
        "pending_webhooks": len(endpoints),
        "request": dict(getattr(_current, "info", None) or {"id": None, "idempotency_key": None}),
        "type": event_type,
    }
    store.add("event", event)
    body = json.dumps({k: v for k, v in event.items() if not k.startswith("_")}, indent=2)
    return [(endpoint["id"], event["id"], body) for endpoint in endpoints]


def _iso_now(store: Store) -> str:
    from datetime import UTC, datetime

    now = datetime.fromtimestamp(store.real_now(), UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def emit_thin(
    store: Store, event_type: str, related_object: dict, data: dict
) -> list[tuple[str, str, str]]:
    """Store a v2 Event (``GET /v2/core/events/{id}`` serves it whole) and return the
    deliveries of its thin notification (the event without ``data``) to the enabled
    thin event destinations that enable ``event_type``. Call with ``store.lock`` held."""
    destinations = [
        d
        for d in store.all("v2.core.event_destination")
        if d["status"] == "enabled"
        and d["event_payload"] == "thin"
        and ("*" in d["enabled_events"] or event_type in d["enabled_events"])
    ]
    destinations.reverse()  # oldest first
    event = {
        "id": "evt_test_" + random_token(40),
        "object": "v2.core.event",
        "context": None,
        "created": _iso_now(store),
        "data": data,
        "livemode": False,
        "reason": None,
        "related_object": related_object,
        "type": event_type,
    }
    store.add("v2.core.event", event)
    thin = {k: v for k, v in event.items() if k != "data" and not k.startswith("_")}
    body = json.dumps(thin, indent=2)
    return [(d["id"], event["id"], body) for d in destinations]
