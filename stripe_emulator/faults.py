"""Fault injection for reliability tests.

Each ``/v1`` or ``/v2`` request first waits ``latency_ms``, then with probability
``rate`` is answered with one of ``statuses`` (chosen at random) *before anything
else happens*: a faulted request has no effect, and nothing is stored for its
Idempotency-Key, so retrying it is always safe.
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


class Faults:
    def __init__(self, rate: float = 0.0, statuses=(500,), latency_ms: int = 0, seed=None):
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.configure(rate=rate, statuses=statuses, latency_ms=latency_ms)

    def configure(self, *, rate=None, statuses=None, latency_ms=None) -> None:
        with self._lock:
            if rate is not None:
                rate = float(rate)
                if not 0.0 <= rate <= 1.0:
                    raise ValueError("rate must be between 0 and 1")
                self.rate = rate
            if statuses is not None:
                if isinstance(statuses, str):
                    statuses = [s for s in statuses.split(",") if s.strip()]
                self.statuses = tuple(int(s) for s in statuses) or (500,)
            if latency_ms is not None:
                self.latency_ms = max(0, int(latency_ms))

    def as_dict(self) -> dict:
        return {"rate": self.rate, "statuses": list(self.statuses), "latency_ms": self.latency_ms}

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
