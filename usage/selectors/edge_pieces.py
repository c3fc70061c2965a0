"""The partial edge hours of a range, without reading a busy hour's events on every view.

:func:`usage.selectors.rollups.rollup_values` reads whole hours from the rollups and the
partial hour at each end of a range (a period that started at 13:02, the current hour up
to now) from the ledger. At 100,000,000 events a period that partial hour holds ~200,000
events, and summing them on every dashboard view and every sweep is what would not scale.
:func:`edge_piece_stats` answers the same question as
:func:`usage.selectors.ledger.ledger_stats`, exactly, reading the ledger only when it must:

- **No rollup row for the hour**: the hour has no events (a rollup row exists whenever
  the hour has an event or an adjustment): nothing to read.
- **A head piece** ``[hour, end)`` whose hour's newest event (the rollup's
  ``last_timestamp``) is before ``end`` (the current hour up to now, unless events arrived
  stamped later than now): its events are all the hour's events, which the rollup row
  holds (voided events already out) less the hour's quantity adjustments (which only a
  whole hour counts; ``adjustments_in``). One small read of adjustments, no events.
- **Any other piece** (a period that started at 13:02: ``[13:02, 14:00)``; a closed
  period's last partial hour): read from the ledger once, then kept in the cache under
  the hour's rollup row *version* (PostgreSQL's ``xmin``: every write to the hour, an
  event, a void or an adjustment, rewrites the row and changes it), so a later event in
  that hour makes the entry unreachable. It is stored only if the row's version is the
  same after the ledger read as before it (no commit in between), so what is cached is
  what that version's ledger held. SQLite has no row versions: it reads the ledger.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db import connections, router

from billing.models import Meter
from usage.models import UsageCorrection, UsageRollup
from usage.selectors.id_arrays import int_array, timestamp_array
from usage.selectors.ledger import PieceStats, ledger_stats

HOUR = timedelta(hours=1)
CACHE_SECONDS = 24 * 3600
_PREFIX = "edge1"


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _reader():
    """The connection this module's raw SQL reads through: the router's choice for
    ``UsageRollup`` (the replica on customer pages, when one is set), as the ORM's would be."""
    return connections[router.db_for_read(UsageRollup)]


def _versioned() -> bool:
    return _reader().vendor == "postgresql"


# PostgreSQL: the pieces' (account, hour) pairs joined to the rollups' unique index,
# with each row's version; read where the ledger's pieces are read (the router's choice).
_ROLLUPS_SQL = """
SELECT r.account_id, r.meter_id, r.hour, r.sum_value, r.event_count, r.last_value,
       r.last_timestamp, r.last_event_id, r.xmin::text
FROM unnest(%s::bigint[], %s::timestamptz[]) AS p(account_id, hour)
JOIN usage_usagerollup r ON r.account_id = p.account_id AND r.hour = p.hour
WHERE r.meter_id = ANY(%s::bigint[])
"""


def _rollup_rows(pieces, meter_ids: list[int]) -> dict[tuple[int, int, datetime], tuple]:
    """(account, meter, hour) -> (sum, count, last value, last timestamp, last id, version)
    for the pieces' hours; the version is None where rows have none (SQLite)."""
    wanted = sorted({(a, _hour(s)) for a, s, _ in pieces})
    if _versioned():
        with _reader().cursor() as cursor:
            # Array literals: psycopg's list adaptation runs a dumper per element.
            arrays = [int_array(a for a, _ in wanted), timestamp_array(h for _, h in wanted)]
            cursor.execute(_ROLLUPS_SQL, [*arrays, int_array(meter_ids)])
            rows = cursor.fetchall()
    else:
        pairs = set(wanted)
        found = UsageRollup.objects.filter(
            account_id__in={a for a, _ in pairs},
            hour__in={h for _, h in pairs},
            meter_id__in=meter_ids,
        ).order_by()
        fields = ("account_id", "meter_id", "hour", "sum_value", "event_count", "last_value")
        fields += ("last_timestamp", "last_event_id")
        rows = [
            (*row, None)
            for row in found.values_list(*fields)
            if (row[0], row[2].astimezone(UTC)) in pairs
        ]
    return {(r[0], r[1], r[2].astimezone(UTC)): tuple(r[3:]) for r in rows}


def adjustments_in(keys: set[tuple[int, int, datetime]]) -> dict[tuple[int, int, datetime], int]:
    """The signed quantity adjustments that belong to each (account, meter, hour)."""
    # Imported here: usage.selectors.corrections imports the rollups reader, which
    # imports this module.
    from usage.selectors.corrections import adjustment_hour

    if not keys:
        return {}
    hours = [h for _, _, h in keys]
    found: dict[tuple[int, int, datetime], int] = defaultdict(int)
    for a, m, created, start, end, quantity in UsageCorrection.objects.filter(
        account_id__in={k[0] for k in keys},
        meter_id__in={k[1] for k in keys},
        kind=UsageCorrection.Kind.ADJUST,
        period_start__lt=max(hours) + HOUR,
        period_end__gt=min(hours),
    ).values_list("account_id", "meter_id", "created_at", "period_start", "period_end", "quantity"):
        hour = adjustment_hour(created_at=created, period_start=start, period_end=end)
        if hour is not None and (a, m, hour) in keys:
            found[(a, m, hour)] += quantity
    return found


