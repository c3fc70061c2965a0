"""Entitlement checks (issue 16): gather each customer's snapshot and period usage, then
decide with :func:`usage.selectors.entitlements.decide`.

With Redis warm a check costs one round trip (the ``read`` script: version, snapshot
when this process's copy is stale, usage hash) and no database query; the customer's
account is cached per process. Cold or stale state is rebuilt from the database
(``usage.services.entitlement_state``). Redis unset or failing: everything from the
database, the same answer. A whole batch of checks shares the round trip.

It writes to Redis (rebuilds), hence a service, not a selector.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import redis
from django.utils import timezone

from usage.selectors.entitlement_snapshot import (
    Snapshot,
    account_ids_for_customers,
    snapshot_from_json,
    snapshots_for_accounts,
)
from usage.selectors.entitlement_usage import micros, usage_from_database
from usage.selectors.entitlements import Decision, decide
from usage.services import entitlement_state as state

State = tuple[Snapshot | None, dict[int, int]]
_NOTHING: State = (None, {})


def entitlement_checks(
    *, checks: Sequence[tuple[str, str, int]], now: datetime | None = None
) -> list[Decision]:
    """One decision per ``(customer, event_name, quantity)``, in order."""
    now = now or timezone.now()
    customers = list(dict.fromkeys(customer for customer, _, _ in checks))
    try:
        states = states_from_redis(customers, now)
    except state.StateUnavailable:
        states = states_from_database(customers, now)
    return [
        decide(
            snapshot=states[customer][0],
            usage=states[customer][1],
            event_name=event_name,
            quantity=quantity,
            now=now,
        )
        for customer, event_name, quantity in checks
    ]


def entitlement_check(
    *, customer: str, event_name: str, quantity: int = 1, now: datetime | None = None
) -> Decision:
    return entitlement_checks(checks=[(customer, event_name, quantity)], now=now)[0]


def states_from_database(customers: Sequence[str], now: datetime) -> dict[str, State]:
    """The fallback: snapshots and usage straight from the database."""
    accounts = account_ids_for_customers(customers)
    snapshots = snapshots_for_accounts(account_ids=set(accounts.values()))
    periods = {
        a: period for a, s in snapshots.items() if (period := s.current_period(now)) is not None
    }
    usage = usage_from_database(periods, snapshots)
    return {c: (snapshots.get(accounts.get(c)), usage.get(accounts.get(c), {})) for c in customers}


def _hash_usage(raw: dict[bytes, bytes], snapshot: Snapshot, period) -> dict[int, int] | None:
    """The usage in a hash read from Redis, or None when it must be rebuilt: missing,
    of another period or snapshot version, or without a field for one of the meters."""
    if not raw or raw.get(b"v", b"").decode() != snapshot.token:
        return None
    if (
        raw.get(b"ps") != str(micros(period[0])).encode()
        or raw.get(b"pe") != str(micros(period[1])).encode()
    ):
        return None
    usage = {int(k[2:]): int(v) for k, v in raw.items() if k.startswith(b"m:")}
    return usage if snapshot.meter_ids() <= usage.keys() else None


def states_from_redis(customers: Sequence[str], now: datetime) -> dict[str, State]:
    r = state.handle()
    try:
        accounts = state.accounts_of_customers(r, customers)
        ids = sorted({a for a in accounts.values() if a})
        if not ids:
            return dict.fromkeys(customers, _NOTHING)
        keys, tokens_held = [], []
        for account_id in ids:
            keys += [state.key(k, account_id) for k in ("ver", "snap", "use")]
            held = state.snapshot_local(account_id)
            tokens_held.append(held.token if held is not None else "")
        replies = r.read(keys=keys, args=tokens_held)
        snapshots: dict[int, Snapshot] = {}
        hashes, tokens, unbuilt = {}, {}, []
        for account_id, (ver, snap, flat) in zip(ids, replies, strict=True):
            token = tokens[account_id] = ver.decode()
            held = state.cached_snapshot(account_id, token)
            if held is None and snap:
                held = snapshot_from_json(snap, token=token)
                state.snapshot_keep(held)
            if held is None:
                unbuilt.append(account_id)
            else:
                snapshots[account_id] = held
            hashes[account_id] = dict(zip(flat[::2], flat[1::2], strict=True))
        if unbuilt:
            snapshots.update(state.snapshots_build(r, unbuilt, tokens))
        usage: dict[int, dict[int, int]] = {}
        stale: dict[int, tuple] = {}
        for account_id, snapshot in snapshots.items():
            period = snapshot.current_period(now)
            if period is None:
                continue
            found = _hash_usage(hashes[account_id], snapshot, period)
            if found is None:
                stale[account_id] = period
            else:
                usage[account_id] = found
        if stale:
            usage.update(state.usage_rebuild(r, stale, snapshots))
    except redis.RedisError as exc:
        raise state.redis_failed(exc) from exc
    return {c: (snapshots.get(accounts.get(c)), usage.get(accounts.get(c), {})) for c in customers}
