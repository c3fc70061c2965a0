"""After ingestion: queue alert evaluations for the accounts touched, debounced."""

import math
import time
from collections.abc import Iterable
from functools import partial

from django.core.cache import cache
from django.db import transaction

# account id -> when this process last asked the shared cache to schedule it.
_recently_scheduled: dict[int, float] = {}


def alerts_schedule_evaluation(*, account_ids: Iterable[int], debounce_seconds: int = 5) -> int:
    """Queue one evaluation per account at most every few seconds, after the ingesting
    transaction commits. A cache key debounces across processes; a memo in this process
    spares the cache a round trip per batch for an account it asked about within the
    window."""
    from usage.tasks import evaluate_account_alerts

    now = time.monotonic()
    queued = 0
    for account_id in set(account_ids):
        if debounce_seconds > 0:
            if now - _recently_scheduled.get(account_id, -math.inf) < debounce_seconds:
                continue
            _recently_scheduled[account_id] = now
            if not cache.add(f"alerts:scheduled:{account_id}", 1, timeout=debounce_seconds):
                continue
        transaction.on_commit(partial(evaluate_account_alerts.delay, account_id))
        queued += 1
    return queued
