"""Invoices from subscriptions: first invoice, period closing, finalization, payment.

- A subscription's creation invoices its licensed items in advance for the first
  period (metered items add nothing: they bill in arrears).
- When a period ends (a test clock advance, or real time for subscriptions without a
  clock), one invoice is made: licensed items for the new period (in advance) and
  metered items for the closed period (in arrears, quantity = the meter's aggregation
  over the customer's events in [period start, period end)). It is then finalized
  and the default payment method charged: ``paid``, or ``open`` with the subscription
  ``past_due`` when the charge fails.
- Line amounts come from :mod:`stripe_emulator.rating` (each rounded once).

Every function here is called with ``store.lock`` held.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from . import rating
from .lists import present
from .periods import period_bounds
from .resources.meter_events import aggregate
from .store import random_token

if TYPE_CHECKING:
    from .app import Emulator

CYCLING = ("active", "past_due", "trialing")


def _money(amount: int | Decimal, currency: str) -> str:
    value = (Decimal(amount) / 100).quantize(Decimal("0.01"))
    symbol = "$" if currency == "usd" else ""
    return f"{symbol}{value}" + ("" if symbol else f" {currency.upper()}")


def describe(product_name: str, price: dict, quantity: int) -> str:
    recurring = price.get("recurring") or {}
    interval = recurring.get("interval", "")
    if recurring.get("interval_count", 1) > 1:
        interval = f"{recurring['interval_count']} {interval}s"
    if price["billing_scheme"] == "tiered":
        return f"{quantity} \u00d7 {product_name} ({price['tiers_mode']} tiers, per {interval})"
    unit = price["unit_amount_decimal"] or "0"
    per = f" per {price['transform_quantity']['divide_by']}" if price["transform_quantity"] else ""
    at = _money(Decimal(unit), price["currency"])
    return f"{quantity} \u00d7 {product_name} (at {at}{per} / {interval})"


def make_line(app: Emulator, sub: dict, item: dict, quantity: int, start: int, end: int) -> dict:
    store = app.store
    price = store.get("price", item["price"])
    product = store.get("product", price["product"]) or {"name": price["product"]}
    amount = rating.rate(price, quantity)
    return {
        "id": "il_" + random_token(24),
        "object": "line_item",
        "amount": amount,
        "currency": price["currency"],
        "description": describe(product["name"], price, quantity),
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": dict(item.get("metadata") or {}),
        "parent": {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": sub["id"],
                "subscription_item": item["id"],
            },
        },
        "period": {"start": start, "end": end},
        "pretax_credit_amounts": [],
        "pricing": {
            "type": "price_details",
            "price_details": {"price": price["id"], "product": price["product"]},
            "unit_amount_decimal": price["unit_amount_decimal"],
        },
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "subscription": sub["id"],
        "subscription_item": item["id"],  # pre-basil key, still read by dj-stripe 2.11
        "subtotal": amount,
        "taxes": [],
    }


def sub_items(app: Emulator, sub: dict) -> list[dict]:
    return [app.store.get("subscription_item", i) for i in sub["_items"]]


def usage_type(app: Emulator, item: dict) -> str:
    return app.store.get("price", item["price"])["recurring"]["usage_type"]


def licensed_lines(app: Emulator, sub: dict, start: int, end: int) -> list[dict]:
    return [
        make_line(app, sub, item, item["quantity"], start, end)
        for item in sub_items(app, sub)
        if usage_type(app, item) == "licensed"
    ]


def metered_lines(app: Emulator, sub: dict, start: int, end: int) -> list[dict]:
    lines = []
    for item in sub_items(app, sub):
        if usage_type(app, item) != "metered":
            continue
        price = app.store.get("price", item["price"])
        meter = app.store.get("billing.meter", price["recurring"]["meter"])
        quantity = aggregate(app.store, meter, sub["customer"], start, end) if meter else 0
        lines.append(make_line(app, sub, item, quantity, start, end))
    return lines


def new_invoice(
    app: Emulator,
    customer: dict,
    lines: list[dict],
    *,
    now: int,
    currency: str,
    sub: dict | None = None,
    billing_reason: str = "manual",
    period: tuple[int, int] | None = None,
    store_it: bool = True,
) -> dict:
    store = app.store
    invoice_id = store.new_id("invoice", 24) if store_it else "upcoming_in_" + random_token(24)
    for line in lines:
        line["invoice"] = invoice_id
    total = sum(line["amount"] for line in lines)
    start, end = period or (now, now)
    invoice = {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Meterdesk (emulated)",
        "account_tax_ids": None,
        "amount_due": total,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": total,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": sub is not None,
        "automatic_tax": {
            "enabled": False,
            "liability": None,
            "disabled_reason": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": sub["collection_method"] if sub else "charge_automatically",
        "created": now,
        "currency": currency,
        "custom_fields": None,
        "customer": customer["id"],
        "customer_account": None,
        "customer_address": customer.get("address"),
        "customer_email": customer.get("email"),
        "customer_name": customer.get("name"),
        "customer_phone": customer.get("phone"),
        "customer_shipping": customer.get("shipping"),
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "paid": False,
        "parent": (
            {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(sub["metadata"]),
                    "subscription": sub["id"],
                },
            }
            if sub
            else None
        ),
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": end,
        "period_start": start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subscription": sub["id"] if sub else None,
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "test_clock": customer.get("test_clock"),
        "total": total,
        "total_discount_amounts": [],
        "total_excluding_tax": total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
        "_lines": lines,
    }
    if store_it:
        store.add("invoice", invoice)
        app.emit("invoice.created", present(store, invoice))
    return invoice


def finalize(app: Emulator, invoice: dict, now: int) -> None:
    store = app.store
    customer = store.get("customer", invoice["customer"])
    sequence = customer["next_invoice_sequence"] if customer else 1
    if customer:
        customer["next_invoice_sequence"] += 1
        prefix = customer["invoice_prefix"]
    else:
        prefix = "EMU"
    invoice["number"] = f"{prefix}-{sequence:04d}"
    invoice["status"] = "open"
    invoice["effective_at"] = now
    invoice["status_transitions"]["finalized_at"] = now
    invoice["hosted_invoice_url"] = f"{store.base_url}/invoices/{invoice['id']}"
    invoice["invoice_pdf"] = f"{store.base_url}/invoices/{invoice['id']}?format=pdf"
    if invoice["collection_method"] == "send_invoice":
        days = 30
        sub = store.get("subscription", invoice["subscription"] or "")
        if sub and sub.get("days_until_due"):
            days = sub["days_until_due"]
        invoice["due_date"] = now + days * 86400
    app.emit("invoice.finalized", present(store, invoice))


def payment_method_for(app: Emulator, invoice: dict, override: str | None = None) -> dict | None:
    store = app.store
    candidates = [override, invoice.get("default_payment_method")]
    sub = store.get("subscription", invoice["subscription"] or "")
    if sub:
        candidates.append(sub.get("default_payment_method"))
    customer = store.get("customer", invoice["customer"])
    if customer:
        candidates.append(customer["invoice_settings"].get("default_payment_method"))
    for pm_id in candidates:
        if pm_id and store.get("payment_method", pm_id):
            return store.get("payment_method", pm_id)
    return None


def mark_paid(app: Emulator, invoice: dict, now: int) -> None:
    invoice.update(
        status="paid",
        paid=True,
        amount_paid=invoice["amount_due"],
        amount_remaining=0,
        next_payment_attempt=None,
        ending_balance=0,
    )
    invoice["status_transitions"]["paid_at"] = now
    snapshot = present(app.store, invoice)
    if invoice["amount_due"] > 0:
        app.emit("invoice.payment_succeeded", snapshot)
    app.emit("invoice.paid", snapshot)
    set_subscription_status(app, invoice, "active")


def attempt_payment(app: Emulator, invoice: dict, now: int, pm_override=None) -> bool:
    """Charge the invoice; True when it ends ``paid``."""
    if invoice["amount_due"] == 0:
        mark_paid(app, invoice, now)
        return True
    if invoice["collection_method"] == "send_invoice" and pm_override is None:
        return False
    pm = payment_method_for(app, invoice, pm_override)
    invoice["attempted"] = True
    invoice["attempt_count"] += 1
    if pm is not None and pm["_behaviour"] == "pays":
        mark_paid(app, invoice, now)
        return True
    invoice["next_payment_attempt"] = None
    app.emit("invoice.payment_failed", present(app.store, invoice))
    sub = app.store.get("subscription", invoice["subscription"] or "")
    if sub:
        failed = "incomplete" if invoice["billing_reason"] == "subscription_create" else "past_due"
        set_subscription_status(app, invoice, failed)
    return False


def set_subscription_status(app: Emulator, invoice: dict, status: str) -> None:
    sub = app.store.get("subscription", invoice["subscription"] or "")
    if not sub or sub["status"] in ("canceled", "incomplete_expired") or sub["status"] == status:
        return
    if status == "active" and sub.get("latest_invoice") != invoice["id"]:
        return  # an older invoice paid late does not revive the subscription
    previous = sub["status"]
    sub["status"] = status
    app.emit("customer.subscription.updated", present(app.store, sub), {"status": previous})


def finalize_and_pay(app: Emulator, invoice: dict, now: int) -> None:
    finalize(app, invoice, now)
    if invoice["amount_due"] == 0:
        mark_paid(app, invoice, now)
    elif invoice["collection_method"] == "charge_automatically":
        attempt_payment(app, invoice, now)


def set_period(app: Emulator, sub: dict, start: int, end: int) -> None:
    for item in sub_items(app, sub):
        item["current_period_start"], item["current_period_end"] = start, end


def current_period(app: Emulator, sub: dict) -> tuple[int, int]:
    items = sub_items(app, sub)
    if items:
        return items[0]["current_period_start"], items[0]["current_period_end"]
    return period_bounds(sub["billing_cycle_anchor"], *sub["_interval"], sub["_cycles"])


def close_period(app: Emulator, sub: dict) -> dict | None:
    """Close the subscription's current period: renewal (or final) invoice."""
    store = app.store
    start, end = current_period(app, sub)
    customer = store.get("customer", sub["customer"])
    metered = metered_lines(app, sub, start, end)
    before = present(store, sub)
    if sub["cancel_at_period_end"] or (sub.get("cancel_at") and sub["cancel_at"] <= end):
        invoice = None
        if metered and customer:
            invoice = _cycle_invoice(app, customer, sub, metered, start, end)
        end_subscription(app, sub, end)
        return invoice
    sub["_cycles"] += 1
    new_start, new_end = period_bounds(
        sub["billing_cycle_anchor"], *sub["_interval"], sub["_cycles"]
    )
    set_period(app, sub, new_start, new_end)
    lines = licensed_lines(app, sub, new_start, new_end) + metered
    after = present(store, sub)
    app.emit(
        "customer.subscription.updated",
        after,
        {"items": before["items"]} if before["items"] != after["items"] else None,
    )
    if customer is None:
        return None
    return _cycle_invoice(app, customer, sub, lines, start, end)


