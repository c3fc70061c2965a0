"""The v2 meter event stream: sessions, and events counted after the answer.

What Stripe documents (and what it does not), as the emulator plays it:

- ``POST /v2/billing/meter_event_session`` (API host, secret key) returns a
  ``v2.billing.meter_event_session`` with ``authentication_token`` and ``expires_at``:
  "Authentication tokens are only valid for 15 minutes, so you will need to create a new
  meter event session when your token expires"
  (https://docs.stripe.com/api/v2/billing/meter-event-stream/session/create; the object:
  https://docs.stripe.com/api/v2/billing-meter-stream/object). ``session_seconds``
  (default 900) shortens it for tests.
- ``POST /v2/billing/meter_event_stream`` is served on the meter-events host
  (``https://meter-events.stripe.com`` in Stripe's curl example,
  https://docs.stripe.com/api/v2/billing/meter-event-sessions/create-async; stripe-python
  15 sends it to ``base_address="meter_events"``, ``stripe.DEFAULT_METER_EVENTS_API_BASE``).
  The emulator serves both hosts on one port: point stripe-python's ``meter_events`` base
  address at the emulator, as ``billing.stripe_api`` does with ``STRIPE_API_HOST``.
- It is authenticated with ``Authorization: Bearer <authentication_token>`` (stripe-python's
  ``examples/meter_event_stream.py`` builds a client with the token as its key). An
  expired token is a 401, code ``billing_meter_event_session_expired``, "The temporary
  session token has expired." (the endpoint's one documented error, same page), with
  ``type: temporary_session_expired`` (stripe-python 15 ``_api_requestor.py`` maps that
  type to ``TemporarySessionExpiredError``). The docs say nothing about an unknown or
  malformed token: the emulator answers it the same 401.
- "Supports up to 100 events per request" (``events``, stripe-python 15
  ``MeterEventStreamCreateParams``); more is a 400 here (what Stripe answers is not
  documented). The request's shape (``events[]`` with ``event_name`` and ``payload``
  required, no unknown keys) is checked by the parameter rules before the handler; a
  malformed request is refused whole, nothing in it counted.
- "Events are processed asynchronously, including validation" (stripe-python 15
  ``MeterEventStreamService.create``). The answer is ``{}`` ("No response attributes",
  create-async page; the status code is not documented: the emulator answers 200). The
  events are queued here and applied ``delay`` seconds later (default 0.5) by a
  background thread: meter lookup, the content checks of
  :func:`stripe_emulator.meter_event_validation.content_error` (failures reported later as
  ``v1.billing.meter.error_report_triggered``, :mod:`stripe_emulator.meter_errors`, with
  the event's identifier as the sample's ``request.identifier``: what Stripe puts there for
  a stream event is not documented) and recording. An event whose ``event_name`` has no
  meter is dropped and counted in ``dropped`` (stripe-python lists an async ``no_meter``
  error code, but an error report is per meter, and where Stripe reports it is not
  documented).
- Identifiers: "We'll enforce uniqueness within a rolling 24 hour period"
  (``events.identifier``, create-async page). An event whose identifier is already
  recorded (by v1, v2 or the stream) is not counted again, and reported nowhere: the
  documented asynchronous error codes have none for a duplicate. The emulator remembers
  identifiers until reset (longer than Stripe's 24 hours), and shares them between v1, v2
  and the stream: Stripe does not say whether the endpoints share one identifier space;
  they create the same billing meter events.
- Rate limits: "Supports up to 10,000 requests per second in livemode" (stripe-python 15);
  the 2024-09-30.acacia changelog says "up to 10k events per second" and "up to 100,000
  events per second for a single business"
  (https://docs.stripe.com/changelog/acacia/2024-09-30/usage-based-billing-v2-meter-events-api).
  The emulator does not rate-limit (faults can inject 429s).

Tests steer it through ``/_emulator/meter_event_stream``: ``delay``, ``session_seconds``
and ``refuse`` (a status every session and stream request is answered with, e.g. 503,
before anything happens), and ``/_emulator/meter_event_stream/drain`` applies what is
queued now.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from .errors import StripeError

if TYPE_CHECKING:
    from .app import Emulator

SESSION_SECONDS = 15 * 60
STREAM_MAX = 100
EXPIRED_MESSAGE = "The temporary session token has expired."


class MeterEventStream:
    def __init__(self, app: Emulator, delay: float = 0.5):
        self.app = app
        self.delay = self.default_delay = delay
        self.session_seconds = SESSION_SECONDS
        self.refuse = 0
        self._lock = threading.Lock()
        self._queue: deque[tuple[float, list[dict]]] = deque()
        self._wake = threading.Condition(self._lock)
        self.processed = 0
        self.dropped = 0
        self.duplicates = 0
        self._thread: threading.Thread | None = None

    # -- settings ---------------------------------------------------------------------
    def configure(self, *, delay=None, session_seconds=None, refuse=None) -> None:
        with self._lock:
            if delay is not None:
                self.delay = max(0.0, float(delay))
            if session_seconds is not None:
                self.session_seconds = max(0, int(session_seconds))
            if refuse is not None:
                self.refuse = int(refuse or 0)
            self._wake.notify_all()

    def as_dict(self) -> dict:
        with self._lock:
            return {
                "delay": self.delay,
                "session_seconds": self.session_seconds,
                "refuse": self.refuse,
                "pending_events": sum(len(batch) for _, batch in self._queue),
                "processed_events": self.processed,
                "duplicate_events": self.duplicates,
                "dropped_events": self.dropped,
            }

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self.processed = self.dropped = self.duplicates = 0
            self.delay, self.session_seconds, self.refuse = self.default_delay, SESSION_SECONDS, 0

    # -- the requests -----------------------------------------------------------------
    def check_refused(self) -> None:
        if self.refuse:
            raise StripeError(
                self.refuse,
                f"The meter event stream is unavailable (emulator refuse={self.refuse}).",
                type="api_error",
                headers={"Stripe-Should-Retry": "true"},
            )

    def check_token(self, headers) -> str:
        """The session token of the request, or Stripe's 401 for an expired/unknown one."""
        token = (headers.get("Authorization") or "").partition(" ")[2].strip()
        store = self.app.store
        with store.lock:
            expires = store.sessions.get(token)
            now = store.real_now()
        if expires is None or expires <= now:
            raise StripeError(
                401,
                EXPIRED_MESSAGE,
                type="temporary_session_expired",
                code="billing_meter_event_session_expired",
            )
        return token

    def enqueue(self, events: list[dict]) -> None:
        """Queue parsed events; they are applied ``delay`` seconds from now."""
        self._start()
        with self._lock:
            self._queue.append((time.monotonic() + self.delay, events))
            self._wake.notify_all()

    # -- the processing ---------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="meter-event-stream", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue or self._queue[0][0] > time.monotonic():
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._wake.wait(timeout)
            # Popped and applied under the store lock, so drain() never returns while a
            # batch it did not see is still being applied.
            with self.app.store.lock:
                with self._lock:
                    due = bool(self._queue) and self._queue[0][0] <= time.monotonic()
                    batch = self._queue.popleft()[1] if due else None
                if batch is not None:
                    self._apply(batch)

    def drain(self) -> int:
        """Apply everything queued now (tests, shutdown); returns the events applied."""
        applied = 0
        with self.app.store.lock:
            while True:
                with self._lock:
                    if not self._queue:
                        return applied
                    _, batch = self._queue.popleft()
                self._apply(batch)
                applied += len(batch)

    def _apply(self, batch: list[dict]) -> None:
        from .meter_event_validation import content_error
        from .resources.meter_events import record
        from .webhooks import set_current_request

        store = self.app.store
        with store.lock:
            set_current_request(None, None)
            for event in batch:
                meter = store.get("billing.meter", event["meter"]) if event["meter"] else None
                if meter is None:
                    with self._lock:
                        self.dropped += 1
                    continue
                if event["identifier"] in store.meter_event_ids:
                    with self._lock:
                        self.duplicates += 1
                    continue
                error = content_error(store, event)
                if error is not None:
                    self.app.meter_errors.add(event["meter"], error, event["identifier"])
                else:
                    record(store, event)
                with self._lock:
                    self.processed += 1
            store.mark_dirty()
