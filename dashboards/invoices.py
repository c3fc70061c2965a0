"""Selectors: the account's invoices for its invoices page, with their usage lines.

Read through ``billing.mirror.invoices`` (typed invoices and lines); the period shown is
the one the invoice bills (its metered lines', else its first line's)."""

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
        )


def invoices_for_account(*, account: Account, limit: int = 24) -> list[InvoiceRow]:
    return [InvoiceRow.of(invoice) for invoice in account_invoices(account=account, limit=limit)]