def _cycle_invoice(app: Emulator, customer: dict, sub: dict, lines, start: int, end: int):
    """The invoice that closes a period: created, linked, finalized and charged."""
    invoice = new_invoice(
        app,
        customer,
        lines,
        now=end,
        currency=sub["currency"],
        sub=sub,
        billing_reason="subscription_cycle",
        period=(start, end),
    )
    sub["latest_invoice"] = invoice["id"]
    finalize_and_pay(app, invoice, end)
    return invoice


def end_subscription(app: Emulator, sub: dict, now: int) -> None:
    sub["status"] = "canceled"
    sub["ended_at"] = now
    sub["canceled_at"] = sub.get("canceled_at") or now
    app.emit("customer.subscription.deleted", present(app.store, sub))


def close_due_periods(app: Emulator, clock_id: str | None) -> int:
    """Close every period that has ended for subscriptions of customers on ``clock_id``
    (None: customers without a clock, against real time). Returns how many closed."""
    store = app.store
    closed = 0
    for sub in store.all("subscription"):
        if sub.get("test_clock") != clock_id or sub["status"] not in CYCLING:
            continue
        now = store.clock_now(clock_id)
        while sub["status"] in CYCLING and current_period(app, sub)[1] <= now:
            close_period(app, sub)
            closed += 1
    return closed


def preview_for_subscription(app: Emulator, sub: dict) -> dict:
    """The next renewal invoice as it stands (usage so far), not stored."""
    store = app.store
    start, end = current_period(app, sub)
    customer = store.get("customer", sub["customer"])
    lines = metered_lines(app, sub, start, end)
    if not sub["cancel_at_period_end"]:
        next_start, next_end = period_bounds(
            sub["billing_cycle_anchor"], *sub["_interval"], sub["_cycles"] + 1
        )
        lines = licensed_lines(app, sub, next_start, next_end) + lines
    invoice = new_invoice(
        app,
        customer,
        lines,
        now=end,
        currency=sub["currency"],
        sub=sub,
        billing_reason="upcoming",
        period=(start, end),
        store_it=False,
    )
    invoice["next_payment_attempt"] = end if invoice["amount_due"] else None
    return invoice
