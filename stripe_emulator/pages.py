"""HTML pages the emulator serves: the hosted invoice page (``hosted_invoice_url``) and
the customer portal (a billing portal session's ``url``).

Like Stripe's, the hosted invoice page of an open invoice has a **Pay** form ("The Hosted
Invoice Page provides a secure, private URL where your customers can: View the details,
amounts, and status of the invoice. Pay the invoice using any of the enabled payment
methods", https://docs.stripe.com/invoicing/hosted-invoice-page), and the portal lets the
customer replace their payment method and pay open invoices from its invoice history ("a
Stripe-hosted product which enables your customers to update payment methods, manage
invoices, manage subscriptions, and view their payment history",
https://support.stripe.com/questions/billing-customer-portal). The forms post to
:mod:`stripe_emulator.page_actions`; where Stripe shows a card form, these offer Stripe's
test cards (https://docs.stripe.com/testing)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from html import escape

from .routing import Request, Response, route

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;color:#1a1f36}
table{border-collapse:collapse;width:100%}td,th{padding:.4rem;border-bottom:1px solid #e3e8ee;
text-align:left}.amount{text-align:right}.badge{padding:.1rem .4rem;border-radius:.3rem;
background:#e3e8ee}.note{color:#697386;font-size:.85rem}
.pay{margin:1rem 0;padding:1rem;border:1px solid #e3e8ee;border-radius:.5rem}
button{background:#635bff;color:#fff;border:0;border-radius:.3rem;padding:.5rem 1rem;
font-size:1rem;cursor:pointer}select{font-size:1rem;padding:.3rem;max-width:100%}
.error{color:#b3093c}.ok{color:#0e6245}
"""

# Test cards offered where Stripe would show a card form: token -> label. Stripe's test
# numbers (https://docs.stripe.com/testing); the emulator's behaviour for each is in
# resources/payment_methods.py (TEST_TOKENS).
TEST_CARDS = {
    "pm_card_visa": "Visa 4242 4242 4242 4242 (test card, succeeds)",
    "pm_card_mastercard": "Mastercard 5555 5555 5555 4444 (test card, succeeds)",
    "pm_card_chargeCustomerFail": "Visa 4000 0000 0000 0341 (test card, charge fails)",
}


def _page(title: str, body: str, status: int = 200) -> Response:
    html = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}<p class='note'>Served by stripe_emulator (test mode).</p></body></html>"
    )
    return Response(status, html.encode(), "text/html; charset=utf-8")


def _money(amount: int, currency: str) -> str:
    value = (Decimal(amount) / 100).quantize(Decimal("0.01"))
    return f"{value} {currency.upper()}"


