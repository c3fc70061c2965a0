"""Typed invoices (``billing.mirror.invoices``) to revenue lines: pure, no database.

A line's recognized amount is its ``amount`` minus its own discounts and minus the
billing credits applied to it (``InvoiceLine.credited``; Stripe applies credits after
discounts and before taxes). The credited part is not billed: it is recognized from the
prepaid credits (paid grants) or shown as a promotional discount, see
:mod:`revenue.credits`.

Invoice-level discounts that the lines do not carry (the invoice's discount total beyond
the lines' own) and credit notes (the invoice's pre- and post-payment credit note totals, e.g. the
notes usage corrections issue: dj-stripe 2.11 mirrors no credit notes, so only these
totals are known, not which line a note credits) are spread over the invoice's lines in
proportion to their net amounts, with the same rounding rule as the days (floor,
remainder on the last line). Taxes are never part of a line's amount.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime

from billing.mirror.invoices import Invoice, InvoiceLine
from revenue.schedule import RevenueLine, spread_over_lines, utc_day

# (line, period start, period end) -> (kind "licensed"|"metered", usage per day or None)
Classifier = Callable[[InvoiceLine, datetime, datetime], tuple[str, Mapping[date, int] | None]]

_EPOCH = datetime.fromtimestamp(0, UTC)


def billed_on(invoice: Invoice) -> date:
    """The UTC date the invoice was finalized (billed)."""
    return utc_day(invoice.billed_at or _EPOCH)


def _ratable(line: InvoiceLine, start: datetime, end: datetime):
    return "licensed", None


def invoice_revenue_lines(
    invoice: Invoice,
    *,
    account_id: int | None = None,
    classify: Classifier = _ratable,
) -> list[RevenueLine]:
    """The revenue lines of one finalized invoice; their amounts add up to the invoice's
    line amounts minus its discounts, billing credits and credit notes."""
    lines = invoice.lines
    if not lines:
        return []
    net = [line.amount - line.discount - line.credited for line in lines]
    unassigned = invoice.discount_total - sum(line.discount for line in lines)
    # One reduction after the other, each over what the lines still carry, so that no
    # line is reduced below zero when the reductions fit in the invoice.
    for reduction in (unassigned, invoice.credit_notes_total):
        if reduction > 0 and any(n > 0 for n in net):
            net = [
                n + share for n, share in zip(net, spread_over_lines(-reduction, net), strict=True)
            ]
    finalized = billed_on(invoice)
    fallback_start = invoice.period_start or invoice.created or _EPOCH
    result = []
    for line, line_net in zip(lines, net, strict=True):
        start = line.period_start or fallback_start
        end = line.period_end or start
        kind, usage = classify(line, start, end)
        result.append(
            RevenueLine(
                invoice_id=invoice.id,
                line_id=line.id,
                currency=invoice.currency,
                amount=line_net,
                period_start=start,
                period_end=end,
                billed_on=finalized,
                account_id=account_id,
                kind=kind,
                gross=line.amount,
                discount=line_net - line.amount,
                description=line.description,
                usage_by_day=usage,
            )
        )
    return result
