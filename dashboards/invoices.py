"""Selectors: the account's invoices for its invoices page, with their usage lines.

Read through ``billing.mirror.invoices`` (typed invoices and lines); the period shown is
the one the invoice bills (its metered lines', else its first line's). A renewal
invoice is a draft for about an hour after its period ends (Stripe's finalization grace
period): shown as such, with when it finalizes, and its usage lines as not final."""

from dataclasses import dataclass
from datetime import datetime

from billing.mirror.invoices import Invoice, InvoiceLine, account_invoices
from billing.models import Account


@dataclass(frozen=True)
class InvoiceRow:
    id: str
    number: str
    period_start: datetime | None
    period_end: datetime | None
    total: int
    amount_due: int
    currency: str
    status: str
    hosted_invoice_url: str
    created: datetime | None
    lines: tuple[InvoiceLine, ...]
    usage_lines: tuple[InvoiceLine, ...]
    finalizes_at: datetime | None = None  # a draft's scheduled finalization

    @property
    def is_draft(self) -> bool:
        """Not final: Stripe may still change its usage lines (usage reported for the
        period in the grace hour) until it finalizes it."""
        return self.status == "draft"

    @classmethod
    def of(cls, invoice: Invoice) -> "InvoiceRow":
        start, end = invoice.service_period
        return cls(
            id=invoice.id,
            number=invoice.number,
            period_start=start,
            period_end=end,
            total=invoice.total,
            amount_due=invoice.amount_due,
            currency=invoice.currency or "usd",
            status=invoice.status,
            hosted_invoice_url=invoice.hosted_invoice_url,
            created=invoice.created,
            lines=invoice.lines,
            usage_lines=invoice.usage_lines,
            finalizes_at=invoice.automatically_finalizes_at,
        )


def invoices_for_account(*, account: Account, limit: int = 24) -> list[InvoiceRow]:
    return [InvoiceRow.of(invoice) for invoice in account_invoices(account=account, limit=limit)]
