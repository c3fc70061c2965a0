"""Invoices: create (draft), create_preview, list, retrieve, lines, update, finalize, pay,
void, mark_uncollectible, delete (drafts)."""

from __future__ import annotations

from .. import (
    credit_application,
    customer_balance,
    invoice_lines,
    invoice_payment,
    invoicing,
    renewal_drafts,
)
from ..errors import StripeError, invalid
from ..forms import as_bool, as_dict, as_int, as_list, merge_metadata
from ..lists import expand_paths, list_object, paginate, present, presenter
from ..routing import Request, route
from ..store import Store
from . import invoice_items
from .common import deleted, get_or_404, require, show

_LINES_SHOWN = 10


@presenter("invoice")
def _present_invoice(store: Store, invoice: dict) -> dict:
    raw = store.get("invoice", invoice["id"])
    lines = raw["_lines"] if raw else []
    invoice["lines"] = list_object(
        lines[:_LINES_SHOWN], f"/v1/invoices/{invoice['id']}/lines", len(lines) > _LINES_SHOWN
    )
    invoice["lines"]["total_count"] = len(lines)
    return invoice


def _invoice(req: Request) -> dict:
    return get_or_404(req, "invoice", req.args["id"])


def _now(req: Request, invoice: dict) -> int:
    return req.store.customer_now(invoice["customer"])


@route("POST", "/v1/invoices")
def create(req: Request):
    """A draft invoice (https://docs.stripe.com/api/invoices/create): ``customer``,
    ``currency`` ("Defaults to that of customer if not specified"), ``collection_method``
    (``days_until_due`` / ``due_date`` for ``send_invoice``), ``auto_advance`` ("Controls
    whether Stripe performs automatic collection of the invoice. If false, the invoice's
    state doesn't automatically advance without an explicit action"; a one-off draft with
    it is finalized and charged an hour later, as renewal drafts are),
    ``pending_invoice_items_behavior`` ("How to handle pending invoice items on invoice
    creation. Defaults to ``exclude``"; ``include`` takes the customer's pending items in
    the invoice's currency), ``default_payment_method``, ``description``, ``metadata``.
    One-off invoices never take billing credits
    (:mod:`stripe_emulator.credit_application`)."""
    params = req.params
    customer = get_or_404(req, "customer", require(params, "customer"), param="customer")
    now = req.store.customer_now(customer["id"])
    invoice = invoicing.new_invoice(
        req.app,
        customer,
        [],
        now=now,
        currency=str(params.get("currency") or customer["currency"] or "usd").lower(),
        store_it=False,
    )
    invoice["id"] = req.store.new_id("invoice", 24)
    invoice["auto_advance"] = as_bool(params.get("auto_advance", False), "auto_advance")
    invoice["metadata"] = merge_metadata({}, params.get("metadata", {}))
    invoice["description"] = params.get("description") or None
    if params.get("collection_method"):
        invoice["collection_method"] = params["collection_method"]
    if params.get("default_payment_method"):
        from .payment_methods import resolve_for_customer

        pm = resolve_for_customer(
            req, params["default_payment_method"], customer, "default_payment_method"
        )
        invoice["default_payment_method"] = pm["id"]
    if params.get("due_date") or params.get("days_until_due"):
        if invoice["collection_method"] != "send_invoice":
            raise invalid(
                "due_date and days_until_due are only for collection_method=send_invoice.",
                param="due_date" if params.get("due_date") else "days_until_due",
            )
        if params.get("due_date"):
            invoice["due_date"] = as_int(params["due_date"], "due_date", minimum=now + 1)
        else:
            invoice["_days_until_due"] = as_int(params["days_until_due"], "days_until_due")
    behaviour = params.get("pending_invoice_items_behavior") or "exclude"
    req.store.add("invoice", invoice)
    if behaviour == "include":
        items = invoice_items.pending(req.store, customer["id"], invoice["currency"])
        invoice_items.attach(req.app, invoice, [i for i in items if i["parent"] is None])
    req.emit("invoice.created", present(req.store, invoice))
    if invoice["auto_advance"]:
        renewal_drafts.schedule(req.app, invoice, now)
    return show(req, invoice)


@route("POST", "/v1/invoices/create_preview")
def create_preview(req: Request):
    params, store = req.params, req.store
    sub_id = params.get("subscription")
    customer_id = params.get("customer")
    if sub_id:
        sub = get_or_404(req, "subscription", sub_id, param="subscription")
        if sub["status"] == "canceled":
            raise invalid("Nothing to invoice for subscription", code="invoice_upcoming_none")
        details = as_dict(params.get("subscription_details"), "subscription_details")
        if details:
            preview = _change_preview(req, sub, details)
        else:
            preview = _scheduled_preview(req, sub) or invoicing.preview_for_subscription(
                req.app, sub
            )
    elif customer_id:
        customer = get_or_404(req, "customer", customer_id, param="customer")
        details = as_dict(params.get("subscription_details"), "subscription_details")
        specs = as_list(details.get("items"), "subscription_details[items]")
        if specs:
            preview = _new_subscription_preview(req, customer, specs)
        else:
            subs = [
                s
                for s in store.all("subscription")
                if s["customer"] == customer_id and s["status"] in invoicing.CYCLING
            ]
            if not subs:
                raise invalid("Nothing to invoice for customer", code="invoice_upcoming_none")
            preview = invoicing.preview_for_subscription(req.app, subs[-1])
    else:
        raise invalid("Either customer or subscription is required.", param="customer")
    shown = present(store, preview, expand_paths(params))
    shown["lines"] = list_object(preview["_lines"], "/v1/invoices/upcoming/lines")
    shown["lines"]["total_count"] = len(preview["_lines"])
    customer_balance.show_in_preview(req.app, shown, preview["customer"])
    return shown


