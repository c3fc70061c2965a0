"""Renewal invoices are drafts for an hour: created at the period boundary
(``invoice.created``), finalized and charged ``invoice_finalize_delay`` seconds of clock
time later (``--invoice-finalize-delay``, default 3600), with their usage lines brought
up to date first.

As Stripe does:

- "All invoices have a default finalization grace period of 1 hour. During the
  finalization grace period, you can continue to report usage for the previous billing
  period. During finalization, Stripe updates the invoice to reflect the latest quantity"
  (https://docs.stripe.com/billing/subscriptions/usage-based/configure-grace-period);
  subscription invoices after the first are created as drafts and finalized about an
  hour later (https://docs.stripe.com/billing/invoices/subscription, "Subscription
  invoice lifecycle"; https://docs.stripe.com/billing/subscriptions/webhooks).
- stripe-python 15 ``Invoice.automatically_finalizes_at``: "The time when this invoice is
  currently scheduled to be automatically finalized ... null if the invoice is not
  scheduled to finalize in the future"; ``Invoice.attempted``: "An invoice is not
  attempted until 1 hour after the ``invoice.created`` webhook".

Time is the clock's: a test clock advance past ``automatically_finalizes_at`` finalizes
(in order with the period ends it also crosses), real time for customers without one.
Stripe also waits for the ``invoice.created`` webhooks to be delivered (up to 72 hours);
the emulator does not. Called with ``store.lock`` held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .credit_application import recompute_totals
from .invoice_lines import make_line, usage_type
from .invoice_payment import finalize_and_pay
from .resources.meter_events import aggregate

if TYPE_CHECKING:
    from .app import Emulator


def schedule(app: Emulator, invoice: dict, created_at: int) -> None:
    """Leave the new renewal invoice a draft until ``created_at`` + the delay."""
    invoice["automatically_finalizes_at"] = created_at + max(0, app.invoice_finalize_delay)
    invoice["_auto_finalize"] = True
    if app.invoice_finalize_delay <= 0:
        finalize(app, invoice)


def due(app: Emulator, clock_id: str | None, now: int) -> list[dict]:
    """Drafts of customers on ``clock_id`` (None: no clock) due by ``now``, oldest first."""
    found = [
        invoice
        for invoice in app.store.all("invoice")
        if invoice.get("_auto_finalize")
        and invoice["status"] == "draft"
        and invoice.get("test_clock") == clock_id
        and invoice["automatically_finalizes_at"] <= now
    ]
    return sorted(found, key=lambda i: (i["automatically_finalizes_at"], i["_seq"]))


def _refresh_usage(app: Emulator, invoice: dict) -> None:
    """Metered lines re-aggregated over their period (usage reported in the grace period
    counts); amounts and totals follow (billing credits are applied at finalization)."""
    store = app.store
    sub_id = ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    sub = store.get("subscription", sub_id or "")
    if sub is None:
        return
    for i, line in enumerate(invoice["_lines"]):
        details = (line.get("parent") or {}).get("subscription_item_details") or {}
        item = store.get("subscription_item", details.get("subscription_item") or "")
        if item is None or usage_type(app, item) != "metered":
            continue
        price_id = line["pricing"]["price_details"]["price"]  # the period's price
        meter = store.get("billing.meter", store.get("price", price_id)["recurring"]["meter"])
        start, end = line["period"]["start"], line["period"]["end"]
        quantity = aggregate(store, meter, sub["customer"], start, end) if meter else 0
        if quantity != line["quantity"]:
            fresh = make_line(app, sub, dict(item, price=price_id), quantity, start, end)
            fresh.update(id=line["id"], invoice=invoice["id"])
            invoice["_lines"][i] = fresh
    recompute_totals(invoice)


def finalize(app: Emulator, invoice: dict) -> None:
    """Finalize a due draft at its scheduled time and charge it."""
    at = invoice["automatically_finalizes_at"]
    _refresh_usage(app, invoice)
    invoice["automatically_finalizes_at"] = None
    invoice.pop("_auto_finalize", None)
    finalize_and_pay(app, invoice, at)
