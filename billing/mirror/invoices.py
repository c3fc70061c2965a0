"""Reads: mirrored invoices with typed lines (base fee, metered usage, proration).

Each line carries its price, that price's meter (``prices.price_uses``), quantity and
amount in integer minor units. ``invoice_from_stripe`` is the pure parser (no
database) that the mirror reads go through; it is given the price uses to classify.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from djstripe.models import Invoice as MirroredInvoice
from djstripe.models import LineItem

from billing.mirror.prices import PriceUse, price_uses
from billing.mirror.shapes import (
    line_is_proration,
    line_price_id,
    line_subscription_item,
    object_id,
    timestamp,
)
from billing.models import Account, Meter

BASE_FEE, METERED, PRORATION = "base_fee", "metered", "proration"
FINALIZED_STATUSES = ("open", "paid", "uncollectible")


@dataclass(frozen=True)
class InvoiceLine:
    id: str
    kind: str  # BASE_FEE | METERED | PRORATION
    price_id: str  # "" for a line without a price
    meter: Meter | None
    quantity: int
    amount: int  # minor units, before the line's own discounts
    discount: int  # the line's own discount amounts, minor units
    period_start: datetime | None
    period_end: datetime | None
    description: str
    subscription_item: str
    # Billing credits applied to the line (``pretax_credit_amounts`` entries of type
    # ``credit_balance_transaction``): (credit balance transaction id, amount) pairs.
    # ``amount`` above is gross; what the customer is billed for the line is
    # amount - discount - credited.
    credit_amounts: tuple[tuple[str, int], ...] = ()

    @property
    def is_metered(self) -> bool:
        return self.kind == METERED

    @property
    def credited(self) -> int:
        """Billing credits applied to the line, minor units."""
        return sum(amount for _, amount in self.credit_amounts)


@dataclass(frozen=True)
class Invoice:
    id: str
    number: str
    status: str
    currency: str
    total: int
    amount_due: int
    created: datetime | None
    billed_at: datetime | None  # finalized (else effective, else created)
    period_start: datetime | None  # Stripe's invoice-level period fields
    period_end: datetime | None
    hosted_invoice_url: str
    due_date: datetime | None
    customer_id: str
    account_id: int | None
    discount_total: int  # total_discount_amounts, the lines' own included
    credit_notes_total: int  # pre- and post-payment credit notes
    lines: tuple[InvoiceLine, ...]
    lines_expected: int | None = None  # how many lines Stripe says there are
    lines_complete: bool = True  # False when only part of the lines is mirrored
    # A draft's scheduled finalization (Stripe: about an hour after a renewal is created;
    # its usage lines may still change until then), else None.
    automatically_finalizes_at: datetime | None = None
    # What is left to pay (Stripe's amount_remaining: amount_due - amount_paid).
    amount_remaining: int = 0

    @property
    def credited(self) -> int:
        """Billing credits applied to the invoice's lines (the sum of the lines'
        ``pretax_credit_amounts`` of type ``credit_balance_transaction``), minor units."""
        return sum(line.credited for line in self.lines)

    @property
    def is_draft(self) -> bool:
        return self.status == "draft"

    @property
    def usage_lines(self) -> tuple[InvoiceLine, ...]:
        """Metered lines with something on them (a first invoice lists them at zero)."""
        return tuple(
            line for line in self.lines if line.is_metered and (line.quantity or line.amount)
        )

    @property
    def service_period(self) -> tuple[datetime | None, datetime | None]:
        """The period the invoice bills: its metered lines', else its first line's,
        else Stripe's invoice-level period."""
        dated = [line for line in self.lines if line.period_start and line.period_end]
        line = next((x for x in dated if x.is_metered), dated[0] if dated else None)
        if line is not None:
            return line.period_start, line.period_end
        return self.period_start, self.period_end


def _sum_amounts(rows: Iterable[Mapping[str, Any]] | None) -> int:
    return sum(int(row.get("amount") or 0) for row in rows or [])


