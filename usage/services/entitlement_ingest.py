"""Ingestion's side of the entitlement state (issue 16): each committed batch is added to
its accounts' period usage in Redis, and the answer names the events after which a hard
cap was reached (``caps_crossed``), so a backend that only ingests learns it too.

One Lua script per batch adds every event whose time lies in the hash's period to the
fields that exist (a missing field or hash is left for the next rebuild from the
rollups, which already hold the batch) and returns each meter's value before and after.
Redis runs scripts one at a time, so parallel batches get disjoint before/after ranges
and exactly one of them sees a cap go from not reached to reached: that batch walks its
own events in order from its ``before`` to name the one that reached it.

An account with hard caps whose hash is missing (nothing checked it yet, or it expired)
is rebuilt here from the database, which already holds this batch; ``before`` is that
minus the batch. Parallel batches of such a cold account may then both, or neither,
report the crossing: warm the state with one check per customer (README). Without Redis
the same is computed from the database after the commit, with the same caveat.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import datetime

import redis
from django.conf import settings

from billing.models import Meter
from usage.event_validation import ValidEvent
from usage.models import Budget
from usage.selectors.entitlement_snapshot import Cap, Snapshot, snapshot_from_json
from usage.selectors.entitlement_snapshot import snapshots_for_accounts as snapshots_from_db
from usage.selectors.entitlement_usage import micros, usage_from_database
from usage.selectors.entitlements import cap_reached
from usage.services import entitlement_state as state

logger = logging.getLogger(__name__)
LAST = Meter.Aggregation.LAST
COUNT = Meter.Aggregation.COUNT

# KEYS: (use, ver) per account. ARGV[1]: JSON, per account a list of
# [meter id, "add", [[time us, increment], ...]] or [meter id, "last", [[time us, "0",
# event id, value], ...]] (increments and values as strings: Lua numbers are doubles).
# Returns per account {ps, pe, hc, v, then per meter: id, before, after, t, i},
# or {"", ver} when the hash is missing.
_APPLY = """
local spec = cjson.decode(ARGV[1])
local out = {}
for a = 1, #spec do
  local key = KEYS[2 * a - 1]
  if redis.call('EXISTS', key) == 0 then
    out[a] = {'', redis.call('GET', KEYS[2 * a]) or ''}
  else
    local h = redis.call('HMGET', key, 'ps', 'pe', 'hc', 'v')
    local ps, pe = tonumber(h[1]), tonumber(h[2])
    local res = {h[1], h[2], h[3] or '0', h[4] or ''}
    for _, m in ipairs(spec[a]) do
      local f = 'm:' .. m[1]
      local before = redis.call('HGET', key, f)
      if before then
        local bt = redis.call('HGET', key, 't:' .. m[1]) or ''
        local bi = redis.call('HGET', key, 'i:' .. m[1]) or ''
        if m[2] == 'last' then
          local t, i, v = tonumber(bt) or -1, tonumber(bi) or -1, nil
          for _, e in ipairs(m[3]) do
            if e[1] >= ps and e[1] < pe and (e[1] > t or (e[1] == t and e[3] > i)) then
              t, i, v = e[1], e[3], e[4]
            end
          end
          if v then
            redis.call('HSET', key, f, v, 't:' .. m[1], string.format('%.0f', t),
                       'i:' .. m[1], string.format('%.0f', i))
          end
        else
          for _, e in ipairs(m[3]) do
            if e[1] >= ps and e[1] < pe then redis.call('HINCRBY', key, f, e[2]) end
          end
        end
        for _, x in ipairs({m[1], before, redis.call('HGET', key, f), bt, bi}) do
          table.insert(res, x)
        end
      end
    end
    out[a] = res
  end
