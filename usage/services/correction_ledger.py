"""What corrections write beside the ledger: the hourly rollups they recompute or add to,
the hour a quantity adjustment belongs to, and a credit note's amount.

Shared by the void (``corrections``) and adjust (``correction_adjust``) services; every
function here runs inside the correction's transaction, under its locks.
"""

from datetime import datetime, timedelta
from functools import partial

from django.db import transaction

from billing.models import Meter
from usage.models import UsageCorrection, UsageEvent, UsageRollup
from usage.selectors.corrections import adjustment_hour
from usage.services.entitlement_state import usage_invalidate

HOUR = timedelta(hours=1)


class CorrectionNotPossible(Exception):
    """The correction cannot be made (bad input, or a path not supported yet)."""


def adjustments_by_hour(*, account_id: int, meter_id: int, hours) -> dict[datetime, int]:
    """The signed quantities of the quantity adjustments that belong to ``hours``."""
    hours = set(hours)
    if not hours:
        return {}
    found: dict[datetime, int] = {}
    rows = UsageCorrection.objects.filter(
        account_id=account_id,
        meter_id=meter_id,
        kind=UsageCorrection.Kind.ADJUST,
        period_start__lt=max(hours) + HOUR,
        period_end__gt=min(hours),
    ).values_list("created_at", "period_start", "period_end", "quantity")
    for created_at, start, end, quantity in rows:
        hour = adjustment_hour(created_at=created_at, period_start=start, period_end=end)
        if hour in hours:
            found[hour] = found.get(hour, 0) + quantity
    return found


def _lock_rollups(account_id: int, meter_id: int, hours) -> None:
    """Lock the hours' rollup rows first: an ingest batch that inserted an event we cannot
    see yet then waits for our commit and adds its increment to what we write (rollups
    are updated by increments), so nothing is lost."""
    list(
        UsageRollup.objects.select_for_update()
        .filter(account_id=account_id, meter_id=meter_id, hour__in=sorted(hours))
        .values_list("id", flat=True)
    )


def _adjusted(meter: Meter, sum_value: int, count: int, adjustment: int) -> tuple[int, int]:
    """(sum_value, event_count) with an adjustment added where the meter reads it: the
    count for count meters (``meter_value``), the sum otherwise."""
    if meter.aggregation == Meter.Aggregation.COUNT:
        return sum_value, count + adjustment
    return sum_value + adjustment, count


def _entitlements_follow(account_id: int) -> None:
    """Once the correction commits, the entitlement check reads the period's usage from
    the corrected rollups again (its cached usage would otherwise keep the old figure)."""
    transaction.on_commit(partial(usage_invalidate, account_id), robust=True)


def rollups_recompute(*, account_id: int, meter: Meter, hours: set[datetime]) -> None:
    """Rewrite the rollups of ``hours`` from the ledger without voided events, plus the
    quantity adjustments that belong to each hour (so a void never wipes them)."""
    _lock_rollups(account_id, meter.pk, hours)
    _entitlements_follow(account_id)
    adjustments = adjustments_by_hour(account_id=account_id, meter_id=meter.pk, hours=hours)
    for hour in sorted(hours):
        rows = list(
            UsageEvent.objects.filter(
                account_id=account_id,
                meter_id=meter.pk,
                timestamp__gte=hour,
                timestamp__lt=hour + HOUR,
                void__isnull=True,
            )
            .order_by()
            .values_list("id", "value", "timestamp")
        )
        rollups = UsageRollup.objects.filter(account_id=account_id, meter_id=meter.pk, hour=hour)
        adjustment = adjustments.get(hour, 0)
        if not rows and not adjustment:
            rollups.delete()
            continue
        sum_value, count = _adjusted(meter, sum(r[1] for r in rows), len(rows), adjustment)
        if not rows:  # only the adjustment is left in this hour
            rollups.update_or_create(
                account_id=account_id,
                meter_id=meter.pk,
                hour=hour,
                defaults={"sum_value": sum_value, "event_count": count, "last_value": 0,
                          "last_timestamp": hour, "last_event_id": 0},
            )  # fmt: skip
            continue
        last = max(rows, key=lambda r: (r[2], r[0]))
        rollups.update(
            sum_value=sum_value,
            event_count=count,
            last_value=last[1],
            last_timestamp=last[2],
            last_event_id=last[0],
        )


def rollup_add_adjustment(*, account_id: int, meter: Meter, hour: datetime, quantity: int):
    """Add a quantity adjustment to its hour's rollup row (creating the row if the hour
    has no events: ``last_timestamp`` the hour, ``last_event_id`` 0, so any event of the
    hour is newer)."""
    _lock_rollups(account_id, meter.pk, {hour})
    _entitlements_follow(account_id)
    row = UsageRollup.objects.filter(account_id=account_id, meter_id=meter.pk, hour=hour).first()
    if row is None:
        sum_value, count = _adjusted(meter, 0, 0, quantity)
        UsageRollup.objects.create(
            account_id=account_id, meter_id=meter.pk, hour=hour, sum_value=sum_value,
            event_count=count, last_value=0, last_timestamp=hour, last_event_id=0,
        )  # fmt: skip
        return
    row.sum_value, row.event_count = _adjusted(meter, row.sum_value, row.event_count, quantity)
    row.save(update_fields=["sum_value", "event_count"])


def credit_plan(*, correction: UsageCorrection, line, price, new_quantity=None) -> None:
    """Fill in a credit-note correction's ``billed_quantity`` and ``credit_amount``: the
    pricing engine's difference between what the invoice bills (or what the newest
    earlier credit note of this invoice and meter left billed) and the corrected quantity
    (``new_quantity``, else the old one plus the correction's signed quantity, never
    below 0). Fixed here, under the correction's locks, so a retry sends the same note."""
    from usage.services.correction_stripe import price_difference

    previous = (
        UsageCorrection.objects.filter(
            path=UsageCorrection.Path.CREDIT_NOTE,
            stripe_invoice_id=line.invoice_id,
            meter=correction.meter,
            billed_quantity__isnull=False,
        )
        .order_by("-created_at", "-id")
        .values_list("billed_quantity", flat=True)
        .first()
    )
    old_quantity = line.quantity if previous is None else previous
    if new_quantity is None:
        new_quantity = max(old_quantity + correction.quantity, 0)
    amount = price_difference(price=price, old_quantity=old_quantity, new_quantity=new_quantity)
    correction.credit_amount = max(amount, 0)
    correction.billed_quantity = new_quantity
