"""Finalizing an invoice and charging it: ``paid``, or ``open`` with the subscription
``past_due`` when the charge fails. Called with ``store.lock`` held."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import credit_application, customer_balance
from .lists import present

if TYPE_CHECKING:
    from .app import Emulator


def finalize(app: Emulator, invoice: dict, now: int) -> None:
    """Every finalization path (renewal drafts, ``/finalize``, ``/pay``, a subscription's
    first invoice, a proration invoice) applies the billing credits here, then the
    customer's balance (:mod:`stripe_emulator.customer_balance`), then re-figures what the
    customer's other drafts show (:mod:`stripe_emulator.credit_application`)."""
    store = app.store
    credit_application.apply_at_finalization(app, invoice, now)
    customer_balance.apply_at_finalization(app, invoice, now)
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
    if invoice["collection_method"] == "send_invoice" and invoice["due_date"] is None:
        days = invoice.get("_days_until_due") or 30
        sub = store.get("subscription", invoice["_subscription"] or "")
        if sub and sub.get("days_until_due"):
            days = sub["days_until_due"]
        invoice["due_date"] = now + days * 86400
    app.emit("invoice.finalized", present(store, invoice))
    if invoice.get("_credits"):
        credit_application.refresh_drafts(app, invoice["customer"], now)


def payment_method_for(app: Emulator, invoice: dict, override: str | None = None) -> dict | None:
    store = app.store
    candidates = [override, invoice.get("default_payment_method")]
    sub = store.get("subscription", invoice["_subscription"] or "")
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
        amount_paid=invoice["amount_due"],
        amount_remaining=0,
        next_payment_attempt=None,
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
    sub = app.store.get("subscription", invoice["_subscription"] or "")
    if sub:
        failed = "incomplete" if invoice["billing_reason"] == "subscription_create" else "past_due"
        set_subscription_status(app, invoice, failed)
    return False


def set_subscription_status(app: Emulator, invoice: dict, status: str) -> None:
    sub = app.store.get("subscription", invoice["_subscription"] or "")
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