def _renewal_after(req: Request, sub: dict, after: list[dict], extra: list[dict]) -> dict:
    """The next renewal invoice if the subscription's items were ``after`` from the next
    period: this period's usage in arrears on the metered items it has now, the licensed
    items of ``after`` in advance for the next period, then ``extra`` lines and the
    pending invoice items."""
    from ..periods import period_bounds

    app = req.app
    start, end = invoicing.current_period(app, sub)
    next_start, next_end = period_bounds(
        sub["billing_cycle_anchor"], *sub["_interval"], sub["_cycles"] + 1
    )
    licensed = [
        invoice_lines.make_line(app, sub, item, item["quantity"], next_start, next_end)
        for item in after
        if invoice_lines.usage_type(app, item) == "licensed"
    ]
    lines = (
        licensed
        + invoice_lines.metered_lines(app, sub, start, end)
        + extra
        + invoicing._pending_items(app, sub)[1]
    )
    invoice = invoicing.new_invoice(
        app,
        req.store.get("customer", sub["customer"]),
        lines,
        now=end,
        currency=sub["currency"],
        sub=sub,
        billing_reason="upcoming",
        period=(start, end),
        store_it=False,
        credits_at=req.store.customer_now(sub["customer"]),
    )
    invoice["next_payment_attempt"] = end if invoice["amount_due"] else None
    return invoice


def _change_preview(req: Request, sub: dict, details: dict) -> dict:
    """``subscription`` + ``subscription_details``: the invoice a subscription update with
    these ``items``, ``proration_behavior`` and ``proration_date`` would bring
    (https://docs.stripe.com/billing/subscriptions/prorations, "Preview a proration";
    https://docs.stripe.com/api/invoices/create_preview). ``always_invoice``: the invoice
    made at once (the prorations); otherwise the next renewal invoice, with the prorations
    (``create_prorations``) or without (``none``)."""
    from .. import prorations
    from .subscription_items import items_after
    from .subscriptions import invoice_prorations, proration_date

    app, store = req.app, req.store
    now = store.customer_now(sub["customer"])
    start, end = invoicing.current_period(app, sub)
    behaviour = details.get("proration_behavior") or "create_prorations"
    at = proration_date(
        details.get("proration_date"),
        "subscription_details[proration_date]",
        start=start,
        end=end,
        now=now,
    )
    current = [dict(item) for item in invoice_lines.sub_items(app, sub)]
    if "items" in details:
        after = items_after(req, sub, details["items"], "subscription_details[items]")
    else:
        after = current
    lines = []
    if behaviour != "none" and "items" in details:
        lines = prorations.proration_lines(
            app,
            sub,
            prorations.licensed_state(app, current),
            prorations.licensed_state(app, after),
            start=start,
            end=end,
            at=at,
        )
    if behaviour == "always_invoice":
        return invoice_prorations(app, sub, lines, now, store_it=False)
    return _renewal_after(req, sub, after, lines)


def _scheduled_preview(req: Request, sub: dict) -> dict | None:
    """A subscription whose schedule enters a new phase at the end of this period renews
    on that phase's items (:mod:`.subscription_schedules`)."""
    from .subscription_schedules import next_phase_items

    _, end = invoicing.current_period(req.app, sub)
    items = next_phase_items(req.app, sub, end)
    return None if items is None else _renewal_after(req, sub, items, [])


def _new_subscription_preview(req: Request, customer: dict, specs: list) -> dict:
    """First invoice of a subscription that would be created with these items."""
    from ..periods import period_bounds

    store = req.store
    now = store.customer_now(customer["id"])
    lines = []
    currency = None
    for i, spec in enumerate(specs):
        spec = as_dict(spec, f"subscription_details[items][{i}]")
        price = get_or_404(
            req, "price", spec.get("price") or "", param=f"subscription_details[items][{i}][price]"
        )
        recurring = price["recurring"] or {
            "interval": "month",
            "interval_count": 1,
            "usage_type": "licensed",
        }
        currency = currency or price["currency"]
        start, end = period_bounds(now, recurring["interval"], recurring["interval_count"], 0)
        quantity = (
            0
            if recurring["usage_type"] == "metered"
            else as_int(
                spec.get("quantity", 1), f"subscription_details[items][{i}][quantity]", minimum=0
            )
        )
        fake_sub = {"id": None}
        fake_item = {"id": None, "price": price["id"], "metadata": {}}
        lines.append(invoice_lines.make_line(req.app, fake_sub, fake_item, quantity, start, end))
    return invoicing.new_invoice(
        req.app,
        customer,
        lines,
        now=now,
        currency=currency or "usd",
        billing_reason="subscription_create",
        store_it=False,
    )


