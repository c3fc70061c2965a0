"""Invoice items: create, retrieve, list, update, delete; and their invoice lines.

Modelled on Stripe's ``POST /v1/invoiceitems`` (https://docs.stripe.com/api/invoiceitems/create,
stripe-python 15 ``InvoiceItemCreateParams``, the dahlia shape): ``customer``, one of
``amount`` / ``pricing[price]`` (a one-time price) / ``unit_amount_decimal`` (the last
two times ``quantity``, default 1), ``currency``, ``description``, ``invoice``
("You can only add invoice items to draft invoices"), ``subscription``, ``period``,
``discountable``, ``metadata``.

Without ``invoice`` the item is pending: "For subscription invoices, when left blank, the
invoice item will be added to the next upcoming scheduled invoice. For standalone
invoices, the invoice item won't be automatically added unless you pass
``pending_invoice_items_behavior: 'include'`` when creating the invoice".

Invoice items never take billing credits ([BC] https://docs.stripe.com/billing/subscriptions/usage-based/billing-credits:
not "One-off invoices that weren't created by a subscription" nor "One-time invoice
items which are added to a subscription's previewed invoice"): their lines are
``invoice_item_details`` lines, which :mod:`stripe_emulator.credit_application` skips.

Not emulated (refused naming the param): discounts, taxes, ``price_data``,
``quantity_decimal``, ``customer_account``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from .. import credit_application
from ..errors import invalid, missing_param
from ..forms import as_bool, as_decimal, as_dict, as_int, decimal_str, merge_metadata
from ..lists import paginate, present
from ..routing import Request, route
from ..store import random_token
from .common import deleted, get_or_404, show, snapshot

KIND = "invoiceitem"
_NOT_EMULATED = (
    "customer_account",
    "discounts",
    "price_data",
    "quantity_decimal",
    "tax_behavior",
    "tax_code",
    "tax_rates",
)
_SOURCES = ("amount", "pricing", "unit_amount_decimal")


def _draft_invoice(req: Request, invoice_id: str, customer_id: str) -> dict:
    invoice = get_or_404(req, "invoice", invoice_id, param="invoice")
    if invoice["status"] != "draft":
        raise invalid(
            "You can only add invoice items to draft invoices.",
            param="invoice",
            code="invoice_not_editable",
        )
    if invoice["customer"] != customer_id:
        raise invalid(f"The invoice {invoice_id} belongs to another customer.", param="invoice")
    return invoice


def _priced(req: Request, params: dict, currency: str | None) -> tuple[int, str, dict, str]:
    """(amount, currency, price_details or None, unit_amount_decimal) from the one amount
    source given."""
    given = [key for key in _SOURCES if key in params]
    if len(given) != 1:
        raise invalid(
            "Provide exactly one of amount, pricing[price] or unit_amount_decimal.",
            param=given[1] if len(given) > 1 else "amount",
        )
    source = given[0]
    quantity = as_int(params.get("quantity", 1), "quantity", minimum=0)
    if source == "amount":
        if "quantity" in params and quantity != 1:
            raise invalid("quantity cannot be used with amount.", param="quantity")
        amount = as_int(params["amount"], "amount")
        if not currency:
            raise missing_param("currency")
        return amount, currency, None, str(amount)
    if source == "pricing":
        price_id = as_dict(params["pricing"], "pricing").get("price")
        if not price_id:
            raise missing_param("pricing[price]")
        price = get_or_404(req, "price", price_id, param="pricing[price]")
        if price.get("recurring"):
            raise invalid(
                "The price specified is set to `type=recurring` but this field only accepts "
                "prices with `type=one_time`.",
                param="pricing[price]",
            )
        if currency and currency != price["currency"]:
            raise invalid(
                f"The price's currency ({price['currency']}) is not {currency}.",
                param="pricing[price]",
            )
        unit = Decimal(price["unit_amount_decimal"] or "0")
        details = {"price": price["id"], "product": price["product"]}
        return _times(unit, quantity), price["currency"], details, decimal_str(unit)
    unit = as_decimal(params["unit_amount_decimal"], "unit_amount_decimal")
    if not currency:
        raise missing_param("currency")
    return _times(unit, quantity), currency, None, decimal_str(unit)


def _times(unit: Decimal, quantity: int) -> int:
    """Stripe rounds a line once, half up: "Rounding occurs on the line item level"
    (https://docs.stripe.com/products-prices/manage-prices)."""
    return int((unit * quantity).to_integral_value(rounding=ROUND_HALF_UP))


@route("POST", "/v1/invoiceitems")
def create(req: Request):
    params, store = req.params, req.store
    for key in _NOT_EMULATED:
        if params.get(key) not in (None, "", []):
            raise invalid(f"{key} is not emulated.", param=key)
    if not params.get("customer"):
        raise missing_param("customer")
    customer = get_or_404(req, "customer", params["customer"], param="customer")
    invoice = None
    if params.get("invoice"):
        invoice = _draft_invoice(req, params["invoice"], customer["id"])
    sub = None
    if params.get("subscription"):
        sub = get_or_404(req, "subscription", params["subscription"], param="subscription")
        if sub["customer"] != customer["id"]:
            raise invalid("The subscription belongs to another customer.", param="subscription")
    currency = str(params.get("currency") or "").lower() or (
        invoice["currency"] if invoice else (sub or customer).get("currency")
    )
    amount, currency, details, unit = _priced(req, params, currency or None)
    if invoice and currency != invoice["currency"]:
        raise invalid(
            f"The invoice item's currency ({currency}) must match the invoice's "
            f"({invoice['currency']}).",
            param="currency",
        )
    now = store.customer_now(customer["id"])
    period = as_dict(params.get("period"), "period")
    start = as_int(period.get("start", now), "period[start]")
    end = as_int(period.get("end", now), "period[end]")
    if end < start:
        raise invalid("The period end must be on or after its start.", param="period[end]")
    quantity = 1 if "amount" in params else as_int(params.get("quantity", 1), "quantity")
    discountable = as_bool(params.get("discountable", amount >= 0), "discountable")
    item = {
        "id": store.new_id(KIND, 24),
        "object": KIND,
        "amount": amount,
        "currency": currency,
        "customer": customer["id"],
        "customer_account": None,
        "date": now,
        "description": params.get("description") or None,
        "discountable": discountable,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": merge_metadata({}, params.get("metadata", {})),
        "net_amount": amount,
        "parent": (
            {
                "type": "subscription_details",
                "subscription_details": {"subscription": sub["id"], "subscription_item": None},
            }
            if sub
            else None
        ),
        "period": {"start": start, "end": end},
        "pricing": {
            "type": "price_details",
            "price_details": details,
            "unit_amount_decimal": unit,
        },
        "proration": False,
        "proration_details": {"credited_items": None, "discount_amounts": []},
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "tax_rates": [],
        "test_clock": customer.get("test_clock"),
    }
    store.add(KIND, item)
    req.emit("invoiceitem.created", snapshot(req, item))
    if invoice is not None:
        attach(req.app, invoice, [item])
        req.emit("invoice.updated", present(store, invoice))
    return show(req, item)


def line_for(item: dict, invoice_id: str) -> dict:
    """The invoice line of an invoice item (``parent.type: invoice_item_details``)."""
    sub_id = ((item["parent"] or {}).get("subscription_details") or {}).get("subscription")
    return {
        "id": "il_" + random_token(24),
        "object": "line_item",
        "amount": item["amount"],
        "currency": item["currency"],
        "description": item["description"],
        "discount_amounts": [],
        "discountable": item["discountable"],
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": dict(item["metadata"]),
        "parent": {
            "type": "invoice_item_details",
            "invoice_item_details": {
                "invoice_item": item["id"],
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": sub_id,
            },
            "subscription_item_details": None,
        },
        "period": dict(item["period"]),
        "pretax_credit_amounts": [],
        "pricing": dict(item["pricing"]),
        "quantity": item["quantity"],
        "quantity_decimal": item["quantity_decimal"],
        "subscription": sub_id,
        "subtotal": item["amount"],
        "taxes": [],
    }


def pending(store, customer_id: str, currency: str, sub_id: str | None = None) -> list[dict]:
    """The customer's pending items in ``currency``, oldest first: those not tied to a
    subscription, plus (with ``sub_id``) those tied to that one."""
    found = [
        item
        for item in store.objects.get(KIND, {}).values()
        if item["customer"] == customer_id
        and item["invoice"] is None
        and item["currency"] == currency
        and (item["parent"] is None or (sub_id and _sub_of(item) == sub_id))
    ]
    return sorted(found, key=lambda i: i["_seq"])


def _sub_of(item: dict) -> str | None:
    return ((item["parent"] or {}).get("subscription_details") or {}).get("subscription")


def attach(app, invoice: dict, items: list[dict]) -> None:
    """Add the items' lines to a draft invoice (stored or preview) and re-figure its totals."""
    for item in items:
        invoice["_lines"].append(line_for(item, invoice["id"]))
        if not invoice["id"].startswith("upcoming_"):
            item["invoice"] = invoice["id"]
    credit_application.recompute_totals(invoice)


def _item(req: Request) -> dict:
    return get_or_404(req, KIND, req.args["id"], label="invoiceitem")


@route("GET", "/v1/invoiceitems/{id}")
def retrieve(req: Request):
    return show(req, _item(req))


@route("GET", "/v1/invoiceitems")
def list_(req: Request):
    params = req.params
    items = req.store.all(KIND)
    for key in ("customer", "invoice"):
        if params.get(key):
            items = [i for i in items if i[key] == params[key]]
    if "pending" in params and as_bool(params["pending"], "pending"):
        items = [i for i in items if i["invoice"] is None]
    return paginate(req.store, items, params, "/v1/invoiceitems")


def _editable(req: Request, item: dict) -> dict | None:
    invoice = req.store.get("invoice", item["invoice"]) if item["invoice"] else None
    if invoice is not None and invoice["status"] != "draft":
        raise invalid(
            "This invoice item is on a finalized invoice and can no longer change.",
            code="invoice_not_editable",
        )
    return invoice


@route("POST", "/v1/invoiceitems/{id}")
def update(req: Request):
    item = _item(req)
    params = req.params
    for key in (*_NOT_EMULATED, "pricing", "unit_amount_decimal", "quantity", "period"):
        if key in params:
            raise invalid(f"Updating {key} is not emulated.", param=key)
    invoice = _editable(req, item)
    if "amount" in params:
        item["amount"] = item["net_amount"] = as_int(params["amount"], "amount")
        item["pricing"]["unit_amount_decimal"] = str(item["amount"])
    if "description" in params:
        item["description"] = params["description"] or None
    if "discountable" in params:
        item["discountable"] = as_bool(params["discountable"], "discountable")
    if "metadata" in params:
        item["metadata"] = merge_metadata(item["metadata"], params["metadata"])
    if invoice is not None:
        for i, line in enumerate(invoice["_lines"]):
            details = (line["parent"] or {}).get("invoice_item_details") or {}
            if details.get("invoice_item") == item["id"]:
                fresh = line_for(item, invoice["id"])
                fresh["id"] = line["id"]
                invoice["_lines"][i] = fresh
        credit_application.recompute_totals(invoice)
    return show(req, item)


@route("DELETE", "/v1/invoiceitems/{id}")
def delete(req: Request):
    item = _item(req)
    invoice = _editable(req, item)
    if invoice is not None:
        invoice["_lines"] = [
            line
            for line in invoice["_lines"]
            if ((line["parent"] or {}).get("invoice_item_details") or {}).get("invoice_item")
            != item["id"]
        ]
        credit_application.recompute_totals(invoice)
    req.store.delete(KIND, item["id"])
    req.emit("invoiceitem.deleted", present(req.store, item))
    return deleted(item)
