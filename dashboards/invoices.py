"""Selectors: the account's invoices from the dj-stripe mirror, with their usage lines."""

from dataclasses import dataclass
from datetime import UTC, datetime

from djstripe.models import Invoice, Price

from billing.models import Account


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    quantity: int
    amount: int
    metered: bool


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
    created: datetime
    lines: tuple[InvoiceLine, ...]

    @property
    def usage_lines(self) -> tuple[InvoiceLine, ...]:
        """Metered lines with something on them (a first invoice lists them at zero)."""
        return tuple(line for line in self.lines if line.metered and (line.quantity or line.amount))


def _ts(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _price_id(line: dict) -> str | None:
    """The line's price id: ``pricing.price_details.price`` in API version dahlia."""
    price = ((line.get("pricing") or {}).get("price_details") or {}).get("price")
    price = price or line.get("price")
    return price.get("id") if isinstance(price, dict) else price


def _metered_price_ids(price_ids: set[str]) -> set[str]:
    return {
        price.id
        for price in Price.objects.filter(id__in=price_ids)
        if ((price.stripe_data.get("recurring") or {}).get("usage_type")) == "metered"
    }


def invoices_for_account(*, account: Account, limit: int = 24) -> list[InvoiceRow]:
    rows = []
    invoices = list(
        Invoice.objects.filter(customer__subscriber=account).order_by("-created")[:limit]
    )
    metered = _metered_price_ids(
        {
            _price_id(line)
            for invoice in invoices
            for line in (invoice.stripe_data.get("lines") or {}).get("data", [])
        }
        - {None}
    )
    for invoice in invoices:
        data = invoice.stripe_data
        raw_lines = (data.get("lines") or {}).get("data", [])
        lines = tuple(
            InvoiceLine(
                description=line.get("description") or "",
                quantity=int(line.get("quantity") or 0),
                amount=int(line.get("amount") or 0),
                metered=_price_id(line) in metered,
            )
            for line in raw_lines
        )
        line_periods = [line.get("period") or {} for line in raw_lines]
        metered_periods = [
            p for p, line in zip(line_periods, lines, strict=True) if line.metered and p
        ]
        period = (metered_periods or line_periods or [{}])[0]
        rows.append(
            InvoiceRow(
                id=invoice.id,
                number=data.get("number") or invoice.id,
                period_start=_ts(period.get("start") or data.get("period_start")),
                period_end=_ts(period.get("end") or data.get("period_end")),
                total=int(data.get("total") or 0),
                amount_due=int(data.get("amount_due") or 0),
                currency=data.get("currency") or "usd",
                status=data.get("status") or "",
                hosted_invoice_url=data.get("hosted_invoice_url") or "",
                created=invoice.created,
                lines=lines,
            )
        )
    return rows
