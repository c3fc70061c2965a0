"""The state entitlement checks read, kept in Redis (issue 16), with the database as the
fallback.

Keys (prefix ``ENTITLEMENT_KEY_PREFIX``, default ``md:ent:``), per account ``a``:

- ``ver:a``: a random version token; ``snap:a``: the account's
  :class:`~usage.selectors.entitlement_snapshot.Snapshot` as JSON, built under that
  token. :func:`snapshot_invalidate` (a budget, the account's status or its
  subscription changed) sets a new token and deletes ``snap:a`` and ``use:a``. Each
  process keeps the snapshots it read and checks their token on every read (in the same
  round trip as the usage), so an invalidation is seen by the next check everywhere.
- ``use:a``: a hash, the current period's usage: ``ps``/``pe`` (period, epoch
  microseconds), ``v`` (the snapshot token), ``hc`` (has hard caps), ``m:<meter id>``
  per meter (``t:``/``i:`` the newest event's time and id for ``last`` meters).
  Ingestion adds each committed batch to it atomically (a Lua script, only to fields
  that exist: ``usage.services.entitlement_ingest``). A missing or stale hash (another
  period, another token) is rebuilt from the hourly rollups (``rollup_values`` over the
  period: at most 744 hourly rows and two edge hours of the ledger) by the one process
  holding ``lock:a`` (2 s); the others answer from the same database read.
- ``cust:c``: the account of Stripe customer ``c``.

Rebuild race: a batch committed just before the rebuild's database read whose Redis
increment lands just after the hash is written is counted twice, one committed just
after the read whose increment came before the write is missed; likewise a batch whose
increment failed (Redis unreachable) is missing. The hash therefore expires
``ENTITLEMENT_USAGE_TTL_SECONDS`` (120) after each rebuild and is read again from the
database, and a process whose increment failed deletes the account's hash on its next
successful call. Between rebuilds the counts are exact: every batch's increment is one
atomic script, so parallel batches see disjoint before/after ranges.

Redis unset, unreachable or failing: the same answer from the database (snapshot and
rollups, about ten queries), and Redis is not tried again for a second in this process.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import replace

import redis
from django.conf import settings
from django.db import transaction

from billing.models import Meter
from usage.models import Budget
from usage.selectors.entitlement_snapshot import (
    Snapshot,
    account_ids_for_customers,
    snapshot_to_json,
    snapshots_for_accounts,
)
from usage.selectors.entitlement_usage import last_times, micros, usage_from_database

logger = logging.getLogger(__name__)

BREAKER_SECONDS = 1.0
LOCK_MS = 2000
CUSTOMER_SECONDS = 3600  # customers never move between accounts
LOCAL_CUSTOMER_SECONDS = 60.0
LOCAL_NO_CUSTOMER_SECONDS = 2.0

# One flat reply (less for the client to parse than nested arrays): per account its
# version, its snapshot (when the caller's token differs), the number of items of its
# usage hash, then those items (field, value, ...). See read_replies.
_READ = """
local out = {}
for i = 1, #ARGV do
  local ver = redis.call('GET', KEYS[3 * i - 2]) or ''
  local snap = ''
  if ver ~= '' and ver ~= ARGV[i] then snap = redis.call('GET', KEYS[3 * i - 1]) or '' end
  local flat = redis.call('HGETALL', KEYS[3 * i])
  out[#out + 1] = ver
  out[#out + 1] = snap
  out[#out + 1] = #flat
  for j = 1, #flat do out[#out + 1] = flat[j] end
end
return out
"""


def read_replies(reply: list) -> list[tuple[bytes, bytes, list]]:
    """The ``read`` script's flat reply as (version, snapshot, hash items) per account."""
    out, i = [], 0
    while i < len(reply):
        n = reply[i + 2]
        out.append((reply[i], reply[i + 1], reply[i + 3 : i + 3 + n]))
        i += 3 + n
    return out


# Store a snapshot only if the token it was built under is still the account's.
_STORE_SNAPSHOT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


class StateUnavailable(Exception):
    """Redis is not configured, or failed: answer from the database."""


class _Redis:
    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.25)
        read = self.client.register_script(_READ)
        self.read = lambda keys, args: read_replies(read(keys=keys, args=args))
        self.store_snapshot = self.client.register_script(_STORE_SNAPSHOT)
        self.scripts: dict[str, object] = {}

    def script(self, name: str, source: str):
        if name not in self.scripts:
            self.scripts[name] = self.client.register_script(source)
        return self.scripts[name]


_lock = threading.Lock()
_handles: dict[str, _Redis] = {}
_down_until = 0.0
# This process's copies, checked by token on every read and dropped after
# ENTITLEMENT_SNAPSHOT_TTL_SECONDS (what no hook invalidates: a meter or price edited).
_snapshots: dict[int, tuple[Snapshot, float]] = {}
_customers: dict[str, tuple[int | None, float]] = {}
_dirty: set[int] = set()  # accounts whose hash missed an increment or an invalidation
_capped: tuple[frozenset[int], float] = (frozenset(), 0.0)  # accounts with hard caps


def state_reset() -> None:
    """Forget everything this process holds (tests)."""
    global _down_until
    with _lock:
        _handles.clear()
        _snapshots.clear()
        _customers.clear()
        _dirty.clear()
        _down_until = 0.0
    capped_cache_clear()


def capped_cache_clear() -> None:
    global _capped
    _capped = (frozenset(), 0.0)


def capped_account_ids() -> frozenset[int]:
    """Accounts with a hard-capped budget: one query per ``USAGE_METER_CACHE_SECONDS``
    per process (ingestion asks it for accounts whose usage hash is cold; a budget
    change clears it in the process that made it)."""
    global _capped
    ids, loaded = _capped
    now = time.monotonic()
    ttl = settings.USAGE_METER_CACHE_SECONDS
    if ttl > 0 and loaded and now - loaded < ttl:
        return ids
    ids = frozenset(
        Budget.objects.filter(hard_cap=True).values_list("account_id", flat=True).distinct()
    )
    _capped = (ids, now)
    return ids


def key(kind: str, ident) -> str:
    return f"{getattr(settings, 'ENTITLEMENT_KEY_PREFIX', 'md:ent:')}{kind}:{ident}"


def usage_ttl() -> int:
    return int(getattr(settings, "ENTITLEMENT_USAGE_TTL_SECONDS", 120))


def snapshot_ttl() -> int:
    return int(getattr(settings, "ENTITLEMENT_SNAPSHOT_TTL_SECONDS", 300))


def handle() -> _Redis:
    """The Redis handle, or ``StateUnavailable`` (unset, or failed within a second)."""
    url = settings.REDIS_URL
    if not url or time.monotonic() < _down_until:
        raise StateUnavailable
    with _lock:
        found = _handles.get(url)
        if found is None:
            found = _handles[url] = _Redis(url)
    if _dirty:
        _flush_dirty(found)
    return found


def redis_failed(exc: Exception) -> StateUnavailable:
    """Open the breaker for a second; the caller answers from the database."""
    global _down_until
    _down_until = time.monotonic() + BREAKER_SECONDS
    logger.warning("entitlement state: Redis failed (%s); answering from the database", exc)
    return StateUnavailable()


def mark_dirty(account_ids) -> None:
    with _lock:
        _dirty.update(account_ids)


def _flush_dirty(r: _Redis) -> None:
    with _lock:
        ids = list(_dirty)
        _dirty.clear()
    try:
        pipe = r.client.pipeline(transaction=False)
        for account_id in ids:
            pipe.delete(key("use", account_id))
            pipe.set(key("ver", account_id), secrets.token_hex(8), ex=7 * 86400)
        pipe.execute()
    except redis.RedisError:
        mark_dirty(ids)


def snapshot_invalidate(account_id: int) -> None:
    """A budget, the account's status or its subscription changed: every process
    rebuilds the account's snapshot and usage on its next read."""
    _snapshots.pop(account_id, None)
    try:
        r = handle()
        pipe = r.client.pipeline(transaction=True)
        pipe.set(key("ver", account_id), secrets.token_hex(8), ex=7 * 86400)
        pipe.delete(key("snap", account_id), key("use", account_id))
        pipe.execute()
    except StateUnavailable:
        if settings.REDIS_URL:
            mark_dirty([account_id])
    except redis.RedisError as exc:
        mark_dirty([account_id])
        redis_failed(exc)


def budget_changed(sender, instance, **kwargs) -> None:
    """``post_save`` / ``post_delete`` of a Budget: invalidate after the commit."""
    account_id = instance.account_id
    capped_cache_clear()
    transaction.on_commit(lambda: snapshot_invalidate(account_id), robust=True)


def usage_invalidate(account_id: int) -> None:
    """The account's usage changed other than by ingestion (a correction voided
    events): its period usage is read from the rollups again."""
    try:
        handle().client.delete(key("use", account_id))
    except StateUnavailable:
        if settings.REDIS_URL:
            mark_dirty([account_id])
    except redis.RedisError as exc:
        mark_dirty([account_id])
        redis_failed(exc)


def usage_hash(
    snapshot: Snapshot, period, usage: dict[int, int], last_times: dict
) -> dict[str, str]:
    fields = {
        "ps": str(micros(period[0])),
        "pe": str(micros(period[1])),
        "v": snapshot.token,
        "hc": "1" if snapshot.has_caps else "0",
    }
    for meter in snapshot.meters.values():
        fields[f"m:{meter.id}"] = str(usage.get(meter.id, 0))
        if meter.aggregation == Meter.Aggregation.LAST:
            fields[f"t:{meter.id}"] = str(last_times.get((snapshot.account_id, meter.id), 0))
            fields[f"i:{meter.id}"] = "0"
    return fields


def usage_rebuild(r: _Redis, wanted: dict[int, tuple], snapshots: dict[int, Snapshot]):
    """Read ``wanted`` ({account: period}) from the rollups; write the hashes of the
    accounts whose lock this process took. Returns ``{account: {meter: value}}``."""
    pipe = r.client.pipeline(transaction=False)
    token = secrets.token_hex(8)
    for account_id in wanted:
        pipe.set(key("lock", account_id), token, nx=True, px=LOCK_MS)
    won = [a for a, ok in zip(wanted, pipe.execute(), strict=True) if ok]
    usage = usage_from_database(wanted, snapshots)
    if won:
        last_ids = [
            m.id
            for m in next(iter(snapshots.values())).meters.values()
            if m.aggregation == Meter.Aggregation.LAST
        ]
        times = last_times({a: wanted[a] for a in won}, last_ids)
        pipe = r.client.pipeline(transaction=True)
        for account_id in won:
            hash_key = key("use", account_id)
            pipe.delete(hash_key)
            pipe.hset(
                hash_key,
                mapping=usage_hash(
                    snapshots[account_id], wanted[account_id], usage[account_id], times
                ),
            )
            pipe.expire(hash_key, usage_ttl())
            pipe.delete(key("lock", account_id))
        pipe.execute()
    return usage


# -- snapshots -----------------------------------------------------------------------------
def snapshots_build(r: _Redis | None, account_ids, tokens: dict[int, str]) -> dict:
    """Snapshots from the database; with Redis, each stored under the account's token
    (a new one when it has none) unless an invalidation came in between."""
    if r is None:
        return snapshots_for_accounts(account_ids=account_ids)
    ids = list(account_ids)
    pipe = r.client.pipeline(transaction=False)
    fresh = {}
    for account_id in ids:
        if not tokens.get(account_id):
            fresh[account_id] = secrets.token_hex(8)
            pipe.set(key("ver", account_id), fresh[account_id], nx=True, ex=7 * 86400)
            pipe.get(key("ver", account_id))
    replies = iter(pipe.execute())
    for account_id in fresh:
        next(replies)
        tokens[account_id] = (next(replies) or b"").decode()
    built = {}
    for account_id, snapshot in snapshots_for_accounts(account_ids=ids).items():
        token = tokens.get(account_id, "")
        built[account_id] = snapshot = replace(snapshot, token=token)
        r.store_snapshot(
            keys=[key("ver", account_id), key("snap", account_id)],
            args=[token, snapshot_to_json(snapshot), snapshot_ttl()],
        )
        snapshot_keep(snapshot)
    return built


def snapshot_local(account_id: int) -> Snapshot | None:
    held = _snapshots.get(account_id)
    if held is None or time.monotonic() - held[1] > snapshot_ttl():
        return None
    return held[0]


def cached_snapshot(account_id: int, token: str) -> Snapshot | None:
    snapshot = snapshot_local(account_id)
    return snapshot if snapshot is not None and token and snapshot.token == token else None


def snapshot_keep(snapshot: Snapshot) -> None:
    _snapshots[snapshot.account_id] = (snapshot, time.monotonic())


# -- customers -------------------------------------------------------------------------------
def accounts_of_customers(r: _Redis | None, customers) -> dict[str, int | None]:
    """``{customer: account id or None}``: this process, then Redis, then the database."""
    now = time.monotonic()
    found: dict[str, int | None] = {}
    missing = []
    for customer in customers:
        cached = _customers.get(customer)
        if cached is not None and cached[1] > now:
            found[customer] = cached[0]
        else:
            missing.append(customer)
    if missing and r is not None:
        for customer, value in zip(
            missing, r.client.mget([key("cust", c) for c in missing]), strict=True
        ):
            if value is not None:
                found[customer] = int(value)
                _customers[customer] = (int(value), now + LOCAL_CUSTOMER_SECONDS)
        missing = [c for c in missing if c not in found]
    if missing:
        from_db = account_ids_for_customers(missing)
        if r is not None and from_db:
            pipe = r.client.pipeline(transaction=False)
            for customer, account_id in from_db.items():
                pipe.set(key("cust", customer), account_id, ex=CUSTOMER_SECONDS)
            pipe.execute()
        for customer in missing:
            account_id = from_db.get(customer)
            found[customer] = account_id
            ttl = LOCAL_CUSTOMER_SECONDS if account_id else LOCAL_NO_CUSTOMER_SECONDS
            _customers[customer] = (account_id, now + ttl)
    return found
