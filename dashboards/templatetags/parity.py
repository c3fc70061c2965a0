"""``{% line_parity account invoice row as parity %}``: a finalized invoice's metered line
against the ledger, what was reported and Stripe's summaries
(:func:`usage.selectors.parity.meter_parity`); None for drafts and other lines."""

from django import template

from usage.selectors.parity import MeterParity, meter_parity

register = template.Library()


@register.simple_tag
def line_parity(account, invoice, row) -> MeterParity | None:
    line = row.line
    if invoice.is_draft or not line.is_metered or line.meter is None or account is None:
        return None
    if not (line.period_start and line.period_end):
        return None
    if invoice.issued_at is None or invoice.issued_at < line.period_end:
        # Issued before the period ended (the first invoice, billed in advance): its
        # metered line is not the one that bills this period's usage.
        return None
    return meter_parity(
        account_id=account.pk,
        meter=line.meter,
        start=line.period_start,
        end=line.period_end,
        invoiced=line.quantity,
        finalized_at=invoice.issued_at,
        spec=row.spec,
    )
