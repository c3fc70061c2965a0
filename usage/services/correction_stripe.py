"""What a correction needs from Stripe at the moment it is made: the invoice billing a
(customer, meter, period), and a credit note on it.

Asked of Stripe, not of the dj-stripe mirror: whether the invoice is finalized decides
the path, and the mirror may lag a webhook behind.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from billing.mirror.prices import price_meters
from billing.mirror.shapes import line_price_id
from billing.models import Meter
from billing.pricing import line_amount, price_spec_from_stripe

# Stripe's finalized invoice states; a draft's metered lines are still refreshed from the
# meter at finalization.
FINALIZED = {"open", "paid", "uncollectible"}


@dataclass(frozen=True)
class MeteredLine:
    invoice_id: str
    invoice_status: str
    currency: str
    line_id: str
    price_id: str
    quantity: int
    finalized_at: datetime | None


def _as_dict(obj) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _finalized_at(invoice) -> datetime | None:
    transitions = _as_dict(invoice).get("status_transitions") or {}
    at = transitions.get("finalized_at")
    return datetime.fromtimestamp(at, UTC) if at else None


def metered_invoice_line(
    *, client, customer_id: str, meter: Meter, period: tuple[datetime, datetime]
) -> MeteredLine | None:
    """The (non-void) invoice line billing ``meter`` for exactly ``period``, if any."""
    start, end = (int(p.timestamp()) for p in period)
    page = client.v1.invoices.list({"customer": customer_id, "limit": 100})
    for invoice in page.auto_paging_iter():
        # Usage is billed in arrears: on an invoice made at or after the period's end (a
        # subscription's first invoice may show the period's metered line at 0).
        if invoice.status == "void" or invoice.created < end:
            continue
        lines = [
            _as_dict(line)
            for line in client.v1.invoices.line_items.list(
                invoice.id, {"limit": 100}
            ).auto_paging_iter()
        ]
        meters = price_meters(price_ids={line_price_id(line) for line in lines} - {""})
        for line in lines:
            price_id = line_price_id(line)
            period_of = line.get("period") or {}
            if (
                meters.get(price_id) == meter
                and period_of.get("start") == start
                and period_of.get("end") == end
            ):
                return MeteredLine(
                    invoice_id=invoice.id,
                    invoice_status=invoice.status,
                    currency=invoice.currency,
                    line_id=str(line.get("id")),
                    price_id=price_id,
                    quantity=int(line.get("quantity") or 0),
                    finalized_at=_finalized_at(invoice),
                )
    return None


def price_of(*, client, price_id: str):
    """The price as Stripe has it (tiers expanded), as the pricing engine's spec."""
    return price_spec_from_stripe(
        _as_dict(client.v1.prices.retrieve(price_id, {"expand": ["tiers"]}))
    )


def price_difference(*, price, old_quantity: int, new_quantity: int) -> int:
    """What ``old_quantity`` costs more than ``new_quantity`` on ``price`` (minor units),
    by Meterdesk's pricing engine."""
    return line_amount(price=price, quantity=old_quantity) - line_amount(
        price=price, quantity=new_quantity
    )


def invoice_status(*, client, invoice_id: str) -> str:
    return client.v1.invoices.retrieve(invoice_id).status


def credit_note_find(*, client, invoice_id: str, correction_id: int) -> str | None:
    """The credit note an earlier attempt of this correction made, if Stripe has one
    (found by its ``metadata[meterdesk_correction]``)."""
    notes = client.v1.credit_notes.list({"invoice": invoice_id, "limit": 100})
    for note in notes.auto_paging_iter():
        if (_as_dict(note).get("metadata") or {}).get("meterdesk_correction") == str(correction_id):
            return note.id
    return None


def credit_note_create(
    *,
    client,
    invoice_id: str,
    status: str,
    amount: int,
    description: str,
    memo: str,
    correction_id: int,
) -> str:
    """A credit note of ``amount`` on the invoice (``POST /v1/credit_notes``, one
    ``custom_line_item``): on an open invoice it lowers what is due; on a paid one it is
    credited to the customer's balance (``credit_amount``). Returns its id. The
    idempotency key is the correction's, so a resend of the same request is replayed."""
    params = {
        "invoice": invoice_id,
        "lines": [
            {
                "type": "custom_line_item",
                "description": description[:500],
                "quantity": 1,
                "unit_amount": amount,
            }
        ],
        "reason": "order_change",
        "memo": memo[:500],
        "metadata": {"meterdesk_correction": str(correction_id)},
    }
    if status == "paid":
        params["credit_amount"] = amount
    key = f"meterdesk-correction-{correction_id}"
    note = client.v1.credit_notes.create(params, {"idempotency_key": key})
    return note.id
