"""The hosted invoice page's Pay form and the portal's payment-method update (the pages a
past-due customer uses): paying emits invoice.payment_succeeded and invoice.paid and
reactivates the subscription; a failing card leaves the invoice open."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

from .helpers import clock_customer


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _post(url: str, data: dict) -> tuple[int, str]:
    """A browser's form post; answers (status, Location) without following it."""
    opener = urllib.request.build_opener(_NoRedirect)
    body = urllib.parse.urlencode(data).encode()
    try:
        response = opener.open(urllib.request.Request(url, data=body, method="POST"))
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location", "")
    return response.status, response.headers.get("Location", "")


@pytest.fixture
def failed_subscription(client):
    """Team plan, $49.00 in advance, subscribed with a card whose charges fail."""
    _, customer = clock_customer(client, pm="pm_card_chargeCustomerFail")
    price = client.v1.prices.create(
        {
            "product_data": {"name": "Team plan"},
            "currency": "usd",
            "unit_amount": 4900,
            "recurring": {"interval": "month"},
        }
    )
    sub = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}], "expand": ["latest_invoice"]}
    )
    assert sub.status == "incomplete" and sub.latest_invoice.status == "open"
    return customer, sub


def _types(client, since: str) -> list[str]:
    events = client.v1.events.list({"ending_before": since, "limit": 100}).data
    return [e.type for e in reversed(events)]


def test_hosted_invoice_page_pays_an_open_invoice(client, failed_subscription):
    customer, sub = failed_subscription
    invoice = sub.latest_invoice
    page = urllib.request.urlopen(invoice.hosted_invoice_url).read().decode()
    assert "Amount due: 49.00 USD" in page and "Pay 49.00 USD" in page
    assert "pm_card_visa" in page and "Card on file: Visa \u2022\u2022\u2022\u2022 0341" in page
    last = client.v1.events.list({"limit": 1}).data[0].id

    # The card on file still fails: the invoice stays open, the page says so.
    saved = client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method
    status, location = _post(f"{invoice.hosted_invoice_url}/pay", {"payment_method": saved})
    assert (status, location) == (303, f"/invoices/{invoice.id}?declined=1")
    assert client.v1.invoices.retrieve(invoice.id).status == "open"
    declined = urllib.request.urlopen(invoice.hosted_invoice_url + "?declined=1").read().decode()
    assert "Your card was declined." in declined

    status, location = _post(
        f"{invoice.hosted_invoice_url}/pay", {"payment_method": "pm_card_visa"}
    )
    assert (status, location) == (303, f"/invoices/{invoice.id}?paid=1")
    paid = client.v1.invoices.retrieve(invoice.id)
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 4900, 0)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    types = _types(client, last)
    assert "invoice.payment_failed" in types  # the declined attempt
    assert types.index("invoice.payment_succeeded") < types.index("invoice.paid")
    assert "customer.subscription.updated" in types
    after = urllib.request.urlopen(invoice.hosted_invoice_url + "?paid=1").read().decode()
    assert "Payment received" in after and "id='pay'" not in after
    assert "paid</span> on " in after
    # Posting again (a second tab) charges nothing more.
    assert _post(f"{invoice.hosted_invoice_url}/pay", {})[0] == 303
    assert client.v1.invoices.retrieve(invoice.id).amount_paid == 4900


def test_portal_updates_the_payment_method_and_links_open_invoices(client, failed_subscription):
    customer, sub = failed_subscription
    client.v1.billing_portal.configurations.create(
        {
            "business_profile": {"headline": "Meterdesk"},
            "features": {
                "invoice_history": {"enabled": True},
                "payment_method_update": {"enabled": True},
            },
        }
    )
    session = client.v1.billing_portal.sessions.create({"customer": customer.id})
    portal = urllib.request.urlopen(session.url).read().decode()
    assert "Visa \u2022\u2022\u2022\u2022 0341" in portal
    # Invoice history: the open invoice has a Pay link to its hosted page.
    assert f"href='{sub.latest_invoice.hosted_invoice_url}'>Pay 49.00 USD</a>" in portal
    action = re.search(r"action='(/p/session/[^']+/payment_method)'", portal).group(1)
    base = session.url.split("/p/session/")[0]
    status, location = _post(base + action, {"payment_method": "pm_card_mastercard"})
    assert status == 303 and location.endswith("?updated=1")
    updated = client.v1.customers.retrieve(
        customer.id, {"expand": ["invoice_settings.default_payment_method"]}
    )
    assert updated.invoice_settings.default_payment_method.card.last4 == "4444"
    event = client.v1.events.list({"type": "customer.updated", "limit": 1}).data[0]
    assert "invoice_settings" in event.data.previous_attributes
    # Updating the card charges nothing by itself; the new default pays from the hosted page.
    assert client.v1.invoices.retrieve(sub.latest_invoice.id).status == "open"
    page = urllib.request.urlopen(sub.latest_invoice.hosted_invoice_url).read().decode()
    assert "Card on file: Mastercard \u2022\u2022\u2022\u2022 4444" in page
    pm_id = updated.invoice_settings.default_payment_method.id
    assert _post(f"{sub.latest_invoice.hosted_invoice_url}/pay", {"payment_method": pm_id}) == (
        303,
        f"/invoices/{sub.latest_invoice.id}?paid=1",
    )
    assert client.v1.invoices.retrieve(sub.latest_invoice.id).status == "paid"
    after = urllib.request.urlopen(session.url).read().decode()
    assert "Pay 49.00 USD" not in after
