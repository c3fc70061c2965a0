"""Corrections as the customer and staff read them (the audit log)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.models import Account
from usage.models import UsageCorrection
from usage.selectors.rollups import ceil_hour, floor_hour

HOUR = timedelta(hours=1)


def adjustment_hour(*, created_at: datetime, period_start: datetime, period_end: datetime):
    """The hour a quantity adjustment belongs to: the hour it was made in, clamped into
    the period's whole hours (``ceil(period_start)`` .. ``floor(period_end) - 1 h``), so
    the period, its day and its hour each count it whole. None if the period has no
    whole hour."""
    first, last = ceil_hour(period_start), floor_hour(period_end) - HOUR
    if last < first:
        return None
    return min(max(floor_hour(created_at), first), last)


@dataclass(frozen=True)
class AdjustmentRow:
    """A quantity adjustment as the hour it belongs to shows it."""

    id: int
    hour: datetime
    quantity: int  # signed, units of the meter
    reason: str
    created_at: datetime


def hour_adjustments(
    *, account_id: int, meter_id: int, start: datetime, end: datetime
) -> list[AdjustmentRow]:
    """The quantity adjustments whose hour starts in ``[start, end)``, oldest first."""
    rows = UsageCorrection.objects.filter(
        account_id=account_id,
        meter_id=meter_id,
        kind=UsageCorrection.Kind.ADJUST,
        period_start__lt=end,
        period_end__gt=start - HOUR,
    ).order_by("created_at", "id")
    found = []
    for c in rows:
        hour = adjustment_hour(
            created_at=c.created_at, period_start=c.period_start, period_end=c.period_end
        )
        if hour is not None and start <= hour < end:
            found.append(AdjustmentRow(c.pk, hour, c.quantity, c.reason, c.created_at))
    return found


@dataclass(frozen=True)
class CorrectionRow:
    created_at: datetime
    meter: str
    unit: str
    period_start: datetime
    period_end: datetime
    quantity: int  # signed change, units of the meter
    reason: str
    how: str  # how it reached Stripe, and whether Stripe has it yet
    credit_amount: int  # minor units; 0 without a credit note
    currency: str
    stripe_invoice_id: str
    stripe_credit_note_id: str


def corrections_for_account(*, account: Account, limit: int = 50) -> list[CorrectionRow]:
    """The account's corrections, newest first."""
    rows = UsageCorrection.objects.filter(account=account).select_related("meter")[:limit]
    return [
        CorrectionRow(
            created_at=c.created_at,
            meter=c.meter.display_name,
            unit=c.meter.unit_label,
            period_start=c.period_start,
            period_end=c.period_end,
            quantity=c.quantity,
            reason=c.reason,
            how=how_text(c),
            credit_amount=c.credit_amount,
            currency=c.currency,
            stripe_invoice_id=c.stripe_invoice_id,
            stripe_credit_note_id=c.stripe_credit_note_id,
        )
        for c in rows
    ]


def how_text(correction: UsageCorrection) -> str:
    """How a correction reached (or is to reach) the bill, in words."""
    how = correction.get_path_display()
    if correction.kind == UsageCorrection.Kind.ADJUST:
        how = f"Quantity adjusted (no events named). {how}"
    if correction.status == UsageCorrection.Status.PENDING:
        how += " (waiting for Stripe)"
    elif correction.status == UsageCorrection.Status.FAILED:
        how += " (not yet: Stripe refused it, our staff are retrying)"
    return how
