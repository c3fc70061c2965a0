"""The one reader of the hourly rollups (``UsageRollup``).

:func:`rollup_values` answers, for many accounts and meters at once, a meter's value
over each account's range ``[start, end)``: per hour bucket, per UTC-day bucket, or
for the whole range. It is exact at the edges: whole hours come from the rollups
(O(buckets), never O(events)), the partial hour at either end of a range from the
hour's rollup row when it settles it, else from the ledger once per version of that row
(:mod:`usage.selectors.edge_pieces`). Its query count is constant per call: one for the
rollups, one more for the newest rows of ``last`` meters when grouped, and for partial
edge hours one for their rollup rows, one for adjustments, and two on the ledger plus
one re-read of the rollup rows when a piece is not cached.

Staff quantity adjustments (``UsageCorrection`` of kind ``adjust``, no events named) are
added to their hour's rollup row by the correction service (``sum_value`` for sum meters,
``event_count`` for count meters), so every reader here sees them with no extra query:
in whole hours, that is, like an event of the hour that only a range holding the whole
hour counts (the partial edge pieces come from the ledger, which has no adjustments).

:func:`meter_value` is the one place that turns sums, counts and last values into a
meter's value (``sum`` / ``count`` / ``last``). Every usage number Meterdesk shows,
alerts on, reconciles or recognizes as revenue is read through here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce
from operator import or_
from typing import Literal

from django.db.models import Max, Min, Q, Sum
from django.db.models.functions import TruncDay

from billing.models import Meter
from usage.models import UsageRollup
from usage.selectors.edge_pieces import edge_piece_stats

Group = Literal["hour", "day", "range"]
HOUR = timedelta(hours=1)
_NEVER = (datetime.min.replace(tzinfo=UTC), 0)


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + HOUR


@dataclass(frozen=True, slots=True)
class Bucket:
    """A bucket with usage: its start, the meter's value in it, and how many events."""

    start: datetime
    value: int
    events: int


@dataclass(slots=True)
class _Stats:
    total: int = 0
    count: int = 0
    last: int = 0
    last_at: tuple[datetime, int] = _NEVER

    def add(self, total, count, last=None, last_at=None) -> None:
        self.total += int(total or 0)
        self.count += int(count or 0)
        if last is not None and last_at is not None and last_at >= self.last_at:
            self.last, self.last_at = int(last), last_at


def meter_value(*, aggregation: str, total: int, count: int, last: int | None) -> int:
    """What a meter shows for a set of events: the sum of their values, their count,
    or the newest value. The only aggregation switch over usage."""
    if aggregation == Meter.Aggregation.COUNT:
        return count
    if aggregation == Meter.Aggregation.LAST:
        return last or 0
    return total


def _bucket_key(moment: datetime, group: Group, range_start: datetime) -> datetime:
    if group == "range":
        return range_start
    hour = floor_hour(moment.astimezone(UTC))
    return hour.replace(hour=0) if group == "day" else hour


def _split(start: datetime, end: datetime):
    """Whole hours ``[first, last)`` (or None) and the partial pieces at the edges."""
    first, last = ceil_hour(start), floor_hour(end)
    if first > last:  # inside one hour
        return None, [(start, end)]
    pieces = [(s, e) for s, e in ((start, first), (last, end)) if s < e]
    return ((first, last) if first < last else None), pieces


def _any(conditions: Iterable[Q]) -> Q | None:
    conditions = list(conditions)
    return reduce(or_, conditions) if conditions else None


def rollup_values(
    *,
    ranges: Mapping[int, tuple[datetime, datetime]],
    meters: Iterable[Meter],
    group: Group = "range",
) -> dict[tuple[int, int], list[Bucket]]:
    """``{(account_id, meter_id): [Bucket, ...]}`` for each account's ``[start, end)``
    in ``ranges`` and each of ``meters``: buckets with usage only, in time order.

    ``group``: ``"hour"`` or ``"day"`` (UTC) buckets, or ``"range"``: one bucket, keyed
    by the range's start, for the whole range. Exact to the second at both ends."""
    meters = {m.pk: m for m in meters}
    stats: dict[tuple[int, int], dict[datetime, _Stats]] = defaultdict(dict)
    whole: dict[tuple[datetime, datetime], list[int]] = defaultdict(list)
    pieces = []
    for account_id, (start, end) in ranges.items():
        if start >= end:
            continue
        hours, edges = _split(start, end)
        if hours is not None:
            whole[hours].append(account_id)
        pieces.extend((account_id, s, e) for s, e in edges)
    if not meters:
        return {}

    def add(account_id, meter_id, moment, *values):
        key = _bucket_key(moment, group, ranges[account_id][0])
        bucket = stats[(account_id, meter_id)].get(key)
        if bucket is None:
            bucket = stats[(account_id, meter_id)][key] = _Stats()
        bucket.add(*values)

    last_ids = {pk for pk, m in meters.items() if m.aggregation == Meter.Aggregation.LAST}
    where = _any(
        Q(account_id__in=ids, hour__gte=lo, hour__lt=hi) for (lo, hi), ids in whole.items()
    )
    if where is not None:
        rows = UsageRollup.objects.filter(where, meter_id__in=list(meters)).order_by()
        if group == "hour":
            for a, m, hour, s, n, last, ts, event_id in rows.values_list(
                "account_id", "meter_id", "hour", "sum_value", "event_count",
                "last_value", "last_timestamp", "last_event_id",
            ):  # fmt: skip
                add(a, m, hour, s, n, last, (ts, event_id))
        else:
            _add_grouped(rows, group, last_ids, add)
    for row in edge_piece_stats(pieces=pieces, meters=meters, last_meter_ids=last_ids):
        add(row.account_id, row.meter_id, row.hour, row.total, row.count, row.last, row.last_at)

    result = {}
    for (account_id, meter_id), buckets in stats.items():
        aggregation = meters[meter_id].aggregation
        result[(account_id, meter_id)] = [
            Bucket(
                start=key,
                value=meter_value(
                    aggregation=aggregation, total=b.total, count=b.count, last=b.last
                ),
                events=b.count,
            )
            for key, b in sorted(buckets.items())
        ]
    return result


