"""Invoices from subscriptions: first invoice, period closing, finalization, payment.

- A subscription's creation invoices its licensed items in advance for the first
  period (metered items add nothing: they bill in arrears).
- When a period ends (a test clock advance, or real time for subscriptions without a
  clock), one invoice is made: licensed items for the new period (in advance) and
  metered items for the closed period (in arrears, quantity = the meter's aggregation
  over the customer's events in [period start, period end)). It is a draft for
  ``--invoice-finalize-delay`` seconds of clock time (default 3600, Stripe's hour), then
  its usage lines are brought up to date, it is finalized and the default payment
  method charged: ``paid``, or ``open`` with the subscription ``past_due`` when the
  charge fails (:mod:`stripe_emulator.renewal_drafts`).
- Line amounts come from :mod:`stripe_emulator.rating` (each rounded once); lines are
  built in :mod:`stripe_emulator.invoice_lines`, payment in
  :mod:`stripe_emulator.invoice_payment`.

Every function here is called with ``store.lock`` held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import credit_application, renewal_drafts
from .invoice_lines import licensed_lines, metered_lines, sub_items
from .lists import present
from .periods import period_bounds
from .store import random_token

if TYPE_CHECKING:
    from .app import Emulator

CYCLING = ("active", "past_due", "trialing")


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
    credits_at: int | None = None,
) -> dict:
    """A draft invoice (stored, ``invoice.created``) or a preview (``store_it=False``).
    A subscription's shows the billing credits that would apply, provisionally
    (:func:`stripe_emulator.credit_application.show_provisionally`, as of ``credits_at``,
    default ``now``)."""
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
        # dahlia: no top-level subscription (parent.subscription_details), kept hidden
        "_subscription": sub["id"] if sub else None,
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
    if sub is not None:
        credit_application.show_provisionally(
            app, invoice, now if credits_at is None else credits_at
        )
    if store_it:
        store.add("invoice", invoice)
        app.emit("invoice.created", present(store, invoice))
    return invoice


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
    if sub.get("schedule"):
        # After rating the closed period's usage, before the new period's licensed
        # lines: exactly when a schedule's next phase starts.
        from .resources.subscription_schedules import enter_phase

        enter_phase(app, sub, new_start)
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
    """The invoice that closes a period: created as a draft and linked; finalized and
    charged later (:mod:`stripe_emulator.renewal_drafts`)."""
    items, item_lines = _pending_items(app, sub)
    invoice = new_invoice(
        app,
        customer,
        lines + item_lines,
        now=end,
        currency=sub["currency"],
        sub=sub,
        billing_reason="subscription_cycle",
        period=(start, end),
    )
    for item in items:
        item["invoice"] = invoice["id"]
    sub["latest_invoice"] = invoice["id"]
    renewal_drafts.schedule(app, invoice, end)
    return invoice


def _pending_items(app: Emulator, sub: dict) -> tuple[list[dict], list[dict]]:
    """The customer's pending invoice items that join the subscription's next invoice
    ("For subscription invoices, when left blank, the invoice item will be added to the
    next upcoming scheduled invoice", stripe-python ``InvoiceItemCreateParams.invoice``),
    and their lines (never credit-eligible)."""
    from .resources import invoice_items

    items = invoice_items.pending(app.store, sub["customer"], sub["currency"], sub["id"])
    return items, [invoice_items.line_for(item, "") for item in items]


def end_subscription(app: Emulator, sub: dict, now: int) -> None:
    sub["status"] = "canceled"
    sub["ended_at"] = now
    sub["canceled_at"] = sub.get("canceled_at") or now
    app.emit("customer.subscription.deleted", present(app.store, sub))


def close_due_periods(app: Emulator, clock_id: str | None) -> int:
    """Close every period that has ended for subscriptions of customers on ``clock_id``
    (None: customers without a clock, against real time) and finalize the renewal drafts
    that are due, in time order. Returns how many periods closed and drafts finalized."""
    store = app.store
    done = 0
    while True:
        now = store.clock_now(clock_id)
        ends = [
            (current_period(app, sub)[1], sub["_seq"], sub)
            for sub in store.all("subscription")
            if sub.get("test_clock") == clock_id and sub["status"] in CYCLING
        ]
        ended = min((e for e in ends if e[0] <= now), default=None, key=lambda e: e[:2])
        drafts = renewal_drafts.due(app, clock_id, now)
        if ended is None and not drafts:
            # billing credits past their expires_at by now (those in between were
            # expired in time order below)
            credit_application.expire_due(app, now=now, clock_id=clock_id)
            return done
        if drafts and (ended is None or drafts[0]["automatically_finalizes_at"] <= ended[0]):
            credit_application.expire_due(
                app, now=drafts[0]["automatically_finalizes_at"], clock_id=clock_id
            )
            renewal_drafts.finalize(app, drafts[0])
        else:
            credit_application.expire_due(app, now=ended[0], clock_id=clock_id)
            close_period(app, ended[2])
        done += 1


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
    lines += _pending_items(app, sub)[1]
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
        credits_at=store.customer_now(sub["customer"]),
    )
    invoice["next_payment_attempt"] = end if invoice["amount_due"] else None
    return invoice
