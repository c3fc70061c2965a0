"""After ingestion: queue alert evaluations for the accounts touched, debounced.

This runs after the batch has committed, so nothing here may fail the request: a cache
or broker outage is logged and swallowed (issue 12, item 4). Nothing is lost by that:
the alert sweep (beat, ``USAGE_ALERT_SWEEP_SECONDS``) evaluates every account anyway.
"""

import logging
import math
import time
from collections.abc import Iterable
from functools import partial

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import transaction

log = logging.getLogger(__name__)

MESSAGE_ACCOUNTS = 50  # accounts per evaluation message

# account id -> when this process last asked the shared cache to schedule it.
_recently_scheduled: dict[int, float] = {}


def _first_to_ask(account_id: int, debounce_seconds: int) -> bool:
    """Whether no process asked for this account within the window (shared cache);
    True when the cache is unreachable (an evaluation too many is harmless)."""
    try:
        return bool(cache.add(f"alerts:scheduled:{account_id}", 1, timeout=debounce_seconds))
    except Exception:
        log.warning("alert debounce cache unavailable", exc_info=True)
        return True


def _first_to_ask_all(account_ids: list[int], debounce_seconds: int) -> list[int]:
    """The accounts no process asked for within the window: one ``SET NX EX`` each, in
    one Redis pipeline (one round trip for a batch's accounts, not one per account)
    when the cache is Django's Redis cache; all of them when the cache is unreachable."""
    backend = caches["default"]
    client_of = getattr(getattr(backend, "_cache", None), "get_client", None)
    if not isinstance(backend, RedisCache) or client_of is None or len(account_ids) < 2:
        return [a for a in account_ids if _first_to_ask(a, debounce_seconds)]
    try:
        pipe = client_of(write=True).pipeline(transaction=False)
        for account_id in account_ids:
            # What RedisCache.add sends (an int is stored as itself, not pickled).
            key = backend.make_and_validate_key(f"alerts:scheduled:{account_id}")
            pipe.set(key, 1, ex=debounce_seconds, nx=True)
        answers = pipe.execute()
    except Exception:
        log.warning("alert debounce cache unavailable", exc_info=True)
        return list(account_ids)
    return [a for a, added in zip(account_ids, answers, strict=True) if added]


def alerts_schedule_evaluation(*, account_ids: Iterable[int], debounce_seconds: int = 5) -> int:
    """Queue one evaluation per account at most every few seconds, after the ingesting
    transaction commits. A cache key debounces across processes; a memo in this process
    spares the cache a round trip per batch for an account it asked about within the
    window. Never raises."""
    from usage.tasks import evaluate_accounts_alerts

    now = time.monotonic()
    queued = 0
    due = sorted(set(account_ids))
    if debounce_seconds > 0:
        due = [a for a in due if now - _recently_scheduled.get(a, -math.inf) >= debounce_seconds]
        for account_id in due:
            _recently_scheduled[account_id] = now
        due = _first_to_ask_all(due, debounce_seconds)
    # One message per MESSAGE_ACCOUNTS accounts, not one per account: a broker publish
    # cost ~2 ms of the request's CPU each (py-spy of the ingest benchmark: 17% of
    # request time with one per account).
    for i in range(0, len(due), MESSAGE_ACCOUNTS):
        chunk = due[i : i + MESSAGE_ACCOUNTS]
        # robust: a broker error is logged by Django ("Error calling ... in on_commit()")
        # and swallowed, whether the callback runs now or when a transaction commits.
        # Django's log line reads the callback's __qualname__, which a partial lacks.
        queue = partial(evaluate_accounts_alerts.delay, chunk)
        queue.__qualname__ = f"evaluate_accounts_alerts.delay({len(chunk)} accounts)"
        transaction.on_commit(queue, robust=True)
        queued += len(chunk)
    return queued
