"""Reads: ledger events by their identifiers, through ``EventIdentifier``.

On PostgreSQL the ledger is partitioned by month of ``timestamp`` and has no index on
``identifier`` (uniqueness lives in ``usage_eventidentifier``, see
``usage.models.EventIdentifier``): a filter on ``identifier`` would scan every
partition. The identifiers' rows give each event's id and timestamp (one primary-key
probe each), and the ledger is then read by id with the timestamps, so PostgreSQL reads
only the partitions those timestamps fall in (plan-time pruning on ``timestamp IN``).
The same events as ``UsageEvent.objects.filter(identifier__in=...)``: ids are unique,
the timestamps only narrow where to look. An identifier whose event was archived (its
partition detached) has no event here.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import QuerySet

from usage.models import EventIdentifier, UsageEvent


def events_by_identifier(*, identifiers: Iterable[str]) -> QuerySet[UsageEvent]:
    """The ledger events with these identifiers (a queryset: filter, lock, order it)."""
    claims = list(
        EventIdentifier.objects.filter(
            identifier__in=set(identifiers), event_id__isnull=False
        ).values_list("event_id", "timestamp")
    )
    if not claims:
        return UsageEvent.objects.none()
    events = UsageEvent.objects.filter(id__in={event_id for event_id, _ in claims})
    if connection.vendor != "postgresql":  # one unpartitioned table: the ids suffice
        return events
    return events.filter(timestamp__in={timestamp for _, timestamp in claims})
