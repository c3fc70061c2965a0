"""The forms of the emulator's pages (:mod:`stripe_emulator.pages`): pay an open invoice
from its hosted invoice page, and replace the default payment method from the portal.

Paying goes through the same code as ``POST /v1/invoices/{id}/pay`` with a payment method
(:mod:`stripe_emulator.invoice_payment`), so it emits what a renewal charge emits:
``invoice.payment_succeeded`` and ``invoice.paid`` (and the subscription back to
``active`` when it is the subscription's latest invoice), or ``invoice.payment_failed``
for a card whose charges fail. Stripe's hosted page charges the card the customer enters
without saving it as their default; the portal's "update payment method" makes the new
card the default (``invoice_settings.default_payment_method``, ``customer.updated``) and
does not charge anything by itself: open invoices are paid from the invoice history's
Pay links. Both answer 303 to the page again, as a browser form post expects.
"""

from __future__ import annotations

from .errors import StripeError
from .invoice_payment import attempt_payment
from .lists import present
from .resources.common import changed
from .resources.payment_methods import resolve_for_customer
from .routing import Request, Response, route


def _see_other(location: str) -> Response:
    return Response(303, b"", "text/plain", {"Location": location})


def _not_found(what: str) -> Response:
    return Response(404, f"{what} not found".encode(), "text/plain; charset=utf-8")


@route("POST", "/invoices/{id}/pay", auth="none")
def pay_invoice(req: Request):
    store = req.store
    invoice = store.get("invoice", req.args["id"])
    if invoice is None or invoice["status"] == "draft":
        return _not_found("Invoice")
    page = f"/invoices/{invoice['id']}"
    if invoice["status"] != "open" or invoice["amount_remaining"] <= 0:
        return _see_other(page)  # paid meanwhile (another tab, a retry): show it
    customer = store.get("customer", invoice["customer"])
    try:
        pm = resolve_for_customer(
            req, req.params.get("payment_method") or "pm_card_visa", customer, "payment_method"
        )
    except StripeError:
        return _see_other(f"{page}?declined=1")
    paid = attempt_payment(req.app, invoice, store.customer_now(customer["id"]), pm["id"])
    store.mark_dirty()
    return _see_other(f"{page}?paid=1" if paid else f"{page}?declined=1")


@route("POST", "/p/session/{token}/payment_method", auth="none")
def update_payment_method(req: Request):
    store = req.store
    token = req.args["token"]
    session = store.get("billing_portal.session", token.rsplit("_", 1)[0])
    if session is None or not session["url"].endswith(token):
        return _not_found("Portal session")
    config = store.get("billing_portal.configuration", session["configuration"]) or {}
    if not ((config.get("features") or {}).get("payment_method_update") or {}).get("enabled"):
        return Response(403, b"Payment method updates are off", "text/plain")
    customer = store.get("customer", session["customer"])
    page = f"/p/session/{token}"
    try:
        pm = resolve_for_customer(
            req, req.params.get("payment_method") or "pm_card_visa", customer, "payment_method"
        )
    except StripeError:
        return _see_other(f"{page}?declined=1")
    before = present(store, customer)
    customer["invoice_settings"] = {
        **customer["invoice_settings"],
        "default_payment_method": pm["id"],
    }
    after = present(store, customer)
    req.emit("customer.updated", after, changed(before, after))
    store.mark_dirty()
    return _see_other(f"{page}?updated=1")
