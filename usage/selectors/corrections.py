"""Corrections as the customer and staff read them (the audit log)."""

from dataclasses import dataclass
from datetime import datetime

from billing.models import Account
from usage.models import UsageCorrection


@dataclass(frozen=True)
class CorrectionRow:
    created_at: datetime
    meter: str
    unit: str
    period_start: datetime
    period_end: datetime
    quantity: int  # signed change, units of the meter
    reason: str
    how: str  # how it reached Stripe
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
            how=c.get_path_display(),
            credit_amount=c.credit_amount,
            currency=c.currency,
            stripe_invoice_id=c.stripe_invoice_id,
            stripe_credit_note_id=c.stripe_credit_note_id,
        )
        for c in rows
    ]