def _date(ts: int | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "—"


@route("GET", "/invoices/{id}", auth="none")
def hosted_invoice(req: Request):
    invoice = req.store.get("invoice", req.args["id"])
    if invoice is None or invoice["status"] == "draft":
        return _page("Invoice not found", "<h1>Invoice not found</h1>", 404)
    rows = "".join(
        f"<tr><td>{escape(line['description'] or '')}</td>"
        f"<td>{_date(line['period']['start'])} \u2013 {_date(line['period']['end'])}</td>"
        f"<td class='amount'>{_money(line['amount'], line['currency'])}</td></tr>"
        for line in invoice["_lines"]
    )
    body = (
        f"<h1>Invoice {escape(invoice['number'] or invoice['id'])}</h1>"
        f"<p>Status: <span class='badge' id='status'>{escape(invoice['status'])}</span>"
        f"{_paid_on(invoice)}</p>"
        f"<p>Billed to {escape(invoice['customer_name'] or invoice['customer_email'] or '')}"
        f" ({escape(invoice['customer'])}) on {_date(invoice['created'])}</p>"
        f"<table><tr><th>Description</th><th>Period</th><th class='amount'>Amount</th></tr>"
        f"{rows}<tr><th colspan='2'>Total</th>"
        f"<th class='amount' id='total'>{_money(invoice['total'], invoice['currency'])}</th></tr>"
        f"<tr><td colspan='2'>Amount due</td><td class='amount'>"
        f"{_money(invoice['amount_remaining'], invoice['currency'])}</td></tr></table>"
    )
    notice = _notice(req.params)
    if invoice["status"] == "open" and invoice["amount_remaining"] > 0:
        body = notice + _pay_form(req, invoice) + body
    else:
        body = notice + body
    return _page(f"Invoice {invoice['number']}", body)


def _paid_on(invoice: dict) -> str:
    paid_at = (invoice.get("status_transitions") or {}).get("paid_at")
    return f" on {_date(paid_at)}" if invoice["status"] == "paid" and paid_at else ""


def _notice(params: dict) -> str:
    if params.get("paid"):
        return "<p class='ok' id='notice' role='status'>Payment received. Thank you!</p>"
    if params.get("declined"):
        return (
            "<p class='error' id='notice' role='alert'>Your card was declined. "
            "Try another card.</p>"
        )
    if params.get("updated"):
        return "<p class='ok' id='notice' role='status'>Payment method updated.</p>"
    return ""


def card_label(pm: dict | None) -> str:
    if not pm:
        return "none"
    card = pm.get("card") or {}
    return (
        f"{str(card.get('brand', 'card')).title()} \u2022\u2022\u2022\u2022 {card.get('last4', '')}"
    )


def _card_options(req: Request, customer_id: str, *, with_saved: bool) -> str:
    options = "".join(
        f"<option value='{escape(token)}'>{escape(label)}</option>"
        for token, label in TEST_CARDS.items()
    )
    customer = req.store.get("customer", customer_id) or {}
    saved_id = (customer.get("invoice_settings") or {}).get("default_payment_method")
    saved = req.store.get("payment_method", saved_id) if saved_id else None
    if with_saved and saved:
        options += (
            f"<option value='{escape(saved['id'])}'>Card on file: "
            f"{escape(card_label(saved))}</option>"
        )
    return options


def _pay_form(req: Request, invoice: dict) -> str:
    amount = _money(invoice["amount_remaining"], invoice["currency"])
    return (
        f"<form class='pay' method='post' action='/invoices/{escape(invoice['id'])}/pay'>"
        f"<p><strong>Amount due: {amount}</strong></p>"
        f"<label for='card'>Pay with</label> "
        f"<select id='card' name='payment_method'>"
        f"{_card_options(req, invoice['customer'], with_saved=True)}</select> "
        f"<button type='submit' id='pay'>Pay {amount}</button></form>"
    )


@route("GET", "/p/session/{token}", auth="none")
def portal(req: Request):
    session_id = req.args["token"].rsplit("_", 1)[0]
    session = req.store.get("billing_portal.session", session_id)
    if session is None or not session["url"].endswith(req.args["token"]):
        return _page("Session expired", "<h1>This portal session is not valid.</h1>", 404)
    store = req.store
    customer = store.get("customer", session["customer"]) or {}
    subs = [s for s in store.all("subscription") if s["customer"] == session["customer"]]
    invoices = [
        i
        for i in store.all("invoice")
        if i["customer"] == session["customer"] and i["status"] != "draft"
    ]
    sub_rows = (
        "".join(
            f"<tr><td>{escape(s['id'])}</td><td class='badge'>{escape(s['status'])}</td>"
            f"<td>{escape(', '.join(_item_label(store, i) for i in s['_items']))}</td></tr>"
            for s in subs
        )
        or "<tr><td colspan='3'>No subscriptions.</td></tr>"
    )
    invoice_rows = (
        "".join(
            f"<tr><td><a href='{escape(i['hosted_invoice_url'] or '')}'>"
            f"{escape(i['number'] or i['id'])}</a></td><td>{_date(i['created'])}</td>"
            f"<td class='badge'>{escape(i['status'])}</td>"
            f"<td class='amount'>{_money(i['total'], i['currency'])}</td>"
            f"<td>{_pay_link(i)}</td></tr>"
            for i in invoices
        )
        or "<tr><td colspan='5'>No invoices yet.</td></tr>"
    )
    back = (
        f"<p><a id='return' href='{escape(session['return_url'])}'>&larr; Return</a></p>"
        if session["return_url"]
        else ""
    )
    body = (
        f"{back}<h1>Billing for {escape(customer.get('name') or customer.get('email') or '')}</h1>"
        f"<p id='customer'>{escape(customer.get('id', ''))} · "
        f"{escape(customer.get('email') or '')}</p>"
        f"{_notice(req.params)}"
        f"<h2>Subscriptions</h2><table>{sub_rows}</table>"
        f"{_payment_method_section(req, session, customer)}"
        f"<h2>Invoice history</h2><table><tr><th>Invoice</th><th>Date</th><th>Status</th>"
        f"<th class='amount'>Total</th><th></th></tr>{invoice_rows}</table>"
    )
    return _page("Customer portal", body)


def _pay_link(invoice: dict) -> str:
    """Stripe's portal links an open invoice to its hosted page to pay it."""
    if invoice["status"] != "open" or not invoice["amount_remaining"]:
        return ""
    amount = _money(invoice["amount_remaining"], invoice["currency"])
    return (
        f"<a class='pay-link' href='{escape(invoice['hosted_invoice_url'] or '')}'>Pay {amount}</a>"
    )


def _payment_method_section(req: Request, session: dict, customer: dict) -> str:
    config = req.store.get("billing_portal.configuration", session["configuration"]) or {}
    feature = (config.get("features") or {}).get("payment_method_update") or {}
    saved_id = (customer.get("invoice_settings") or {}).get("default_payment_method")
    current = req.store.get("payment_method", saved_id) if saved_id else None
    html = f"<h2>Payment method</h2><p id='payment-method'>{escape(card_label(current))}</p>"
    if not feature.get("enabled"):
        return html
    token = session["url"].rsplit("/", 1)[-1]
    return html + (
        f"<form class='pay' method='post' action='/p/session/{escape(token)}/payment_method'>"
        f"<label for='card'>New card</label> <select id='card' name='payment_method'>"
        f"{_card_options(req, customer.get('id', ''), with_saved=False)}</select> "
        f"<button type='submit' id='update-payment-method'>Update payment method</button>"
        f"</form>"
    )


def _item_label(store, item_id: str) -> str:
    item = store.get("subscription_item", item_id)
    price = store.get("price", item["price"]) if item else None
    product = store.get("product", price["product"]) if price else None
    name = (product or {}).get("name", item_id)
    return f"{name} \u00d7 {item['quantity']}" if item and item.get("quantity") else name