@route("GET", "/v1/invoices/{id}")
def retrieve(req: Request):
    return show(req, _invoice(req))


@route("GET", "/v1/invoices/{id}/lines")
def lines(req: Request):
    invoice = _invoice(req)
    return paginate(req.store, invoice["_lines"], req.params, f"/v1/invoices/{invoice['id']}/lines")


@route("POST", "/v1/invoices/{id}")
def update(req: Request):
    invoice = _invoice(req)
    params = req.params
    if "metadata" in params:
        invoice["metadata"] = merge_metadata(invoice["metadata"], params["metadata"])
    if invoice["status"] == "draft":
        for key in ("description", "footer"):
            if key in params:
                invoice[key] = params[key] or None
        if "auto_advance" in params:
            invoice["auto_advance"] = as_bool(params["auto_advance"], "auto_advance")
            if not invoice["auto_advance"]:  # no automatic finalization any more
                invoice.pop("_auto_finalize", None)
                invoice["automatically_finalizes_at"] = None
            elif not invoice.get("_auto_finalize"):
                renewal_drafts.schedule(req.app, invoice, _now(req, invoice))
    req.emit("invoice.updated", present(req.store, invoice))
    return show(req, invoice)


@route("DELETE", "/v1/invoices/{id}")
def delete(req: Request):
    invoice = _invoice(req)
    if invoice["status"] != "draft":
        raise invalid("You can only delete draft invoices.", code="invoice_not_editable")
    if invoice["_subscription"]:
        # "Permanently deletes a one-off invoice draft ... if an invoice is for a
        # subscription, it must be voided" (https://docs.stripe.com/api/invoices/delete)
        raise invalid(
            "You can only delete one-off draft invoices: an invoice for a subscription "
            "must be voided.",
            code="invoice_not_editable",
        )
    req.store.delete("invoice", invoice["id"])
    req.emit("invoice.deleted", present(req.store, invoice))
    return deleted(invoice)


@route("POST", "/v1/invoices/{id}/finalize")
def finalize(req: Request):
    invoice = _invoice(req)
    if invoice["status"] != "draft":
        raise invalid("This invoice is already finalized.", code="invoice_not_editable")
    now = _now(req, invoice)
    invoice_payment.finalize(req.app, invoice, now)
    if invoice["amount_due"] == 0:
        invoice_payment.mark_paid(req.app, invoice, now)
    return show(req, invoice)


@route("POST", "/v1/invoices/{id}/pay")
def pay(req: Request):
    invoice = _invoice(req)
    now = _now(req, invoice)
    if invoice["status"] == "draft":
        invoice_payment.finalize(req.app, invoice, now)
    if invoice["status"] != "open":
        raise invalid(f"Invoice is already {invoice['status']}.", code="invoice_not_open")
    if as_bool(req.params.get("paid_out_of_band", False), "paid_out_of_band"):
        invoice_payment.mark_paid(req.app, invoice, now)
        return show(req, invoice)
    pm_id = req.params.get("payment_method") or None
    if pm_id:
        customer = req.store.get("customer", invoice["customer"])
        from .payment_methods import resolve_for_customer

        pm_id = resolve_for_customer(req, pm_id, customer, "payment_method")["id"]
    if not invoice_payment.attempt_payment(req.app, invoice, now, pm_override=pm_id or ""):
        raise StripeError(
            402,
            "Your card was declined.",
            type="card_error",
            code="card_declined",
            extra={"decline_code": "generic_decline"},
        )
    return show(req, invoice)


def _close(req: Request, status: str, transition: str, event_type: str):
    invoice = _invoice(req)
    if invoice["status"] != "open":
        raise invalid(
            f"You can only do this to open invoices (this one is {invoice['status']}).",
            code="invoice_not_open",
        )
    invoice["status"] = status
    invoice["status_transitions"][transition] = _now(req, invoice)
    req.emit(event_type, present(req.store, invoice))
    return show(req, invoice)


@route("POST", "/v1/invoices/{id}/void")
def void(req: Request):
    answer = _close(req, "void", "voided_at", "invoice.voided")
    invoice = _invoice(req)
    credit_application.reinstate_on_void(req.app, invoice, _now(req, invoice))
    return answer


@route("POST", "/v1/invoices/{id}/mark_uncollectible")
def mark_uncollectible(req: Request):
    return _close(req, "uncollectible", "marked_uncollectible_at", "invoice.marked_uncollectible")


@route("GET", "/v1/invoices")
def list_(req: Request):
    objs = req.store.all("invoice")
    for key in ("customer", "subscription", "status", "collection_method"):
        if req.params.get(key):  # "_subscription": dahlia has no top-level field
            field = "_subscription" if key == "subscription" else key
            objs = [i for i in objs if i[field] == req.params[key]]
    return paginate(req.store, objs, req.params, "/v1/invoices")
