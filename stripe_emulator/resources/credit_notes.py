"""Credit notes on finalized invoices: create, retrieve, list, lines.

Modelled on Stripe's ``POST /v1/credit_notes`` (https://docs.stripe.com/api/credit_notes/create):
``invoice``, ``lines[]`` of type ``invoice_line_item`` (``invoice_line_item`` with
``amount`` or ``quantity``) or ``custom_line_item`` (``unit_amount``, ``quantity``,
``description``), or a bare ``amount``; ``reason``, ``memo``, ``metadata``,
``credit_amount`` and ``out_of_band_amount``. A credit note first lowers what is still
due on the invoice (``pre_payment_amount``, not below zero); the rest
(``post_payment_amount``) must be placed by ``credit_amount`` (customer balance) or
``out_of_band_amount``: refunds are not emulated. Simplification: a quantity of an
invoice line is credited pro rata of the line's amount.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from .. import invoice_payment
from ..errors import invalid
from ..forms import as_dict, as_int, as_list, merge_metadata, one_of
from ..lists import list_object, paginate, present, presenter
from ..routing import Request, route
from ..store import Store, random_token
from .common import get_or_404, require, show

REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")


def _line(req: Request, invoice: dict, raw, index: int) -> dict:
    param = f"lines[{index}]"
    line = as_dict(raw, param)
    kind = one_of(
        require(line, "type"), f"{param}[type]", ("invoice_line_item", "custom_line_item")
    )
    quantity = as_int(line.get("quantity", 1), f"{param}[quantity]", minimum=0)
    out = {
        "id": "cnli_" + random_token(24),
        "object": "credit_note_line_item",
        "type": kind,
        "description": line.get("description") or None,
        "discount_amount": 0,
        "discount_amounts": [],
        "invoice_line_item": None,
        "livemode": False,
        "quantity": quantity,
        "tax_amounts": [],
        "taxes": [],
    }
    if kind == "custom_line_item":
        unit = as_int(require(line, "unit_amount"), f"{param}[unit_amount]", minimum=0)
        out.update(amount=unit * quantity, unit_amount=unit, unit_amount_decimal=str(unit))
        return out
    item_id = require(line, "invoice_line_item")
    item = next((x for x in invoice["_lines"] if x["id"] == item_id), None)
    if item is None:
        raise invalid(
            f"No such invoice line item: '{item_id}'", param=f"{param}[invoice_line_item]"
        )
    if "amount" in line:
        amount = as_int(line["amount"], f"{param}[amount]", minimum=0)
    elif item["quantity"]:
        share = Decimal(item["amount"]) * quantity / item["quantity"]
        amount = int(share.to_integral_value(rounding=ROUND_HALF_UP))
    else:
        amount = item["amount"]
    out.update(
        amount=amount,
        invoice_line_item=item_id,
        description=out["description"] or item.get("description"),
        unit_amount=None,
        unit_amount_decimal=None,
    )
    return out


@route("POST", "/v1/credit_notes")
def create(req: Request):
    params = req.params
    invoice = get_or_404(req, "invoice", require(params, "invoice"), param="invoice")
    if invoice["status"] not in ("open", "paid"):
        raise invalid(
            "You can only create a credit note on an open or paid invoice "
            f"(this one is {invoice['status']}).",
            param="invoice",
        )
    lines = [
        _line(req, invoice, raw, i)
        for i, raw in enumerate(as_list(params.get("lines", []), "lines"))
    ]
    if lines:
        total = sum(x["amount"] for x in lines)
    else:
        total = as_int(require(params, "amount"), "amount", minimum=1)
    credited = (
        invoice["pre_payment_credit_notes_amount"] + invoice["post_payment_credit_notes_amount"]
    )
    if total <= 0 or total > invoice["total"] - credited:
        raise invalid(
            f"The credit note's amount ({total}) must be above 0 and at most what is left to "
            f"credit on the invoice ({invoice['total'] - credited}).",
            param="lines" if lines else "amount",
        )
    reason = params.get("reason")
    if reason:
        one_of(reason, "reason", REASONS)
    pre = min(total, invoice["amount_remaining"]) if invoice["status"] == "open" else 0
    post = total - pre
    credit = as_int(params.get("credit_amount", 0), "credit_amount", minimum=0)
    out_of_band = as_int(params.get("out_of_band_amount", 0), "out_of_band_amount", minimum=0)
    if params.get("refund_amount") or params.get("refunds"):
        raise invalid("Refunds are not emulated.", param="refund_amount")
    if credit + out_of_band != post:
        raise invalid(
            "The sum of credit amount, refund amount and out of band amount "
            f"({credit + out_of_band}) must equal the credit note's post-payment amount ({post}).",
            param="credit_amount",
        )
    now = req.store.customer_now(invoice["customer"])
    customer = req.store.get("customer", invoice["customer"])
    if credit and customer is not None:
        customer["balance"] = customer.get("balance", 0) - credit
    invoice["pre_payment_credit_notes_amount"] += pre
    invoice["post_payment_credit_notes_amount"] += post
    invoice["amount_due"] -= pre
    invoice["amount_remaining"] -= pre
    count = sum(1 for n in req.store.all("credit_note") if n["invoice"] == invoice["id"])
    note = req.store.add(
        "credit_note",
        {
            "id": req.store.new_id("credit_note"),
            "object": "credit_note",
            "amount": total,
            "amount_shipping": 0,
            "created": now,
            "currency": invoice["currency"],
            "customer": invoice["customer"],
            "customer_balance_transaction": None,
            "discount_amount": 0,
            "discount_amounts": [],
            "effective_at": now,
            "invoice": invoice["id"],
            "_lines": lines,
            "livemode": False,
            "memo": params.get("memo") or None,
            "metadata": merge_metadata({}, params.get("metadata", {})),
            "number": f"{invoice['number']}-CN-{count + 1:02d}",
            "out_of_band_amount": out_of_band or None,
            "pdf": f"{req.store.base_url}/credit_notes/{invoice['id']}/pdf",
            "post_payment_amount": post,
            "pre_payment_amount": pre,
            "reason": reason or None,
            "refunds": [],
            "shipping_cost": None,
            "status": "issued",
            "subtotal": total,
            "subtotal_excluding_tax": total,
            "total": total,
            "total_excluding_tax": total,
            "total_taxes": [],
            "type": "pre_payment" if not post else ("post_payment" if not pre else "mixed"),
            "voided_at": None,
        },
    )
    req.emit("credit_note.created", present(req.store, note))
    if invoice["status"] == "open" and invoice["amount_remaining"] == 0:
        invoice_payment.mark_paid(req.app, invoice, now)
    else:
        req.emit("invoice.updated", present(req.store, invoice))
    return show(req, note)


def _note(req: Request) -> dict:
    return get_or_404(req, "credit_note", req.args["id"])


@presenter("credit_note")
def _present_note(store: Store, note: dict) -> dict:
    raw = store.get("credit_note", note["id"])
    note["lines"] = list_object(
        raw["_lines"] if raw else [], f"/v1/credit_notes/{note['id']}/lines"
    )
    return note


@route("GET", "/v1/credit_notes/{id}")
def retrieve(req: Request):
    return show(req, _note(req))


@route("GET", "/v1/credit_notes/{id}/lines")
def lines(req: Request):
    note = _note(req)
    return paginate(req.store, note["_lines"], req.params, f"/v1/credit_notes/{note['id']}/lines")


@route("GET", "/v1/credit_notes")
def list_(req: Request):
    notes = req.store.all("credit_note")
    for key in ("invoice", "customer"):
        if req.params.get(key):
            notes = [n for n in notes if n[key] == req.params[key]]
    return paginate(req.store, notes, req.params, "/v1/credit_notes")
