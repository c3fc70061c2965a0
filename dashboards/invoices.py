"""Selectors: the account's invoices for its invoices page, every number explained.

Read through ``billing.mirror.invoices`` (typed invoices and lines). Each invoice shows
its issue and due dates and Stripe's own invoice period; each line its own period (a
renewal bills the licensed fee for the next period in advance and the metered usage of
the closed one in arrears), its name ("API calls: 8,511 calls", "Pro base fee") and, for
a metered line, the pricing engine's breakdown per tier, which must add up to Stripe's
line amount (``breakdown_matches``). A renewal invoice is a draft for about an hour after
its period ends (Stripe's finalization grace period): shown as such, with when it
finalizes, and its usage lines as not final."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from billing.mirror.invoices import BASE_FEE, METERED, Invoice, InvoiceLine, account_invoices
from billing.mirror.prices import PriceUse, mirrored_prices_data, price_uses
from billing.models import Account
from billing.pricing import Breakdown, PriceSpec, breakdown, price_spec_from_stripe
from billing.units import quantity_text


@dataclass(frozen=True)
class LineRow:
    """One invoice line as the customer reads it."""

    line: InvoiceLine
    name: str  # "API calls: 8,511 calls", "Pro base fee"
    spec: PriceSpec | None  # the line's price, when mirrored with its tiers
    breakdown: Breakdown | None  # metered lines only

    @property
    def kind(self) -> str:
        return self.line.kind

    @property
    def is_base_fee(self) -> bool:
        return self.line.kind == BASE_FEE

    @property
    def breakdown_matches(self) -> bool:
        """The engine's breakdown adds up to Stripe's line amount, to the cent."""
        return self.breakdown is not None and self.breakdown.amount == self.line.amount


@dataclass(frozen=True)
class InvoiceRow:
    id: str
    number: str
    period_start: datetime | None  # Stripe's invoice-level period
    period_end: datetime | None
    total: int
    amount_due: int
    discount_total: int
    currency: str
    status: str
    hosted_invoice_url: str
    created: datetime | None
    issued_at: datetime | None  # finalized (else effective, else created)
    due_date: datetime | None  # None: charged automatically when issued
    lines: tuple[LineRow, ...]
    finalizes_at: datetime | None = None  # a draft's scheduled finalization

    @property
    def is_draft(self) -> bool:
        """Not final: Stripe may still change its usage lines (usage reported for the
        period in the grace hour) until it finalizes it."""
        return self.status == "draft"

    @property
    def is_final(self) -> bool:
        return not self.is_draft

    @property
    def has_own_period(self) -> bool:
        """Stripe gives a first invoice a zero-length period (start == end)."""
        return bool(self.period_start and self.period_end and self.period_start < self.period_end)

    @property
    def subtotal(self) -> int:
        return sum(row.line.amount for row in self.lines)


def _line_name(line: InvoiceLine, use: PriceUse | None) -> str:
    if line.kind == METERED and line.meter is not None:
        return f"{line.meter.display_name}: {quantity_text(line.quantity, line.meter.unit_label)}"
    if line.kind == BASE_FEE and use is not None and use.nickname != use.price_id:
        return use.nickname
    return line.description


def _specs(data: Mapping[str, Mapping]) -> dict[str, PriceSpec]:
    return {
        price_id: price_spec_from_stripe(price)
        for price_id, price in data.items()
        if not (price.get("billing_scheme") == "tiered" and not price.get("tiers"))
    }


def _row(invoice: Invoice, *, uses, specs) -> InvoiceRow:
    lines = []
    for line in invoice.lines:
        if line.kind == METERED and not (line.quantity or line.amount):
            continue  # a first invoice lists metered prices at zero
        spec = specs.get(line.price_id)
        lines.append(
            LineRow(
                line=line,
                name=_line_name(line, uses.get(line.price_id)),
                spec=spec,
                breakdown=(
                    breakdown(price=spec, quantity=line.quantity)
                    if spec is not None and line.kind == METERED
                    else None
                ),
            )
        )
    return InvoiceRow(
        id=invoice.id,
        number=invoice.number,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        total=invoice.total,
        amount_due=invoice.amount_due,
        discount_total=invoice.discount_total,
        currency=invoice.currency or "usd",
        status=invoice.status,
        hosted_invoice_url=invoice.hosted_invoice_url,
        created=invoice.created,
        issued_at=invoice.billed_at,
        due_date=invoice.due_date,
        lines=tuple(lines),
        finalizes_at=invoice.automatically_finalizes_at,
    )


def invoice_rows(invoices: Iterable[Invoice]) -> list[InvoiceRow]:
    """Typed invoices as page rows, prices read once for all of them."""
    invoices = list(invoices)
    price_ids = {line.price_id for invoice in invoices for line in invoice.lines}
    data = mirrored_prices_data(price_ids=price_ids)
    uses = price_uses(price_ids=price_ids, data=data)
    specs = _specs(data)
    return [_row(invoice, uses=uses, specs=specs) for invoice in invoices]


def invoices_for_account(*, account: Account, limit: int = 24) -> list[InvoiceRow]:
    return invoice_rows(account_invoices(account=account, limit=limit))
