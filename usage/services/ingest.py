"""Ingestion: validate a batch, store it in the ledger once, keep the rollups equal to it.

The hot path is set-based and costs four queries per batch whatever its size: the
meters (cached per process), the batch's customers, one ``INSERT ... ON CONFLICT
(identifier) DO NOTHING RETURNING`` for the events, and one ``INSERT ... ON CONFLICT
DO UPDATE`` for the hourly rollups of exactly the rows that were inserted, both in the
same transaction, so the rollups never disagree with the ledger. A fifth query, only
when some identifiers were already stored, tells duplicates from conflicts.

Rows are inserted in identifier order and rollups in key order, so two concurrent
batches touching the same identifiers or hours wait for each other instead of
deadlocking.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from billing.mirror.customers import account_ids_for_customer_ids
from billing.models import Meter
from usage.event_validation import Code, InvalidEvent, ValidEvent, validate_event

MAX_BATCH = 1000


@dataclass
class Rejection:
    index: int
    identifier: str | None
    code: str
    message: str

    def as_dict(self) -> dict:
        return {
            "index": self.index,
            "identifier": self.identifier,
            "code": self.code,
            "message": self.message,
        }


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    # Per input index: the identifier stored for an accepted or duplicate event (the
    # client's, or the one generated for it), None for a rejected one.
    identifiers: list[str | None] = field(default_factory=list)
    # Accounts that got new usage (not part of the API answer): alerts follow them.
    account_ids: set[int] = field(default_factory=set)

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [r.as_dict() for r in self.rejected],
            "identifiers": self.identifiers,
        }


# -- meters, cached per process by event name ------------------------------------------
_meter_cache: dict[str, tuple[int, str]] = {}
_meter_cache_loaded = 0.0
_meter_cache_lock = threading.Lock()


def meter_cache_clear() -> None:
    global _meter_cache_loaded
    with _meter_cache_lock:
        _meter_cache.clear()
        _meter_cache_loaded = 0.0


def _active_meters() -> dict[str, tuple[int, str]]:
    """event_name -> (meter id, aggregation) of active meters; one query per TTL."""
    global _meter_cache, _meter_cache_loaded
    ttl = settings.USAGE_METER_CACHE_SECONDS
    now = time.monotonic()
    with _meter_cache_lock:
        if ttl > 0 and _meter_cache_loaded and now - _meter_cache_loaded < ttl:
            return _meter_cache
    meters = {
        name: (pk, aggregation)
        for pk, name, aggregation in Meter.objects.filter(status=Meter.Status.ACTIVE).values_list(
            "pk", "event_name", "aggregation"
        )
    }
    with _meter_cache_lock:
        _meter_cache, _meter_cache_loaded = meters, now
    return meters


# -- SQL --------------------------------------------------------------------------------
def _source(columns: list[tuple[str, str]], rows: list[tuple]) -> tuple[str, list]:
    """The rows as an INSERT source: on PostgreSQL ``SELECT ... FROM unnest(arrays)``
    (one parameter per column, whatever the batch size), elsewhere ``VALUES``."""
    names = ", ".join(name for name, _ in columns)
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"%s::{sql_type}[]" for _, sql_type in columns)
        params = [list(column) for column in zip(*rows, strict=True)]
        return f"SELECT * FROM unnest({arrays}) AS u({names}) ORDER BY 1, 2, 3", params
    adapt = connection.ops.adapt_datetimefield_value
    one = "(" + ",".join(["%s"] * len(columns)) + ")"
    params = [adapt(v) if isinstance(v, datetime) else v for row in rows for v in row]
    return "VALUES " + ",".join([one] * len(rows)), params


def _insert_events(rows: list[ValidEvent], received_at: datetime) -> dict[str, int]:
    """Insert the rows (skipping known identifiers): identifier -> id of those inserted."""
    if not rows:
        return {}
    table = connection.ops.quote_name("usage_usageevent")
    source, params = _source(
        [
            ("identifier", "varchar"),
            ("account_id", "bigint"),
            ("meter_id", "bigint"),
            ("value", "bigint"),
            ("timestamp", "timestamptz"),
            ("received_at", "timestamptz"),
            ("payload_hash", "varchar"),
        ],
        [
            (r.identifier, r.account_id, r.meter_id, r.value, r.timestamp, received_at,
             r.payload_hash)
            for r in rows
        ],
    )  # fmt: skip
    sql = (
        f"INSERT INTO {table} (identifier, account_id, meter_id, value, timestamp, "
        f"received_at, payload_hash) {source} "
        "ON CONFLICT (identifier) DO NOTHING RETURNING identifier, id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())


def _upsert_rollups(rows: list[ValidEvent], ids: dict[str, int]) -> None:
    """Add exactly these (newly inserted) rows to the hourly rollups."""
    if not rows:
        return
    buckets: dict[tuple[int, int, datetime], list] = {}
    for row in rows:
        hour = row.timestamp.replace(minute=0, second=0, microsecond=0)
        event_id = ids[row.identifier]
        bucket = buckets.get((row.account_id, row.meter_id, hour))
        if bucket is None:
            buckets[(row.account_id, row.meter_id, hour)] = [
                row.value,
                1,
                row.value,
                row.timestamp,
                event_id,
            ]
            continue
        bucket[0] += row.value
        bucket[1] += 1
        if (row.timestamp, event_id) > (bucket[3], bucket[4]):
            bucket[2], bucket[3], bucket[4] = row.value, row.timestamp, event_id
    table = connection.ops.quote_name("usage_usagerollup")
    source, params = _source(
        [
            ("account_id", "bigint"),
            ("meter_id", "bigint"),
            ("hour", "timestamptz"),
            ("sum_value", "bigint"),
            ("event_count", "bigint"),
            ("last_value", "bigint"),
            ("last_timestamp", "timestamptz"),
            ("last_event_id", "bigint"),
        ],
        [(*key, *bucket) for key, bucket in sorted(buckets.items())],
    )
    newer = (
        f"(excluded.last_timestamp, excluded.last_event_id) > "
        f"({table}.last_timestamp, {table}.last_event_id)"
    )
    sql = (
        f"INSERT INTO {table} (account_id, meter_id, hour, sum_value, event_count, "
        f"last_value, last_timestamp, last_event_id) {source} "
        "ON CONFLICT (account_id, meter_id, hour) DO UPDATE SET "
        f"sum_value = {table}.sum_value + excluded.sum_value, "
        f"event_count = {table}.event_count + excluded.event_count, "
        f"last_value = CASE WHEN {newer} THEN excluded.last_value "
        f"ELSE {table}.last_value END, "
        f"last_timestamp = CASE WHEN {newer} THEN excluded.last_timestamp "
        f"ELSE {table}.last_timestamp END, "
        f"last_event_id = CASE WHEN {newer} THEN excluded.last_event_id "
        f"ELSE {table}.last_event_id END"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _stored_hashes(identifiers: list[str]) -> dict[str, str]:
    from usage.models import UsageEvent

    return dict(
        UsageEvent.objects.filter(identifier__in=identifiers).values_list(
            "identifier", "payload_hash"
        )
    )


# -- the service ------------------------------------------------------------------------
def usage_events_ingest(*, events: list, now: datetime | None = None) -> IngestResult:
    """Validate and store a batch (at most ``MAX_BATCH``), event by event.

    Returns counts of accepted and duplicate events and one rejection per bad event.
    Raises ``ValueError`` for a batch that is too large (the view answers 413 first).
    """
    if len(events) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} events per request")
    now = now or timezone.now()
    result = IngestResult(identifiers=[None] * len(events))
    valid: list[ValidEvent] = []
    for index, event in enumerate(events):
        try:
            valid.append(validate_event(index, event, now))
        except InvalidEvent as exc:
            identifier = event.get("identifier") if isinstance(event, dict) else None
            result.rejected.append(
                Rejection(
                    index,
                    identifier if isinstance(identifier, str) else None,
                    exc.code,
                    exc.message,
                )
            )

    meters = _active_meters() if valid else {}
    customers = account_ids_for_customer_ids(customer_ids={v.customer for v in valid})
    resolved: list[ValidEvent] = []
    for row in valid:
        meter = meters.get(row.event_name)
        account_id = customers.get(row.customer)
        if meter is None:
            result.rejected.append(
                Rejection(
                    row.index,
                    row.identifier or None,
                    Code.UNKNOWN_METER,
                    f"event_name: no active meter named {row.event_name!r}",
                )
            )
        elif account_id is None:
            result.rejected.append(
                Rejection(
                    row.index,
                    row.identifier or None,
                    Code.UNKNOWN_CUSTOMER,
                    f"customer: no account has the Stripe customer {row.customer!r}",
                )
            )
        else:
            row.meter_id, row.account_id = meter[0], account_id
            if not row.identifier:
                row.identifier = f"md_{uuid.uuid4().hex}"
            resolved.append(row)

    # The first occurrence of an identifier in the batch is the one inserted; later
    # ones are duplicates or conflicts of it.
    first: dict[str, ValidEvent] = {}
    for row in resolved:
        first.setdefault(row.identifier, row)
    to_insert = sorted(first.values(), key=lambda r: r.identifier)

    with transaction.atomic():
        inserted = _insert_events(to_insert, now)
        _upsert_rollups([first[i] for i in inserted], inserted)
        known = [i for i in first if i not in inserted]
        stored = _stored_hashes(known) if known else {}
    for identifier in inserted:
        stored[identifier] = first[identifier].payload_hash

    for row in resolved:
        if first[row.identifier] is row and row.identifier in inserted:
            result.accepted += 1
            result.identifiers[row.index] = row.identifier
            result.account_ids.add(row.account_id)
        elif stored.get(row.identifier, row.payload_hash) == row.payload_hash:
            result.duplicates += 1
            result.identifiers[row.index] = row.identifier
        else:
            result.rejected.append(
                Rejection(
                    row.index,
                    row.identifier,
                    Code.IDEMPOTENCY_CONFLICT,
                    "identifier: already stored with another event_name, customer, value "
                    "or timestamp",
                )
            )
    result.rejected.sort(key=lambda r: r.index)
    return result
