"""Issue 13, the small divergences, each as Stripe does it (each test fails on the old,
kinder emulator):

- subscriptions default to ``billing_mode: flexible`` (2025-09-30.clover);
- ``customers.list`` / ``subscriptions.list`` leave out objects on a test clock unless
  ``test_clock`` (or, for subscriptions, ``customer``) is passed;
- a price's ``tiers`` (and a plan's) only with ``expand[]=tiers``;
- no field dahlia removed: ``invoice.subscription``, ``invoice.paid``, a line's
  ``subscription_item``; generally, nothing stripe-python 15's object classes lack.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from .helpers import FEB_1, T0, advance, clock_customer, product

TIERS = [
    {"up_to": 100, "unit_amount": 10},
    {"up_to": "inf", "unit_amount": 5, "flat_amount": 100},
]


def _tiered_price(client):
    return client.v1.prices.create(
        {
            "product": product(client).id,
            "currency": "usd",
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            "tiers": TIERS,
            "recurring": {"interval": "month"},
        }
    )


def _seat_subscription(client, customer, **extra):
    price = client.v1.prices.create(
        {
            "product": product(client).id,
            "currency": "usd",
            "unit_amount": 2000,
            "recurring": {"interval": "month"},
        }
    )
    return client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}], **extra}
    )


def test_subscriptions_default_to_flexible_billing_mode(client):
    _, customer = clock_customer(client)
    sub = _seat_subscription(client, customer)
    assert sub.billing_mode.type == "flexible"
    assert sub.billing_mode.flexible.proration_discounts == "included"
    assert sub.billing_mode.updated_at == T0  # the customer's clock time at creation
    classic = _seat_subscription(client, customer, billing_mode={"type": "classic"})
    assert (classic.billing_mode.type, classic.billing_mode.flexible) == ("classic", None)


def test_lists_leave_out_test_clock_objects_unless_asked(client):
    clock, on_clock = clock_customer(client)
    plain = client.v1.customers.create({"email": "plain@example.com"})
    on_clock_sub = _seat_subscription(client, on_clock)
    assert [c.id for c in client.v1.customers.list().data] == [plain.id]
    assert [c.id for c in client.v1.customers.list({"test_clock": clock.id}).data] == [on_clock.id]
    assert client.v1.subscriptions.list().data == []
    by_clock = client.v1.subscriptions.list({"test_clock": clock.id}).data
    by_customer = client.v1.subscriptions.list({"customer": on_clock.id}).data
    assert [s.id for s in by_clock] == [s.id for s in by_customer] == [on_clock_sub.id]


def test_price_tiers_only_when_expanded(client):
    price = _tiered_price(client)
    assert "tiers" not in price  # the create answer too
    assert "tiers" not in client.v1.prices.retrieve(price.id)
    expanded = client.v1.prices.retrieve(price.id, {"expand": ["tiers"]})
    assert [(t.up_to, t.unit_amount) for t in expanded.tiers] == [(100, 10), (None, 5)]
    (listed,) = client.v1.prices.list().data
    assert "tiers" not in listed
    (listed,) = client.v1.prices.list({"expand": ["data.tiers"]}).data
    assert len(listed.tiers) == 2
    assert "tiers" not in client.v1.plans.retrieve(price.id)
    assert len(client.v1.plans.retrieve(price.id, {"expand": ["tiers"]}).tiers) == 2


def test_no_fields_dahlia_removed(client):
    _, customer = clock_customer(client)
    sub = _seat_subscription(client, customer)
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert "subscription" not in invoice and "paid" not in invoice
    assert invoice.parent.subscription_details.subscription == sub.id
    assert invoice.status == "paid" and invoice.status_transitions.paid_at == T0
    (line,) = invoice.lines.data
    assert "subscription_item" not in line
    details = line.parent.subscription_item_details
    assert details.subscription_item == sub["items"].data[0].id
    # Filtering invoices by subscription still works (it reads parent.subscription_details).
    assert [i.id for i in client.v1.invoices.list({"subscription": sub.id}).data] == [invoice.id]


STRIPE = Path(importlib.util.find_spec("stripe").origin).parent
CLASSES = {  # object -> (stripe-python 15 module, class)
    "invoice": ("_invoice.py", "Invoice"),
    "line_item": ("_invoice_line_item.py", "InvoiceLineItem"),
    "subscription": ("_subscription.py", "Subscription"),
    "subscription_item": ("_subscription_item.py", "SubscriptionItem"),
    "price": ("_price.py", "Price"),
    "customer": ("_customer.py", "Customer"),
}


def _class_fields(module: str, name: str) -> set[str]:
    tree = ast.parse((STRIPE / module).read_text(encoding="utf-8"))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name]
    return {s.target.id for s in cls.body if isinstance(s, ast.AnnAssign)}


def test_every_served_key_exists_in_stripe_python_15(client):
    """The emulator's invoices, lines, subscriptions, items, prices and customers carry
    only keys that stripe-python 15 (generated for 2026-08-26.dahlia) declares."""
    clock, customer = clock_customer(client)
    sub = _seat_subscription(client, customer)
    advance(client, clock.id, FEB_1 + 60)  # a renewal invoice too
    invoices = client.v1.invoices.list({"customer": customer.id}).data
    served = {
        "invoice": [i.to_dict() for i in invoices],
        "line_item": [line.to_dict() for i in invoices for line in i.lines.data],
        "subscription": [client.v1.subscriptions.retrieve(sub.id).to_dict()],
        "subscription_item": [sub["items"].data[0].to_dict()],
        "price": [client.v1.prices.retrieve(sub["items"].data[0].price.id).to_dict()],
        "customer": [client.v1.customers.retrieve(customer.id).to_dict()],
    }
    assert len(served["invoice"]) == 2
    extra = {
        kind: sorted({k for obj in objs for k in obj} - _class_fields(*CLASSES[kind]) - {"id"})
        for kind, objs in served.items()
    }
    assert extra == {kind: [] for kind in served}