end
return out
"""


# The usual case in one short message: per account the batch's earliest and latest event
# time, and per meter its total (sum or count) or its newest event. An account whose
# hash's period holds all of them gets them added at once; one whose period does not
# (the batch straddles a period edge, or the hash is of another period) is left as it
# is and answered {"straddle"}: the caller sends that account's events one by one with
# _APPLY. KEYS as for _APPLY. ARGV[1]: JSON, per account [earliest us, latest us,
# [[meter id, "add", increment], [meter id, "last", time us, event id, value], ...]].
# Returns what _APPLY returns, per account.
_APPLY_TOTALS = """
local spec = cjson.decode(ARGV[1])
local out = {}
for a = 1, #spec do
  local key = KEYS[2 * a - 1]
  if redis.call('EXISTS', key) == 0 then
    out[a] = {'', redis.call('GET', KEYS[2 * a]) or ''}
  else
    local h = redis.call('HMGET', key, 'ps', 'pe', 'hc', 'v')
    local ps, pe = tonumber(h[1]), tonumber(h[2])
    if spec[a][1] < ps or spec[a][2] >= pe then
      out[a] = {'straddle'}
    else
      local res = {h[1], h[2], h[3] or '0', h[4] or ''}
      for _, m in ipairs(spec[a][3]) do
        local f = 'm:' .. m[1]
        local before = redis.call('HGET', key, f)
        if before then
          local bt = redis.call('HGET', key, 't:' .. m[1]) or ''
          local bi = redis.call('HGET', key, 'i:' .. m[1]) or ''
          if m[2] == 'last' then
            local t, i = tonumber(bt) or -1, tonumber(bi) or -1
            if m[3] > t or (m[3] == t and m[4] > i) then
              redis.call('HSET', key, f, m[5], 't:' .. m[1], string.format('%.0f', m[3]),
                         'i:' .. m[1], string.format('%.0f', m[4]))
            end
          else
            redis.call('HINCRBY', key, f, m[3])
          end
          for _, x in ipairs({m[1], before, redis.call('HGET', key, f), bt, bi}) do
            table.insert(res, x)
          end
        end
      end
      out[a] = res
    end
  end
end
return out
"""


_STRADDLE = (b"straddle", "straddle")


def _micros(row: ValidEvent) -> int:
    """The event's time in microseconds (its timestamp is whole seconds)."""
    return row.epoch * 1_000_000 if row.epoch else micros(row.timestamp)


class _Usage:
    """A period's usage that events are applied to in order (newest wins for last)."""

    def __init__(self, values: dict[int, int], newest: dict[int, tuple[int, int]]):
        self.values, self.newest = dict(values), dict(newest)

    def apply(self, row: ValidEvent, aggregation: str, event_id: int) -> None:
        if aggregation == LAST:
            moment = (micros(row.timestamp), event_id)
            if moment > self.newest.get(row.meter_id, (-1, -1)):
                self.newest[row.meter_id] = moment
                self.values[row.meter_id] = row.value
        else:
            step = 1 if aggregation == COUNT else row.value
            self.values[row.meter_id] = self.values.get(row.meter_id, 0) + step


def _first_reaching(cap: Cap, snapshot, before: _Usage, events, aggregations, ids):
    """The event of ``events`` (in order) after which ``cap`` is reached, or None."""

    def after(count: int) -> dict[int, int]:
        usage = _Usage(before.values, before.newest)
        for row in events[:count]:
            usage.apply(row, aggregations[row.meter_id], ids.get(row.identifier, 0))
        return usage.values

    if cap.kind == Budget.Kind.UNITS:
        events = [row for row in events if row.meter_id == cap.meter_id]
    if not events or not cap_reached(cap, snapshot, after(len(events))):
        return None
    if any(aggregations[row.meter_id] == LAST for row in events):
        for count in range(1, len(events) + 1):  # a last value may go down again
            if cap_reached(cap, snapshot, after(count)):
                return events[count - 1]
    low, high = 1, len(events)  # sums and counts only grow: the first prefix reaching it
    while low < high:
        middle = (low + high) // 2
        if cap_reached(cap, snapshot, after(middle)):
            high = middle
        else:
            low = middle + 1
    return events[low - 1]


def _crossings(snapshot: Snapshot, before: _Usage, events, aggregations, ids) -> list[dict]:
    found = []
    for cap in snapshot.caps:
        if cap_reached(cap, snapshot, before.values):
            continue
        row = _first_reaching(cap, snapshot, before, events, aggregations, ids)
        if row is not None:
            found.append(
                {
                    "identifier": row.identifier,
                    "customer": row.customer,
                    "event_name": row.event_name,
                    "budget": cap.kind,
                    "limit": cap.limit,
                }
            )
    return found


