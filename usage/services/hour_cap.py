"""Add a batch's new events to the hourly rollups without any hour crossing its cap.

The common case costs nothing extra: one guarded upsert adds every hour whose stored sum
leaves room (on PostgreSQL inside the statement that inserts the events,
``ledger_writes.insert_events_with_rollups``; elsewhere ``ledger_writes.upsert_rollups``).
Only when an hour is full (or the batch alone would overfill it) does this read the
hours' sums under a row lock, keep the events that fit, in the order they were sent,
and take back the rest from the ledger (they were inserted a statement earlier, in the
same transaction): at most a few more queries per batch, never per event. An event is
refused when it would make its hour's sum cross ``MAX_HOUR_SUM``; a smaller one later
in the batch may still fit.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from functools import reduce
from operator import or_

from django.db import connection
from django.db.models import Q

from usage.event_validation import MAX_HOUR_SUM, ValidEvent
from usage.models import UsageRollup
from usage.services import ledger_writes
from usage.services.ledger_writes import RollupKey, hour_of

# A key can still be refused after its sum was read only if another batch created its
# row in between; then its row exists and the next read locks it. Bounded anyway.
_ATTEMPTS = 3


def _stored_sums(keys: set[RollupKey]) -> dict[RollupKey, int]:
    """The keys' stored sums, rows locked until the transaction ends (PostgreSQL)."""
    where = reduce(or_, (Q(account_id=a, meter_id=m, hour=h) for a, m, h in keys))
    rows = UsageRollup.objects.select_for_update().filter(where).order_by()
    return {
        (a, m, ledger_writes.as_utc(h)): s
        for a, m, h, s in rows.values_list("account_id", "meter_id", "hour", "sum_value")
    }


def _fit(rows: list[ValidEvent], room: int) -> tuple[list[ValidEvent], list[ValidEvent]]:
    """The rows that fit in ``room``, in batch order, and those that do not."""
    kept, refused = [], []
    for row in rows:
        if row.value <= room:
            kept.append(row)
            room -= row.value
        else:
            refused.append(row)
    return kept, refused


def events_store_within_cap(
    *, rows: list[ValidEvent], received_at: datetime
) -> tuple[dict[str, int], list[ValidEvent]]:
    """Store ``rows`` (identifier order, each identifier once; known identifiers are
    skipped) and add the stored ones to the rollups within the cap. Returns identifier
    -> event id of the rows kept, and the rows refused because their hour is full
    (inserted, then deleted again in the same transaction)."""
    if connection.vendor == "postgresql":
        ids, pending = ledger_writes.insert_events_with_rollups(rows, received_at)
        if not pending:
            return ids, []
        inserted = [row for row in rows if row.identifier in ids]
        return ids, rollups_add_within_cap(rows=inserted, ids=ids, pending=pending)
    ids = ledger_writes.insert_events(rows, received_at)
    inserted = [row for row in rows if row.identifier in ids]
    return ids, rollups_add_within_cap(rows=inserted, ids=ids)


def rollups_add_within_cap(
    *, rows: list[ValidEvent], ids: dict[str, int], pending: set[RollupKey] | None = None
) -> list[ValidEvent]:
    """Add ``rows`` (just inserted; ``ids``: identifier -> event id) to the rollups and
    return the rows refused because their hour is full; those are deleted from the
    ledger again (and dropped from ``ids``), so ledger and rollups stay equal.

    ``pending``: the rows were already offered to the guarded upsert and these keys
    were refused (every other key was added); only their rows are left to place."""
    by_key: dict[RollupKey, list[ValidEvent]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r.index):
        by_key[(row.account_id, row.meter_id, hour_of(row.timestamp))].append(row)
    if pending is None:
        # Keys whose batch sum alone is over the cap go straight to the careful path.
        pending = {
            k for k, key_rows in by_key.items() if sum(r.value for r in key_rows) > MAX_HOUR_SUM
        }
        optimistic = [r for k, key_rows in by_key.items() if k not in pending for r in key_rows]
        added = ledger_writes.upsert_rollups(optimistic, ids)
        pending |= {k for k in by_key if k not in pending} - added
    refused: list[ValidEvent] = []
    for attempt in range(_ATTEMPTS):
        if not pending:
            break
        stored = _stored_sums(pending)
        kept: list[ValidEvent] = []
        for key in pending:
            fits, over = _fit(by_key[key], MAX_HOUR_SUM - stored.get(key, 0))
            if attempt == _ATTEMPTS - 1:
                fits, over = [], by_key[key]
            kept.extend(fits)
            refused.extend(over)
            by_key[key] = fits
        ledger_writes.delete_events([ids[r.identifier] for r in refused if r.identifier in ids])
        for row in refused:
            ids.pop(row.identifier, None)
        added = ledger_writes.upsert_rollups(kept, ids)
        pending = {k for k in pending if by_key[k]} - added
    return refused
