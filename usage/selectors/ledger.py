"""Reads straight from the usage ledger (``UsageEvent``): the partial edge hours of a
range, which the hourly rollups cannot split, and the units flagged ``too_late``.

Whole hours are read from the rollups by :func:`usage.selectors.rollups.rollup_values`;
:func:`ledger_stats` is the one function that totals ledger events, and only for those
edge pieces (at most two hours per account), in bulk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import reduce
from operator import or_
from typing import NamedTuple

from django.db import connections, router
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncHour

from usage.models import UsageEvent, UsageReport
from usage.selectors.id_arrays import int_array, timestamp_array


class PieceStats(NamedTuple):
    """The events of one account and meter in one edge piece (inside one hour)."""

    account_id: int
    meter_id: int
    hour: datetime
    total: int
    count: int
    last: int | None  # the newest event's value, for ``last`` meters only
    last_at: tuple[datetime, int] | None  # (timestamp, id) of that event


def ledger_stats(
    *,
    pieces: Sequence[tuple[int, datetime, datetime]],
    meter_ids: Iterable[int],
    last_meter_ids: Iterable[int] = (),
) -> list[PieceStats]:
    """Sum, count (and, for ``last_meter_ids``, the newest value) of the events (voided
    ones left out, as the rollups leave them out) of each
    ``(account_id, start, end)`` piece, per meter; each piece lies inside one clock hour
    and an account's pieces lie in different hours. Two queries at most, however many
    pieces: the aggregates grouped by (account, meter, hour), then the newest events."""
    meter_ids, last_meter_ids = list(meter_ids), set(last_meter_ids)
    if not pieces or not meter_ids:
        return []
    rows = _piece_aggregates(pieces, meter_ids)
    newest_keys = {(a, m, t) for a, m, _, _, _, t in rows if m in last_meter_ids}
    newest: dict[tuple[int, int, datetime], tuple[int, int]] = {}
    if newest_keys:
        for a, m, t, event_id, value in UsageEvent.objects.filter(
            account_id__in={k[0] for k in newest_keys},
            meter_id__in={k[1] for k in newest_keys},
            timestamp__in={k[2] for k in newest_keys},
            void__isnull=True,
        ).values_list("account_id", "meter_id", "timestamp", "id", "value"):
            if (a, m, t) in newest_keys and event_id > newest.get((a, m, t), (0, 0))[0]:
                newest[(a, m, t)] = (event_id, value)
    result = []
    for a, m, hour, s, n, t in rows:
        event_id, value = newest.get((a, m, t), (0, None))
        result.append(
            PieceStats(
                account_id=a,
                meter_id=m,
                hour=hour.astimezone(UTC),
                total=int(s or 0),
                count=int(n or 0),
                last=value,
                last_at=(t, event_id) if value is not None else None,
            )
        )
    return result


# On PostgreSQL the pieces are one array parameter each, joined to the ledger: one
# index range scan per piece on (account, meter, timestamp), pruned to its partition at
# run time, and a statement whose size does not grow with the pieces. (An OR of one
# condition per piece cost Django ~6 ms of Python per account to build in a sweep.)
# Its caller (``usage.selectors.edge_pieces``) only asks for pieces whose hour has a
# rollup row for these meters: an hour without one holds no event.
_PIECES_SQL = """
SELECT p.account_id, x.meter_id,
       date_trunc('hour', p.s AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
       x.total, x.n, x.newest
FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS p(account_id, s, e)
-- One index range scan per piece on (account, meter, timestamp): as a LATERAL subquery
-- the scan is parameterized by the piece, whatever the planner guesses of the join (with
-- one account holding most of a partition, a join was planned as a sequential scan of
-- all of it: 100,000,000 rows for a 10,000-event account's piece).
CROSS JOIN LATERAL (
    SELECT e.meter_id, sum(e.value) AS total, count(e.id) AS n, max(e."timestamp") AS newest
    FROM usage_usageevent e
    WHERE e.account_id = p.account_id AND e.meter_id = ANY(%s::bigint[])
      AND e."timestamp" >= p.s AND e."timestamp" < p.e
      AND NOT EXISTS (SELECT 1 FROM usage_voidedevent v WHERE v.event_id = e.id)
    GROUP BY e.meter_id
) x
"""


def _reader():
    """The connection this module's raw SQL reads through: the router's choice for
    ``UsageEvent`` (the replica on customer pages, when one is set), as the ORM's would be."""
    return connections[router.db_for_read(UsageEvent)]


def _piece_aggregates(pieces, meter_ids: list[int]) -> list[tuple]:
    """(account, meter, hour, sum, count, newest timestamp) of each piece's events."""
    if _reader().vendor == "postgresql":
        accounts, starts, ends = zip(*pieces, strict=True)
        meters = int_array(meter_ids)
        # Array literals: psycopg's list adaptation ran a dumper per element.
        arrays = [int_array(accounts), timestamp_array(starts), timestamp_array(ends)]
        with _reader().cursor() as cursor:
            cursor.execute(_PIECES_SQL, [*arrays, meters])
            return cursor.fetchall()
    where = reduce(or_, (Q(account_id=a, timestamp__gte=s, timestamp__lt=e) for a, s, e in pieces))
    return list(
        UsageEvent.objects.filter(where, meter_id__in=meter_ids, void__isnull=True)
        .order_by()
        .annotate(hour=TruncHour("timestamp", tzinfo=UTC))
        .values_list("account_id", "meter_id", "hour")
        .annotate(s=Sum("value"), n=Count("id"), t=Max("timestamp"))
    )


def too_late_value(*, account_id: int, meter, start: datetime, end: datetime) -> int:
    """Units of the period flagged ``too_late`` (never sent to Stripe)."""
    return (
        UsageReport.objects.filter(
            account_id=account_id,
            meter=meter,
            status=UsageReport.Status.TOO_LATE,
            timestamp__gte=start,
            timestamp__lt=end,
        ).aggregate(total=Sum("value"))["total"]
        or 0
    )