def _in_period(events, period) -> list[ValidEvent]:
    return [row for row in events if period[0] <= row.timestamp < period[1]]


def _less_the_batch(after: dict[int, int], events, aggregations) -> _Usage:
    """Usage before the batch from usage after it (last values cannot be taken back:
    they stay as they are, so a last meter's cap is not named on this path)."""
    values = dict(after)
    for row in events:
        aggregation = aggregations[row.meter_id]
        if aggregation != LAST:
            values[row.meter_id] -= 1 if aggregation == COUNT else row.value
    return _Usage(values, {})


def usage_record(
    *, rows: list[ValidEvent], event_ids: dict[str, int], aggregations: dict[int, str],
    now: datetime,
) -> list[dict]:  # fmt: skip
    """Add the batch's stored events to the entitlement state; the caps they reached.
    Never raises: the batch is already in the ledger."""
    if not rows:
        return []
    rows = sorted(rows, key=lambda row: row.index)
    try:
        try:
            return _record_in_redis(state.handle(), rows, event_ids, aggregations, now)
        except redis.RedisError as exc:
            state.mark_dirty({row.account_id for row in rows})
            state.redis_failed(exc)
        except state.StateUnavailable:
            if settings.REDIS_URL:  # configured but failing: its hashes miss this batch
                state.mark_dirty({row.account_id for row in rows})
        return _crossings_from_database(rows, event_ids, aggregations, now)
    except Exception:  # the answer must not fail after the commit
        logger.exception("entitlement state: recording a batch failed")
        return []


def _crossings_from_database(rows, event_ids, aggregations, now) -> list[dict]:
    capped = {row.account_id for row in rows} & state.capped_account_ids()
    if not capped:
        return []
    snapshots = snapshots_from_db(account_ids=capped)
    return _cold_crossings(None, snapshots, rows, event_ids, aggregations, now)


def _cold_crossings(r, snapshots, rows, event_ids, aggregations, now) -> list[dict]:
    """Crossings of accounts without a warm hash: usage after the batch from the
    database (rebuilding the hash when Redis is there), less the batch."""
    periods = {
        a: period
        for a, s in snapshots.items()
        if s.has_caps and (period := s.current_period(now)) is not None
    }
    if not periods:
        return []
    if r is not None:
        after = state.usage_rebuild(r, periods, snapshots)
    else:
        after = usage_from_database(periods, snapshots)
    found = []
    for account_id, period in periods.items():
        events = _in_period([row for row in rows if row.account_id == account_id], period)
        before = _less_the_batch(after[account_id], events, aggregations)
        found += _crossings(snapshots[account_id], before, events, aggregations, event_ids)
    return found


def _snapshots(r, tokens: dict[int, str]) -> dict[int, Snapshot]:
    """The accounts' snapshots under these tokens: this process, Redis, the database."""
    found, missing = {}, []
    for account_id, token in tokens.items():
        held = state.cached_snapshot(account_id, token)
        if held is not None:
            found[account_id] = held
        else:
            missing.append(account_id)
    if missing:
        texts = r.client.mget([state.key("snap", a) for a in missing])
        unbuilt = []
        for account_id, text in zip(missing, texts, strict=True):
            if text and tokens[account_id]:
                found[account_id] = snapshot_from_json(text, token=tokens[account_id])
                state.snapshot_keep(found[account_id])
            else:
                unbuilt.append(account_id)
        if unbuilt:
            found.update(state.snapshots_build(r, unbuilt, dict(tokens)))
    return found


def _detailed_spec(account_rows, event_ids, aggregations) -> list:
    """One account's part of _APPLY's ARGV: every event time."""
    # Sums and counts merged per event time (a batch often shares one); for last
    # meters every event, the script keeps the newest.
    added: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    lasts: dict[int, list] = defaultdict(list)
    for row in account_rows:
        aggregation = aggregations[row.meter_id]
        if aggregation == LAST:
            lasts[row.meter_id].append(
                [_micros(row), "0", event_ids.get(row.identifier, 0), str(row.value)]
            )
        else:
            step = 1 if aggregation == COUNT else row.value
            added[row.meter_id][_micros(row)] += step
    return [
        [str(m), "add", [[t, str(v)] for t, v in times.items()]] for m, times in added.items()
    ] + [[str(m), "last", entries] for m, entries in lasts.items()]


