"""Fault injection for reliability tests.

Each ``/v1`` or ``/v2`` request first waits ``latency_ms``, then with probability
``rate`` is answered with one of ``statuses`` (chosen at random) *before anything
else happens*: a faulted request has no effect, and nothing is stored for its
Idempotency-Key, so retrying it is always safe.

Two settings model what happens after Stripe *did* record a meter event:

- ``after_record_rate``: with this probability a meter event create
  (``POST /v1|v2/billing/meter_events``) is recorded and its answer is then held
  ``after_record_ms`` (longer than the client's timeout): the client times out on an
  event Stripe has. The response is lost before an idempotent result is kept, so the
  client's retry (same Idempotency-Key) reaches Stripe's identifier check.
- ``duplicate_identifiers``: what a meter event whose identifier is already recorded gets:
  ``"reject"`` (the default), live Stripe's answer: 400 ``invalid_request_error`` "An
  event already exists with identifier '...'." with ``Stripe-Should-Retry: false``; or
  ``"replay"`` (200 with the stored event, kinder than Stripe). Either way it is not
  counted again.
"""

from __future__ import annotations

import random
import threading
import time

from .errors import StripeError

_MESSAGES = {
    429: ("invalid_request_error", "rate_limit", "Too many requests hit the API too quickly."),
    500: ("api_error", None, "An unknown error occurred (injected fault)."),
    502: ("api_error", None, "Bad gateway (injected fault)."),
    503: ("api_error", None, "Service unavailable (injected fault)."),
}


AFTER_RECORD_PATHS = ("/v1/billing/meter_events", "/v2/billing/meter_events")
DUPLICATE_MODES = ("replay", "reject")


def _share(value, name: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1")
    return value


class Faults:
    def __init__(self, rate: float = 0.0, statuses=(500,), latency_ms: int = 0, seed=None):
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.after_record_rate, self.after_record_ms = 0.0, 30_000
        self.duplicate_identifiers = "reject"
        self.configure(rate=rate, statuses=statuses, latency_ms=latency_ms)
        self._initial = self.as_dict()

    def restore(self) -> None:
        """Back to the faults the emulator was started with (``POST /_emulator/reset``):
        a test that turned faults on and failed before turning them off leaves nothing
        behind for the next test."""
        self.configure(**self._initial)

    def configure(
        self,
        *,
        rate=None,
        statuses=None,
        latency_ms=None,
        after_record_rate=None,
        after_record_ms=None,
        duplicate_identifiers=None,
    ) -> None:
        with self._lock:
            if rate is not None:
                self.rate = _share(rate, "rate")
            if after_record_rate is not None:
                self.after_record_rate = _share(after_record_rate, "after_record_rate")
            if after_record_ms is not None:
                self.after_record_ms = max(0, int(after_record_ms))
            if duplicate_identifiers is not None:
                if duplicate_identifiers not in DUPLICATE_MODES:
                    raise ValueError(f"duplicate_identifiers must be one of {DUPLICATE_MODES}")
                self.duplicate_identifiers = duplicate_identifiers
            if statuses is not None:
                if isinstance(statuses, str):
                    statuses = [s for s in statuses.split(",") if s.strip()]
                self.statuses = tuple(int(s) for s in statuses) or (500,)
            if latency_ms is not None:
                self.latency_ms = max(0, int(latency_ms))

    def as_dict(self) -> dict:
        return {
            "rate": self.rate,
            "statuses": list(self.statuses),
            "latency_ms": self.latency_ms,
            "after_record_rate": self.after_record_rate,
            "after_record_ms": self.after_record_ms,
            "duplicate_identifiers": self.duplicate_identifiers,
        }

    def hold_after_record(self, method: str, path: str) -> float:
        """Seconds to hold the answer of this request once it is recorded (0: none)."""
        if method != "POST" or path not in AFTER_RECORD_PATHS:
            return 0.0
        with self._lock:
            held = self._random.random() < self.after_record_rate
        return self.after_record_ms / 1000 if held else 0.0

    def decide(self) -> StripeError | None:
        """Sleep the configured latency, then maybe return the fault to answer with."""
        with self._lock:
            latency, faulted = self.latency_ms, self._random.random() < self.rate
            status = self._random.choice(self.statuses)
        if latency:
            time.sleep(latency / 1000)
        if not faulted:
            return None
        type_, code, message = _MESSAGES.get(status, ("api_error", None, "Injected fault."))
        return StripeError(status, message, type=type_, code=code)