def line_credit_amounts(line: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """The billing credits applied to an invoice line: its ``pretax_credit_amounts``
    entries of type ``credit_balance_transaction`` as (transaction id, amount) pairs.

    Stripe: each entry is ``{amount, type: credit_balance_transaction | discount,
    credit_balance_transaction, discount}``; credits apply "after discounts, but before
    taxes" (https://docs.stripe.com/billing/subscriptions/usage-based/billing-credits,
    https://docs.stripe.com/changelog/acacia/2024-10-28/billing-credits-invoice). Entries
    of type ``discount`` repeat the line's ``discount_amounts`` and are left out here.
    """
    return tuple(
        (object_id(row.get("credit_balance_transaction")), int(row.get("amount") or 0))
        for row in line.get("pretax_credit_amounts") or []
        if row.get("type") == "credit_balance_transaction"
    )


def invoice_line_from_stripe(
    line: Mapping[str, Any], *, uses: Mapping[str, PriceUse] | None = None
) -> InvoiceLine:
    price_id = line_price_id(line)
    use = (uses or {}).get(price_id)
    if use is not None and use.is_metered:
        kind = METERED
    elif line_is_proration(line):
        kind = PRORATION
    else:
        kind = BASE_FEE
    period = line.get("period") or {}
    return InvoiceLine(
        id=str(line.get("id") or ""),
        kind=kind,
        price_id=price_id,
        meter=use.meter if use else None,
        quantity=int(line.get("quantity") or 0),
        amount=int(line.get("amount") or 0),
        discount=_sum_amounts(line.get("discount_amounts")),
        period_start=timestamp(period.get("start")),
        period_end=timestamp(period.get("end")),
        description=str(line.get("description") or ""),
        subscription_item=line_subscription_item(line),
        credit_amounts=line_credit_amounts(line),
    )


def invoice_from_stripe(
    data: Mapping[str, Any],
    *,
    lines: list[Mapping[str, Any]] | None = None,
    uses: Mapping[str, PriceUse] | None = None,
    account_id: int | None = None,
) -> Invoice:
    """A Stripe invoice (JSON) as a typed ``Invoice``; ``lines`` overrides the
    invoice's own ``lines.data`` (all of them when Stripe paginated). Pure."""
    lines_obj = data.get("lines") or {}
    raw_lines = list(lines_obj.get("data") or []) if lines is None else lines
    expected = lines_obj.get("total_count")
    transitions = data.get("status_transitions") or {}
    customer = data.get("customer")
    return Invoice(
        id=str(data.get("id") or ""),
        number=str(data.get("number") or data.get("id") or ""),
        status=str(data.get("status") or ""),
        currency=str(data.get("currency") or "").lower(),
        total=int(data.get("total") or 0),
        amount_due=int(data.get("amount_due") or 0),
        created=timestamp(data.get("created")),
        billed_at=timestamp(
            transitions.get("finalized_at") or data.get("effective_at") or data.get("created")
        ),
        period_start=timestamp(data.get("period_start")),
        period_end=timestamp(data.get("period_end")),
        hosted_invoice_url=str(data.get("hosted_invoice_url") or ""),
        due_date=timestamp(data.get("due_date")),
        customer_id=customer.get("id", "") if isinstance(customer, dict) else str(customer or ""),
        account_id=account_id,
        discount_total=_sum_amounts(data.get("total_discount_amounts")),
        credit_notes_total=int(data.get("pre_payment_credit_notes_amount") or 0)
        + int(data.get("post_payment_credit_notes_amount") or 0),
        lines=tuple(invoice_line_from_stripe(line, uses=uses) for line in raw_lines),
        lines_expected=expected,
        lines_complete=not lines_obj.get("has_more")
        and (expected is None or expected <= len(raw_lines)),
        automatically_finalizes_at=timestamp(data.get("automatically_finalizes_at")),
        amount_remaining=int(data.get("amount_remaining") or 0),
    )


def _all_lines(row: MirroredInvoice) -> list[Mapping[str, Any]]:
    """Every line of the invoice: its own copy, or dj-stripe's ``LineItem`` mirror
    when Stripe paginated the lines (more than 10) and all of them are mirrored."""
    lines_obj = (row.stripe_data or {}).get("lines") or {}
    lines = list(lines_obj.get("data") or [])
    expected = lines_obj.get("total_count")
    if lines_obj.get("has_more") or (expected is not None and expected > len(lines)):
        mirrored = [li.stripe_data for li in LineItem.objects.filter(stripe_data__invoice=row.id)]
        if expected is not None and len(mirrored) >= expected:
            return mirrored
    return lines


def _typed(rows: QuerySet[MirroredInvoice], *, statuses=None, currency=None) -> list[Invoice]:
    picked = []
    for row in rows:
        data = row.stripe_data or {}
        if statuses is not None and data.get("status") not in statuses:
            continue
        if currency and (data.get("currency") or "").lower() != currency:
            continue
        picked.append((row, data, _all_lines(row)))
    uses = price_uses(price_ids={line_price_id(line) for _, _, lines in picked for line in lines})
    return [
        invoice_from_stripe(
            data,
            lines=lines,
            uses=uses,
            account_id=row.customer.subscriber_id if row.customer_id else None,
        )
        for row, data, lines in picked
    ]


def account_invoices(*, account: Account, limit: int = 24, offset: int = 0) -> list[Invoice]:
    """The account's mirrored invoices (any status), newest first: ``limit`` of them from
    ``offset``, paged by the database (LIMIT/OFFSET). Invoices created in the same second
    (a plan change's proration invoice and a renewal on a test clock; any burst) are in
    Stripe id order, so pages over a total order are complete and disjoint."""
    rows = MirroredInvoice.objects.filter(customer__subscriber=account).select_related("customer")
    return _typed(rows.order_by("-created", "-id")[offset : offset + limit])


def open_invoices_for_account(*, account: Account) -> list[Invoice]:
    """The account's open invoices with something left to pay (what a past-due customer
    pays: ``amount_remaining`` and ``hosted_invoice_url``), oldest first."""
    rows = MirroredInvoice.objects.filter(
        customer__subscriber=account, stripe_data__status="open"
    ).select_related("customer")
    invoices = _typed(rows.order_by("created"), statuses=("open",))
    return [invoice for invoice in invoices if invoice.amount_remaining > 0]


def finalized_invoices(
    *, account: Account | None = None, currency: str | None = None
) -> list[Invoice]:
    """Finalized (open, paid, uncollectible) mirrored invoices, of one account or all,
    in one currency or all; by id."""
    rows = MirroredInvoice.objects.select_related("customer").order_by("id")
    if account is not None:
        rows = rows.filter(customer__subscriber=account)
    return _typed(rows, statuses=FINALIZED_STATUSES, currency=currency)


def account_invoice(*, account: Account, invoice_id: str) -> Invoice | None:
    """One of the account's mirrored invoices (any status) by its Stripe id, else None:
    another account's invoice is None too."""
    rows = MirroredInvoice.objects.filter(customer__subscriber=account, id=invoice_id)
    found = _typed(rows.select_related("customer"))
    return found[0] if found else None