def _totals_spec(account_rows, event_ids, aggregations) -> list:
    """One account's part of _APPLY_TOTALS's ARGV: earliest and latest time, and per
    meter the total or the newest event (by time, then id, as the ledger orders them)."""
    totals: dict[int, int] = {}
    newest: dict[int, tuple[int, int, int]] = {}
    earliest = latest = None
    for row in account_rows:
        moment = _micros(row)
        if earliest is None or moment < earliest:
            earliest = moment
        if latest is None or moment > latest:
            latest = moment
        meter_id = row.meter_id
        aggregation = aggregations[meter_id]
        if aggregation == LAST:
            entry = (moment, event_ids.get(row.identifier, 0), row.value)
            if meter_id not in newest or entry[:2] > newest[meter_id][:2]:
                newest[meter_id] = entry
        else:
            totals[meter_id] = totals.get(meter_id, 0) + (1 if aggregation == COUNT else row.value)
    meters = [[str(m), "add", str(total)] for m, total in totals.items()]
    meters += [[str(m), "last", t, i, str(v)] for m, (t, i, v) in newest.items()]
    return [earliest, latest, meters]


def _apply(r, by_account: dict[int, list[ValidEvent]], accounts, event_ids, aggregations):
    """Add the accounts' events to their hashes: _APPLY's reply per account."""
    keys, spec = [], []
    for account_id in accounts:
        keys += [state.key("use", account_id), state.key("ver", account_id)]
        spec.append(_totals_spec(by_account[account_id], event_ids, aggregations))
    replies = r.script("apply_totals", _APPLY_TOTALS)(keys=keys, args=[json.dumps(spec)])
    straddling = [n for n, reply in enumerate(replies) if len(reply) == 1 and reply[0] in _STRADDLE]
    if straddling:  # their events one by one: only those in the hash's period count
        keys = [k for n in straddling for k in (keys[2 * n], keys[2 * n + 1])]
        spec = [
            _detailed_spec(by_account[accounts[n]], event_ids, aggregations) for n in straddling
        ]
        detailed = r.script("apply", _APPLY)(keys=keys, args=[json.dumps(spec)])
        replies = list(replies)
        for n, reply in zip(straddling, detailed, strict=True):
            replies[n] = reply
    return replies


def _record_in_redis(r, rows, event_ids, aggregations, now) -> list[dict]:
    by_account: dict[int, list[ValidEvent]] = defaultdict(list)
    for row in rows:
        by_account[row.account_id].append(row)
    accounts = sorted(by_account)
    replies = _apply(r, by_account, accounts, event_ids, aggregations)
    now_us = micros(now)
    warm, cold = {}, {}
    for account_id, reply in zip(accounts, replies, strict=True):
        reply = [x.decode() if isinstance(x, bytes) else x for x in reply]
        if reply[0] == "" or int(reply[1]) <= now_us:  # missing, or of a past period
            if account_id in state.capped_account_ids():
                cold[account_id] = reply[1] if reply[0] == "" else reply[3]
        elif reply[2] == "1":
            warm[account_id] = reply
    if not warm and not cold:
        return []
    snapshots = _snapshots(r, {a: reply[3] for a, reply in warm.items()} | cold)
    found = []
    for account_id, reply in warm.items():
        snapshot = snapshots.get(account_id)
        if snapshot is None:
            continue
        values, newest = {}, {}
        for i in range(4, len(reply), 5):
            meter_id = int(reply[i])
            values[meter_id] = int(reply[i + 1])
            if reply[i + 3]:
                newest[meter_id] = (int(reply[i + 3]), int(reply[i + 4] or 0))
        period = (int(reply[0]), int(reply[1]))
        events = [
            row
            for row in by_account[account_id]
            if period[0] <= _micros(row) < period[1] and row.meter_id in values
        ]
        before = _Usage(values, newest)
        found += _crossings(snapshot, before, events, aggregations, event_ids)
    cold_snapshots = {a: s for a, s in snapshots.items() if a in cold}
    found += _cold_crossings(r, cold_snapshots, rows, event_ids, aggregations, now)
    return found
