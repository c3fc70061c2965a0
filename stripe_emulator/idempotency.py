"""``Idempotency-Key`` handling as Stripe does it.

The first request with a key runs and, if it executed (2xx, or a 402 card error),
its status and body are kept for 24 hours. A later request with the same key and
the same method, path and parameters gets that stored response again, with the
header ``Idempotent-Replayed: true``. The same key with other parameters is a 400
``idempotency_error``. Validation errors, 401s, 429s and 5xx are not kept, so a
client may retry them with the same key (this is what makes retrying after an
injected fault safe).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from .errors import StripeError

TTL_SECONDS = 24 * 3600


@dataclass
class Stored:
    fingerprint: str
    status: int
    body: dict
    at: float


def fingerprint(method: str, path: str, params: dict) -> str:
    return json.dumps([method, path, params], sort_keys=True, default=str)


class IdempotencyCache:
    def __init__(self):
        self._lock = threading.Lock()
        self._stored: dict[str, Stored] = {}

    def clear(self) -> None:
        with self._lock:
            self._stored.clear()

    def lookup(self, key: str, fp: str) -> Stored | None:
        """The stored response to replay, None to execute, or a 400 on a key reused
        with other parameters."""
        with self._lock:
            stored = self._stored.get(key)
            if stored and time.time() - stored.at > TTL_SECONDS:
                del self._stored[key]
                stored = None
        if stored is None:
            return None
        if stored.fingerprint != fp:
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters "
                f"they were first used with. Try using a key other than '{key}' if you "
                "meant to execute a different request.",
                type="idempotency_error",
            )
        return stored

    def remember(self, key: str, fp: str, status: int, body: dict) -> None:
        if not (200 <= status < 300 or status == 402):
            return
        with self._lock:
            self._stored[key] = Stored(fp, status, body, time.time())
