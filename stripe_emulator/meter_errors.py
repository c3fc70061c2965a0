"""Asynchronous meter event errors, reported as Stripe does: a
``v1.billing.meter.error_report_triggered`` thin event per meter and window.

Errors found after a meter event's 200 (:func:`stripe_emulator.meter_event_validation.
content_error`) are collected per meter; ``delay`` seconds (real time, ``--meter-error-
delay``, default 0.5) after the first one, one v2 Event per meter is stored (served at
``GET /v2/core/events/{id}``) and its thin notification is delivered to every enabled
event destination with ``event_payload: thin`` that enables the type
(:func:`stripe_emulator.webhooks.emit_thin`), signed like every webhook. Test clocks
do not move it: Stripe processes meter events in real time; only the timestamp checks
read the customer's clock (at receipt).

The Event, as in Stripe's example (https://docs.stripe.com/api/v2/core/events/object)
and stripe-python 15 (``stripe/events/_v1_billing_meter_error_report_triggered_event.py``)::

    {"id": "evt_test_...", "object": "v2.core.event", "type":
     "v1.billing.meter.error_report_triggered", "created": "2024-09-26T17:46:22.134Z",
     "livemode": false, "context": null, "reason": null,
     "related_object": {"id": "mtr_...", "type": "billing.meter",
                        "url": "/v1/billing/meters/mtr_..."},
     "data": {"developer_message_summary": "There is 1 invalid event",
              "reason": {"error_count": 1, "error_types": [
                  {"code": "meter_event_no_customer_defined", "error_count": 1,
                   "sample_errors": [{"error_message": "Customer mapping key
                       stripe_customer_id not found in payload.",
                       "request": {"identifier": "<the request's idempotency key>"}}]}]},
              "validation_start": "...", "validation_end": "..."}}

The thin notification is the same without ``data``. At most ``SAMPLES`` sample errors
per code are listed (Stripe's number is not documented); ``error_count`` counts them all.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from .meter_event_validation import ContentError, iso
from .webhooks import emit_thin, set_current_request

if TYPE_CHECKING:
    from .app import Emulator

EVENT_TYPE = "v1.billing.meter.error_report_triggered"
SAMPLES = 5


def error_report(errors: list[dict], *, now: float) -> dict:
    """The ``data`` of an error report over ``errors`` (dicts: code, message, identifier,
    at), codes in order of first appearance."""
    by_code: dict[str, list[dict]] = {}
    for error in errors:
        by_code.setdefault(error["code"], []).append(error)
    count = len(errors)
    return {
        "developer_message_summary": (
            "There is 1 invalid event" if count == 1 else f"There are {count} invalid events"
        ),
        "reason": {
            "error_count": count,
            "error_types": [
                {
                    "code": code,
                    "error_count": len(found),
                    "sample_errors": [
                        {"error_message": e["message"], "request": {"identifier": e["identifier"]}}
                        for e in found[:SAMPLES]
                    ],
                }
                for code, found in by_code.items()
            ],
        },
        "validation_start": iso(min(e["at"] for e in errors)),
        "validation_end": iso(now),
    }


class MeterErrorReporter:
    def __init__(self, app: Emulator, delay: float = 0.5):
        self.app = app
        self.delay = delay
        self._lock = threading.Lock()
        self._pending: dict[str, list[dict]] = {}
        self._timer: threading.Timer | None = None

    def add(self, meter_id: str, error: ContentError, identifier: str) -> None:
        with self._lock:
            self._pending.setdefault(meter_id, []).append(
                {
                    "code": error.code,
                    "message": error.message,
                    "identifier": identifier,
                    "at": time.time(),
                }
            )
            if self._timer is None:
                self._timer = threading.Timer(self.delay, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def clear(self) -> None:
        with self._lock:
            self._pending = {}
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def flush(self) -> None:
        """Report what has been collected: one event per meter."""
        with self._lock:
            pending, self._pending, self._timer = self._pending, {}, None
        if not pending:
            return
        store = self.app.store
        with store.lock:
            set_current_request(None, None)
            now = time.time()
            for meter_id, errors in pending.items():
                related = {
                    "id": meter_id,
                    "type": "billing.meter",
                    "url": f"/v1/billing/meters/{meter_id}",
                }
                data = error_report(errors, now=now)
                for delivery in emit_thin(store, EVENT_TYPE, related, data):
                    self.app.dispatcher.enqueue(*delivery)
            store.mark_dirty()
