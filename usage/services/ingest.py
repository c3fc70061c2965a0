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

import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from billing.mirror.customers import account_ids_for_customer_ids
from billing.models import Meter

MAX_BATCH = 1000
MAX_IDENTIFIER = 100
# Values are whole numbers; the cap keeps an hour's sum of a full batch far from the
# 64-bit limit of the rollup columns.
MAX_VALUE = 10**15
PAST_WINDOW = timedelta(days=35)
FUTURE_WINDOW = timedelta(minutes=5)


class Code:
    MISSING_FIELD = "missing_field"
    UNKNOWN_METER = "unknown_meter"
    UNKNOWN_CUSTOMER = "unknown_customer"
    INVALID_VALUE = "invalid_value"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    IDENTIFIER_TOO_LONG = "identifier_too_long"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    # Additions to the contract's list (documented in the README): an entry that is
    # not a JSON object, and an identifier that is not a non-empty string.
    INVALID_EVENT = "invalid_event"
    INVALID_IDENTIFIER = "invalid_identifier"


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


@dataclass
class _Valid:
    index: int
    identifier: str
    event_name: str
    customer: str
    value: int
    timestamp: datetime
    payload_hash: str
    account_id: int = 0
    meter_id: int = 0


class _Invalid(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


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


# -- validation -------------------------------------------------------------------------
def _required_string(event: dict, name: str) -> str:
    value = event.get(name)
    if value is None or value == "":
        raise _Invalid(Code.MISSING_FIELD, f"{name}: this field is required")
    if not isinstance(value, str):
        raise _Invalid(Code.MISSING_FIELD, f"{name}: must be a string")
    return value


def _identifier(event: dict) -> str | None:
    identifier = event.get("identifier")
    if identifier is None:
        return None
    if not isinstance(identifier, str) or not identifier.strip():
        raise _Invalid(Code.INVALID_IDENTIFIER, "identifier: must be a non-empty string")
    if len(identifier) > MAX_IDENTIFIER:
        raise _Invalid(
            Code.IDENTIFIER_TOO_LONG,
            f"identifier: at most {MAX_IDENTIFIER} characters, got {len(identifier)}",
        )
    return identifier


def _value(event: dict) -> int:
    if "value" not in event or event["value"] is None:
        return 1
    raw = event["value"]
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise _Invalid(Code.INVALID_VALUE, "value: must be a whole number >= 0")
    if isinstance(raw, str):
        if not raw.isascii() or not raw.isdigit():
            raise _Invalid(Code.INVALID_VALUE, "value: must be a whole number >= 0")
        raw = int(raw)
    if raw < 0 or raw > MAX_VALUE:
        raise _Invalid(Code.INVALID_VALUE, f"value: must be between 0 and {MAX_VALUE}")
    return raw


def parse_timestamp(raw, *, name: str = "timestamp") -> datetime:
    """Unix seconds (an integer) or ISO 8601 with an offset, as an aware UTC datetime."""
    if isinstance(raw, bool):
        raise _Invalid(Code.INVALID_TIMESTAMP, f"{name}: must be unix seconds or ISO 8601")
    if isinstance(raw, int):
        try:
            return datetime.fromtimestamp(raw, UTC)
        except (OverflowError, OSError, ValueError):
            raise _Invalid(Code.INVALID_TIMESTAMP, f"{name}: not a valid unix time") from None
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise _Invalid(
                Code.INVALID_TIMESTAMP, f"{name}: not unix seconds or ISO 8601: {raw[:40]!r}"
            ) from None
        if parsed.tzinfo is None:
            raise _Invalid(
                Code.INVALID_TIMESTAMP, f"{name}: ISO 8601 needs an offset (Z or +hh:mm)"
            )
        return parsed.astimezone(UTC)
    raise _Invalid(Code.INVALID_TIMESTAMP, f"{name}: must be unix seconds or ISO 8601")


def _timestamp(event: dict, now: datetime) -> tuple[datetime, bool]:
    """The event's time, to the second (Stripe's resolution), and whether it was given."""
    raw = event.get("timestamp")
    if raw is None:
        return now.replace(microsecond=0), False
    ts = parse_timestamp(raw).replace(microsecond=0)
    if ts < now - PAST_WINDOW:
        raise _Invalid(Code.TIMESTAMP_OUT_OF_RANGE, "timestamp: must be within the past 35 days")
    if ts > now + FUTURE_WINDOW:
        raise _Invalid(
            Code.TIMESTAMP_OUT_OF_RANGE, "timestamp: must be at most 5 minutes in the future"
        )
    return ts, True


def payload_hash(*, event_name: str, customer: str, value: int, timestamp: datetime | None) -> str:
    """What makes two events with one identifier "the same event".

    A timestamp the client left out is hashed as absent, so resending an event without
    one is a duplicate, not a conflict.
    """
    ts = None if timestamp is None else timestamp.isoformat()
    canonical = json.dumps([event_name, customer, value, ts], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _validate(index: int, event, now: datetime) -> _Valid:
    if not isinstance(event, dict):
        raise _Invalid(Code.INVALID_EVENT, f"events[{index}]: must be a JSON object")
    event_name = _required_string(event, "event_name")
    customer = _required_string(event, "customer")
    identifier = _identifier(event)
    value = _value(event)
    timestamp, given = _timestamp(event, now)
    return _Valid(
        index=index,
        identifier=identifier or "",
        event_name=event_name,
        customer=customer,
        value=value,
        timestamp=timestamp,
        payload_hash=payload_hash(
            event_name=event_name,
            customer=customer,
            value=value,
            timestamp=timestamp if given else None,
        ),
    )


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


def _insert_events(rows: list[_Valid], received_at: datetime) -> dict[str, int]:
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


def _upsert_rollups(rows: list[_Valid], ids: dict[str, int]) -> None:
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
    valid: list[_Valid] = []
    for index, event in enumerate(events):
        try:
            valid.append(_validate(index, event, now))
        except _Invalid as exc:
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
    resolved: list[_Valid] = []
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
    first: dict[str, _Valid] = {}
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