def _add_grouped(rows, group: Group, last_ids: set[int], add) -> None:
    """Rollups summed per (account, meter[, day]) in SQL; for ``last`` meters the newest
    row of each group is read back by its ``last_timestamp`` (unique per account and
    meter: it lies inside the row's hour)."""
    keys = ["account_id", "meter_id"]
    if group == "day":
        rows = rows.annotate(day=TruncDay("hour", tzinfo=UTC))
        keys.append("day")
    grouped = rows.values_list(*keys).annotate(
        s=Sum("sum_value"), n=Sum("event_count"), t=Max("last_timestamp")
    )
    newest: dict[tuple[int, int, datetime], datetime] = {}
    for row in grouped:
        a, m, s, n, t = row[0], row[1], row[-3], row[-2], row[-1]
        moment = row[2] if group == "day" else t
        add(a, m, moment, s, n)
        if m in last_ids:
            newest[(a, m, t)] = moment
    if not newest:
        return
    for a, m, t, value, event_id in UsageRollup.objects.filter(
        account_id__in={k[0] for k in newest},
        meter_id__in={k[1] for k in newest},
        last_timestamp__in={k[2] for k in newest},
    ).values_list("account_id", "meter_id", "last_timestamp", "last_value", "last_event_id"):
        if (a, m, t) in newest:
            add(a, m, newest[(a, m, t)], 0, 0, value, (t, event_id))


# -- one account, one meter ----------------------------------------------------------------
def rollup_buckets(
    *, account_id: int, meter: Meter, start: datetime, end: datetime, group: Group
) -> list[Bucket]:
    """:func:`rollup_values` for one account and meter."""
    return rollup_values(ranges={account_id: (start, end)}, meters=[meter], group=group).get(
        (account_id, meter.pk), []
    )


def rollup_value(*, account_id: int, meter: Meter, start: datetime, end: datetime) -> int:
    """The meter's value for the account's events with ``start <= timestamp < end``."""
    buckets = rollup_buckets(
        account_id=account_id, meter=meter, start=start, end=end, group="range"
    )
    return buckets[0].value if buckets else 0


def rollup_series(
    *, account_id: int, meter: Meter, start: datetime, end: datetime, bucket: Group = "hour"
) -> list[tuple[datetime, int]]:
    """(bucket start, value) of the buckets with usage in ``[start, end)``, in time order."""
    if bucket not in ("hour", "day"):
        raise ValueError(f"unknown bucket: {bucket!r}")
    return [
        (b.start, b.value)
        for b in rollup_buckets(
            account_id=account_id, meter=meter, start=start, end=end, group=bucket
        )
    ]


# -- other reads of the rollups ----------------------------------------------------------
def latest_event_at(*, account) -> datetime | None:
    """When the account's newest event happened (any meter)."""
    return UsageRollup.objects.filter(account=account).aggregate(t=Max("last_timestamp"))["t"]


def rollup_pairs(
    *, account_id: int | None = None, event_name: str | None = None
) -> list[tuple[int, int, datetime, datetime]]:
    """(account_id, meter_id, first hour, last hour) of every pair with rollups."""
    pairs = UsageRollup.objects.all()
    if account_id is not None:
        pairs = pairs.filter(account_id=account_id)
    if event_name is not None:
        pairs = pairs.filter(meter__event_name=event_name)
    return [
        (row["account_id"], row["meter_id"], row["first"], row["last"])
        for row in pairs.values("account_id", "meter_id")
        .annotate(first=Min("hour"), last=Max("hour"))
        .order_by("account_id", "meter_id")
    ]
