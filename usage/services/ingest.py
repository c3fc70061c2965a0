"""Ingestion: validate a batch, store it in the ledger once, keep the rollups equal to it.

The hot path is set-based and costs the same queries per batch whatever its size: the
meters (cached per process), the batch's customers, and on PostgreSQL one statement that
claims the identifiers (``INSERT ... ON CONFLICT (identifier) DO NOTHING``), inserts the
claimed events and upserts the hourly rollups of exactly the rows it inserted,
aggregated by the database from the insert's own rows, in the batch's transaction, so
the rollups never disagree with the ledger (SQLite: the same in a few statements). One
more query, only when some identifiers were already stored, tells duplicates from
conflicts. The rollup upsert refuses to take an hour past ``MAX_HOUR_SUM``; only then do
a few more queries (``usage.services.hour_cap``) keep the events that fit and take back
the others, which are rejected ``hour_limit_exceeded``. The SQL is in
``usage.services.ledger_writes``; events of the usual shape are validated without the
per-field functions (``usage.event_validation.validate_events``).

Rows are inserted in identifier order and rollups in key order, so two concurrent
batches touching the same identifiers or hours wait for each other instead of
deadlocking.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.mirror.customers import accounts_and_subscription_spans_for_customer_ids
from billing.models import Meter
from usage.event_validation import (
    MAX_HOUR_SUM,
    PAST_WINDOW,
    Code,
    ValidEvent,
    validate_events,
)
from usage.services import ledger_writes
from usage.services.entitlement_ingest import usage_record
from usage.services.entitlement_state import capped_cache_clear
from usage.services.hour_cap import events_store_within_cap
from usage.services.report_claim import TOO_LATE_MARGIN

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
    # The events after which a hard cap was reached (usage.services.entitlement_ingest).
    caps_crossed: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [r.as_dict() for r in self.rejected],
            "identifiers": self.identifiers,
            "caps_crossed": self.caps_crossed,
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
    capped_cache_clear()


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


def reporting_margin() -> timedelta:
    """How much of Stripe's 35 days ingestion keeps back so that every accepted event is
    still reportable: an event waits at most the batching wait and one reporting pass
    before it is claimed, the sender calls a report ``too_late`` ``TOO_LATE_MARGIN``
    before Stripe's edge, and ``USAGE_INGEST_PAST_MARGIN_SECONDS`` covers retries and
    backoff after 429s, 5xx and worker restarts. With the defaults: 10 min + 300 s +
    10 s + 3,600 s = 1:15:10."""
    return TOO_LATE_MARGIN + timedelta(
        seconds=settings.USAGE_REPORT_BATCH_MAX_WAIT_SECONDS
        + settings.USAGE_REPORT_INTERVAL_SECONDS
        + settings.USAGE_INGEST_PAST_MARGIN_SECONDS
    )


def oldest_accepted(*, now: datetime) -> datetime:
    """The oldest timestamp ingestion accepts. Stripe takes a meter event whose timestamp
    is within the past 35 days and at most 5 minutes in the future (design.md, "Stripe
    facts"); accepting up to 35 days would store events that can only become
    ``too_late`` (issue 12, item 5)."""
    return (now - PAST_WINDOW + reporting_margin()).replace(microsecond=0)


def subscription_ended_before(spans, moment: datetime) -> bool:
    """Whether the customer had no live subscription at ``moment`` because one had
    ended by then: some span ended at or before it and none covers it. Usage from
    before the first subscription started is kept (reported in calendar months, as
    the README describes), as is usage of accounts that never subscribed."""
    if not spans:
        return False
    covered = any(start <= moment and (end is None or moment < end) for start, end in spans)
    return not covered and any(end is not None and end <= moment for _, end in spans)


# -- the service ------------------------------------------------------------------------
def usage_events_ingest(*, events: list, now: datetime | None = None) -> IngestResult:
    """Validate and store a batch (at most ``MAX_BATCH``), event by event.

    Returns counts of accepted and duplicate events and one rejection per bad event.
    Raises ``ValueError`` for a batch that is too large (the view answers 413 first).
    """
    if len(events) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} events per request")
    now = now or timezone.now()
    oldest = oldest_accepted(now=now)
    result = IngestResult(identifiers=[None] * len(events))
    valid, invalid = validate_events(events, now, oldest=oldest)
    for index, event, exc in invalid:
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
    customers = accounts_and_subscription_spans_for_customer_ids(
        customer_ids={v.customer for v in valid}
    )
    resolved: list[ValidEvent] = []
    for row in valid:
        meter = meters.get(row.event_name)
        account_id = customers[row.customer][0] if row.customer in customers else None
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
            resolved.append(row)

    # Events at a time the customer's subscriptions had ended (read with the customers);
    # a retry of one stored before the end is still a duplicate (checked below).
    outside: list[ValidEvent] = []
    if any(spans for _, spans in customers.values()):
        live = []
        for row in resolved:
            ended = subscription_ended_before(customers[row.customer][1], row.timestamp)
            (outside if ended else live).append(row)
        resolved = live

    # The first occurrence of an identifier in the batch is the one inserted; later
    # ones are duplicates or conflicts of it.
    first: dict[str, ValidEvent] = {}
    for row in resolved:
        if not row.identifier:
            row.identifier = f"md_{uuid.uuid4().hex}"
        if row.identifier not in first:
            first[row.identifier] = row
    to_insert = [first[identifier] for identifier in sorted(first)]

    with transaction.atomic():
        # Refused rows are inserted, deleted again and left out of ``inserted``.
        inserted, over_cap = events_store_within_cap(rows=to_insert, received_at=now)
        refused = {row.identifier for row in over_cap}
        known = [i for i in first if i not in inserted and i not in refused]
        known += [r.identifier for r in outside if r.identifier and r.identifier not in first]
        stored = ledger_writes.stored_hashes(known) if known else {}
    if outside or len(first) < len(resolved):  # rows that may repeat an inserted identifier
        for identifier in inserted:
            stored[identifier] = first[identifier].payload_hash

    for row in outside:
        if row.identifier and stored.get(row.identifier) == row.payload_hash:
            result.duplicates += 1
            result.identifiers[row.index] = row.identifier
        else:
            result.rejected.append(
                Rejection(
                    row.index,
                    row.identifier or None,
                    Code.NO_SUBSCRIPTION,
                    f"timestamp: the customer {row.customer!r} had no live subscription at "
                    f"{row.timestamp:%Y-%m-%dT%H:%M:%SZ} (its subscription had ended)",
                )
            )
    accepted_ids = result.identifiers
    for row in resolved:
        if first[row.identifier] is row and row.identifier in inserted:
            result.accepted += 1
            accepted_ids[row.index] = row.identifier
            result.account_ids.add(row.account_id)
        elif row.identifier in refused:
            result.rejected.append(
                Rejection(
                    row.index,
                    row.identifier,
                    Code.HOUR_LIMIT_EXCEEDED,
                    f"value: its hour ({row.timestamp:%Y-%m-%dT%H}:00Z) would hold more than "
                    f"{MAX_HOUR_SUM} for this customer and meter",
                )
            )
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
    result.caps_crossed = usage_record(
        rows=[first[i] for i in inserted],
        event_ids=inserted,
        aggregations={pk: aggregation for pk, aggregation in meters.values()},
        now=now,
    )
    return result