def _key(a: int, m: int, s: datetime, e: datetime, version: str) -> str:
    return f"{_PREFIX}:{a}:{m}:{int(s.timestamp() * 1e6)}:{int(e.timestamp() * 1e6)}:{version}"


def _pack(stats: PieceStats | None):
    if stats is None:
        return ()
    at = stats.last_at
    return (stats.total, stats.count, stats.last, at[0].isoformat() if at else None, at and at[1])


def _unpack(a: int, m: int, hour: datetime, packed) -> PieceStats | None:
    if not packed:
        return None
    total, count, last, at, event_id = packed
    last_at = (datetime.fromisoformat(at), event_id) if at else None
    return PieceStats(a, m, hour, total, count, last, last_at)


def edge_piece_stats(
    *,
    pieces: Sequence[tuple[int, datetime, datetime]],
    meters: dict[int, Meter],
    last_meter_ids: Iterable[int] = (),
) -> list[PieceStats]:
    """What :func:`usage.selectors.ledger.ledger_stats` returns for ``pieces`` (each
    inside one clock hour, an account's pieces in different hours), per meter of
    ``meters``: non-empty pieces only."""
    meter_ids, last_meter_ids = list(meters), set(last_meter_ids)
    if not pieces or not meter_ids:
        return []
    rollups = _rollup_rows(pieces, meter_ids)
    result: list[PieceStats] = []
    heads: list[tuple[int, int, datetime, tuple]] = []
    cached_keys: dict[str, tuple[int, int, datetime, datetime, datetime]] = {}
    to_read: list[tuple[int, datetime, datetime]] = []
    from_ledger: set[tuple[int, int, datetime]] = set()
    for a, s, e in pieces:
        h = _hour(s)
        needs_ledger = False
        for m in meter_ids:
            row = rollups.get((a, m, h))
            if row is None:
                continue  # no event in the hour
            if s == h and row[3] < e:
                heads.append((a, m, h, row))
            elif row[5] is not None:
                cached_keys[_key(a, m, s, e, row[5])] = (a, m, h, s, e)
            else:
                needs_ledger = True
                from_ledger.add((a, m, h))
        if needs_ledger:
            to_read.append((a, s, e))
    adjustments = adjustments_in({(a, m, h) for a, m, h, _ in heads})
    for a, m, h, (total, count, last, last_ts, last_id, _) in heads:
        adjustment = adjustments.get((a, m, h), 0)
        if meters[m].aggregation == Meter.Aggregation.COUNT:
            count -= adjustment
        else:
            total -= adjustment
        if count or total:
            is_last = m in last_meter_ids
            result.append(
                PieceStats(
                    a,
                    m,
                    h,
                    total,
                    count,
                    last if is_last else None,
                    (last_ts, last_id) if is_last else None,
                )
            )
    if cached_keys:
        hits = cache.get_many(list(cached_keys))
        for key, (a, m, h, _, _) in cached_keys.items():
            if key in hits:
                stats = _unpack(a, m, h, hits[key])
                if stats is not None:
                    result.append(stats)
        misses = {k: v for k, v in cached_keys.items() if k not in hits}
        if misses:
            result += _read_and_keep(misses, meter_ids, last_meter_ids)
    if to_read:
        for stats in ledger_stats(
            pieces=to_read, meter_ids=meter_ids, last_meter_ids=last_meter_ids
        ):
            if (stats.account_id, stats.meter_id, stats.hour) in from_ledger:
                result.append(stats)
    return result


def _read_and_keep(misses, meter_ids, last_meter_ids) -> list[PieceStats]:
    """The missed pieces from the ledger; each kept in the cache if its hour's rollup row
    is still the version it was looked up under."""
    read = sorted({(a, s, e) for a, _, _, s, e in misses.values()}, key=lambda p: (p[0], p[1]))
    found = {
        (st.account_id, st.meter_id, st.hour): st
        for st in ledger_stats(pieces=read, meter_ids=meter_ids, last_meter_ids=last_meter_ids)
    }
    after = _rollup_rows(read, meter_ids)
    keep = {}
    result = []
    for key, (a, m, h, _, _) in misses.items():
        stats = found.get((a, m, h))
        if stats is not None:
            result.append(stats)
        row = after.get((a, m, h))
        if row is not None and key.endswith(f":{row[5]}"):
            keep[key] = _pack(stats)
    if keep:
        cache.set_many(keep, CACHE_SECONDS)
    return result
