"""HTML pages the emulator serves: the hosted invoice page (``hosted_invoice_url``) and
the customer portal (a billing portal session's ``url``)."""

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
"""


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
        f"<p>Status: <span class='badge' id='status'>{escape(invoice['status'])}</span></p>"
        f"<p>Billed to {escape(invoice['customer_name'] or invoice['customer_email'] or '')}"
        f" ({escape(invoice['customer'])}) on {_date(invoice['created'])}</p>"
        f"<table><tr><th>Description</th><th>Period</th><th class='amount'>Amount</th></tr>"
        f"{rows}<tr><th colspan='2'>Total</th>"
        f"<th class='amount' id='total'>{_money(invoice['total'], invoice['currency'])}</th></tr>"
        f"<tr><td colspan='2'>Amount due</td><td class='amount'>"
        f"{_money(invoice['amount_remaining'], invoice['currency'])}</td></tr></table>"
    )
    return _page(f"Invoice {invoice['number']}", body)


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
            f"<td class='amount'>{_money(i['total'], i['currency'])}</td></tr>"
            for i in invoices
        )
        or "<tr><td colspan='4'>No invoices yet.</td></tr>"
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
        f"<h2>Subscriptions</h2><table>{sub_rows}</table>"
        f"<h2>Invoice history</h2><table><tr><th>Invoice</th><th>Date</th><th>Status</th>"
        f"<th class='amount'>Total</th></tr>{invoice_rows}</table>"
    )
    return _page("Customer portal", body)


def _item_label(store, item_id: str) -> str:
    item = store.get("subscription_item", item_id)
    price = store.get("price", item["price"]) if item else None
    product = store.get("product", price["product"]) if price else None
    name = (product or {}).get("name", item_id)
    return f"{name} \u00d7 {item['quantity']}" if item and item.get("quantity") else name
