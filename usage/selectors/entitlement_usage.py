"""The period usage an entitlement check starts from, read from the hourly rollups.

Used to rebuild the Redis usage hash (``usage.services.entitlement_state``) and when
Redis is unavailable: ``rollup_values`` over each account's period, an index range of at
most 744 hourly rows plus the two partial edge hours from the ledger, never a scan.
"""

from __future__ import annotations

from datetime import UTC, datetime

from billing.models import Meter
from usage.models import UsageRollup
from usage.selectors.entitlement_snapshot import Snapshot
from usage.selectors.rollups import floor_hour, rollup_values


def micros(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (the Redis hash's and scripts' time)."""
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _meters_of(snapshot: Snapshot) -> list[Meter]:
    return [Meter(pk=m.id, aggregation=m.aggregation) for m in snapshot.meters.values()]


def usage_from_database(
    periods: dict[int, tuple[datetime, datetime]], snapshots: dict[int, Snapshot]
) -> dict[int, dict[int, int]]:
    """``{account id: {meter id: value}}`` over each account's period, from the rollups."""
    if not periods:
        return {}
    any_snapshot = next(iter(snapshots.values()))
    values = rollup_values(ranges=periods, meters=_meters_of(any_snapshot), group="range")
    usage: dict[int, dict[int, int]] = {a: {} for a in periods}
    for (account_id, meter_id), buckets in values.items():
        usage[account_id][meter_id] = buckets[0].value if buckets else 0
    return usage


def last_times(periods, last_ids) -> dict[tuple[int, int], int]:
    """The newest rollup time (micros) of each account's ``last`` meters in its period:
    an event must be newer to replace the value (equal times: the later id wins)."""
    if not periods or not last_ids:
        return {}
    found: dict[tuple[int, int], int] = {}
    for account_id, (start, end) in periods.items():
        rows = (
            UsageRollup.objects.filter(
                account_id=account_id, meter_id__in=last_ids,
                hour__gte=floor_hour(start), hour__lt=end,
                last_timestamp__gte=start, last_timestamp__lt=end,
            )
            .order_by()
            .values_list("meter_id", "last_timestamp")
        )  # fmt: skip
        for meter_id, moment in rows:
            k = (account_id, meter_id)
            found[k] = max(found.get(k, 0), micros(moment))
    return found
