"""Billing credits: each grant's ledger, expiry, and application to invoices.

Sources (see /work/notes/stripe_credits.md for the quotes):

- [BC] https://docs.stripe.com/billing/subscriptions/usage-based/billing-credits
- [API-CG] https://docs.stripe.com/api/billing/credit-grant (create, expire, void, object)
- [CL-inv] https://docs.stripe.com/changelog/acacia/2024-10-28/billing-credits-invoice
- [CL-void] https://docs.stripe.com/changelog/acacia/2024-12-18/billing-credits-invoice-voiding
- [CL-prio] https://docs.stripe.com/changelog/acacia/2025-02-24/billing-credits-priority

The ledger ([BC]: "A credit grant is backed by an immutable, append-only ledger") is the
``billing.credit_balance_transaction`` objects of a grant: a ``credits_granted`` credit
effective at the grant's ``effective_at``; ``credits_applied`` debits (one per grant per
invoice line) when an invoice finalizes; ``credits_expired`` / ``credits_voided`` debits of
what is left; ``credits_application_invoice_voided`` credits when an invoice whose credits
were applied is voided. A grant's ledger balance at time t is the sum of its transactions
effective at or before t.

Expiry is recorded lazily: when a test clock advances (in time order with the period
ends and renewal finalizations it crosses, :func:`stripe_emulator.invoicing.close_due_periods`),
every real-time tick, and before any read of grants, transactions or balances.

Every function here is called with ``store.lock`` held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lists import present

if TYPE_CHECKING:
    from .app import Emulator
    from .store import Store

GRANT = "billing.credit_grant"
TXN = "billing.credit_balance_transaction"


def monetary(currency: str, value: int) -> dict:
    return {"monetary": {"currency": currency, "value": value}, "type": "monetary"}


def grant_currency(grant: dict) -> str:
    return grant["amount"]["monetary"]["currency"]


# -- the ledger ---------------------------------------------------------------------------
def transactions(store: Store, grant: dict) -> list[dict]:
    return [store.get(TXN, t) for t in grant.get("_txns", []) if store.get(TXN, t)]


def ledger_balance(store: Store, grant: dict, at: int | None = None) -> int:
    """The sum of the grant's transactions effective at or before ``at`` (all when None)."""
    return sum(
        t["_delta"] for t in transactions(store, grant) if at is None or t["effective_at"] <= at
    )


def record(
    app: Emulator,
    grant: dict,
    kind: str,
    reason: str,
    value: int,
    *,
    effective_at: int,
    created: int | None = None,
    invoice: str | None = None,
    line: str | None = None,
) -> dict:
    """Append one transaction to the grant's ledger (``kind`` credit|debit, ``reason`` its
    ``credit.type`` / ``debit.type``) and emit ``billing.credit_balance_transaction.created``."""
    store = app.store
    currency = grant_currency(grant)
    ref = {"invoice": invoice, "invoice_line_item": line}
    if kind == "credit":
        detail = {
            "amount": monetary(currency, value),
            "credits_application_invoice_voided": (
                ref if reason == "credits_application_invoice_voided" else None
            ),
            "type": reason,
        }
    else:
        detail = {
            "amount": monetary(currency, value),
            "credits_applied": ref if reason == "credits_applied" else None,
            "type": reason,
        }
    txn = {
        "id": store.new_id(TXN, 24),
        "object": TXN,
        "created": effective_at if created is None else created,
        "credit": detail if kind == "credit" else None,
        "credit_grant": grant["id"],
        "debit": detail if kind == "debit" else None,
        "effective_at": effective_at,
        "livemode": False,
        "test_clock": grant.get("test_clock"),
        "type": kind,
        "_customer": grant["customer"],
        "_delta": value if kind == "credit" else -value,
        "_invoice": invoice,
    }
    store.add(TXN, txn)
    grant.setdefault("_txns", []).append(txn["id"])
    store.mark_dirty()
    app.emit("billing.credit_balance_transaction.created", present(store, txn))
    return txn


def close_out(app: Emulator, grant: dict, reason: str, when: int) -> None:
    """Debit everything left on the grant (``credits_expired`` or ``credits_voided``).
    A grant still pending (``effective_at`` after ``when``) is debited at its
    ``effective_at``, so its balance never becomes usable."""
    left = ledger_balance(app.store, grant)
    if left > 0:
        at = max(when, grant["effective_at"] or when)
        record(app, grant, "debit", reason, left, effective_at=at, created=when)


def _clock_busy(store: Store, clock_id: str | None) -> bool:
    """An advancing clock's frozen_time is already the target: leave its grants until the
    advance has processed the period ends in between (in time order)."""
    clock = store.get("test_helpers.test_clock", clock_id) if clock_id else None
    return bool(clock and clock["status"] != "ready")


def expire_due(app: Emulator, *, now: int, clock_id: str | None = None, customer=None) -> int:
    """Record ``credits_expired`` for grants past ``expires_at`` by ``now`` ([BC]: "you can
    specify an expiration time ... using the expires_at field"): those of customers on
    ``clock_id``, or of one customer. Returns how many grants expired."""
    store = app.store
    done = 0
    for grant in list(store.objects.get(GRANT, {}).values()):
        if customer is not None and grant["customer"] != customer:
            continue
        if customer is None and grant.get("test_clock") != clock_id:
            continue
        expires = grant["expires_at"]
        if expires is None or expires > now or grant.get("_expired"):
            continue
        grant["_expired"] = True
        close_out(app, grant, "credits_expired", expires)
        done += 1
    return done


def settle(app: Emulator, customer_id: str | None = None) -> None:
    """Bring expiries up to date before a read (one customer, or all)."""
    store = app.store
    customers = (
        [customer_id]
        if customer_id
        else sorted({g["customer"] for g in store.objects.get(GRANT, {}).values()})
    )
    for cid in customers:
        customer = store.get("customer", cid)
        clock_id = customer.get("test_clock") if customer else None
        if _clock_busy(store, clock_id):
            continue
        expire_due(app, now=store.customer_now(cid), customer=cid)


def is_expired(grant: dict, now: int) -> bool:
    return grant["expires_at"] is not None and grant["expires_at"] <= now


def net_applied(store: Store, grant: dict) -> int:
    """Credits applied to invoices and not reinstated by voiding those invoices."""
    total = 0
    for t in transactions(store, grant):
        if t["debit"] and t["debit"]["type"] == "credits_applied":
            total += t["debit"]["amount"]["monetary"]["value"]
        if t["credit"] and t["credit"]["type"] == "credits_application_invoice_voided":
            total -= t["credit"]["amount"]["monetary"]["value"]
    return total


def provisional(store: Store, grant: dict) -> int:
    """What the customer's draft invoices show of this grant (not yet in the ledger)."""
    total = 0
    for invoice in store.objects.get("invoice", {}).values():
        if invoice["status"] == "draft" and invoice["customer"] == grant["customer"]:
            for entry in invoice.get("_credits", []):
                if entry["grant"] == grant["id"]:
                    total += entry["amount"]
    return total


def available_balance(store: Store, grant: dict, now: int) -> int:
    """[BC]: "equal to the ledger balance less any expired credits or unrecorded
    transactions" and "If credits from a credit grant appear on a draft invoice, the
    available balance might show zero, but the ledger balance remains positive until the
    invoice finalizes": the ledger less what drafts show, never below zero."""
    if grant["voided_at"] is not None or is_expired(grant, now):
        return 0
    return max(0, ledger_balance(store, grant, now) - provisional(store, grant))


def is_unused(store: Store, grant: dict, now: int) -> bool:
    """For [BC]'s "up to 100 unused credit grants": not voided, not expired, and pending
    or with a positive ledger balance."""
    if grant["voided_at"] is not None or is_expired(grant, now):
        return False
    return (grant["effective_at"] or 0) > now or ledger_balance(store, grant, now) > 0


# -- application to invoices --------------------------------------------------------------
def _is_subscription_invoice(invoice: dict) -> bool:
    """[BC] "DOES NOT APPLY TO": "One-off invoices that weren't created by a subscription"."""
    return bool(invoice.get("_subscription"))


def _metered_price(store: Store, line: dict) -> dict | None:
    """The line's price when it can take credits: a subscription item's line ([BC]: not
    "One-time invoice items which are added to a subscription's ... invoice") whose price
    is metered and reports through a Meter ([BC]: "You can only apply credit grants to
    subscription items that use metered prices and report usage through Meters"; licensed
    lines never)."""
    if (line.get("parent") or {}).get("type") != "subscription_item_details":
        return None
    price_id = ((line.get("pricing") or {}).get("price_details") or {}).get("price")
    price = store.get("price", price_id or "")
    recurring = (price or {}).get("recurring") or {}
    if recurring.get("usage_type") != "metered" or not recurring.get("meter"):
        return None
    return price


def _in_scope(grant: dict, price_id: str) -> bool:
    """[BC]: "If the price on a subscription item matches one of the credit grant's
    applicable prices, then the credit grant could apply to that item"."""
    scope = grant["applicability_config"]["scope"]
    if scope.get("price_type") == "metered":
        return True
    return any(p["id"] == price_id for p in scope.get("prices") or [])


def application_order(grant: dict) -> tuple:
    """[BC] "Multiple credit grants": priority (lower number first), then earlier
    ``expires_at``, then ``promotional`` before ``paid``, then earlier ``effective_at``,
    then earlier ``created``. ASSUMPTION: grants without ``expires_at`` come after every
    grant that has one -- Stripe does not document where they sort."""
    priority = 50 if grant["priority"] is None else grant["priority"]
    expires = grant["expires_at"]
    return (
        priority,
        expires is None,
        expires or 0,
        grant["category"] != "promotional",
        grant["effective_at"] or 0,
        grant["created"],
        grant["_seq"],
    )


def eligible_grants(store: Store, invoice: dict, at: int) -> list[dict]:
    """[BC] "Credit grant eligibility": "The invoice's period_end is on or after the credit
    grant's effective_at time", "The invoice's period_end occurs before the credit grant's
    expires_at time, if set" (strict), "The credit grant has an available balance when the
    invoice finalizes" (at ``at``: not voided, not expired, positive ledger balance), and
    "The credit grant's currency matches the invoice currency". In application order."""
    end = invoice["period_end"]
    found = [
        g
        for g in store.objects.get(GRANT, {}).values()
        if g["customer"] == invoice["customer"]
        and g["voided_at"] is None
        and grant_currency(g) == invoice["currency"]
        and (g["effective_at"] or 0) <= end
        and (g["expires_at"] is None or end < g["expires_at"])
        and not is_expired(g, at)
    ]
    return sorted(found, key=application_order)


def _allocate(store: Store, invoice: dict, at: int) -> list[dict]:
    """Grants over the invoice's credit-eligible lines: [BC] "If you can apply a credit grant
    to multiple lines on the same invoice, the credit applies to the lines in the order
    they appear on the invoice". One entry per grant per line (a ``credits_applied`` debit
    references one invoice line item, stripe-python ``CreditBalanceTransaction``)."""
    if not _is_subscription_invoice(invoice):
        return []
    grants = eligible_grants(store, invoice, at)
    # The balance as of finalization; a preview (``at`` before the period end) counts a
    # grant that becomes effective later in the period, as finalization will.
    as_of = max(at, invoice["period_end"])
    left = {g["id"]: ledger_balance(store, g, as_of) for g in grants}
    entries = []
    for line in invoice["_lines"]:
        price = _metered_price(store, line)
        if price is None or line["currency"] != invoice["currency"]:
            continue
        # [BC]: "Credit grants apply to invoices after discounts, but before taxes"
        due = line["amount"] - sum(d["amount"] for d in line.get("discount_amounts") or [])
        for grant in grants:
            if due <= 0:
                break
            use = min(due, left[grant["id"]])
            if use <= 0 or not _in_scope(grant, price["id"]):
                continue
            left[grant["id"]] -= use
            due -= use
            entries.append({"grant": grant["id"], "line": line["id"], "amount": use})
    return entries


def recompute_totals(invoice: dict) -> None:
    """A draft's (or preview's) totals from its lines and their pretax credits.

    Stripe does not state in one sentence that credits lower ``total`` and ``amount_due``;
    it follows from credits being "pretax" (``pretax_credit_amounts``, [CL-inv]), applying
    "after discounts, but before taxes and the invoice_credit_balance" ([BC]), and
    ``invoice.total`` being "Total after discounts and taxes" (stripe-python ``Invoice``):
    so ``total``, ``total_excluding_tax``, ``amount_due`` and ``amount_remaining`` are the
    subtotal less the credits, and ``subtotal`` ("before any invoice level discount or
    exclusive tax") is unchanged. No taxes are emulated."""
    lines = invoice["_lines"]
    subtotal = sum(line["amount"] for line in lines)
    applied = [entry for line in lines for entry in line.get("pretax_credit_amounts") or []]
    total = subtotal - sum(entry["amount"] for entry in applied)
    invoice["total_pretax_credit_amounts"] = [dict(entry) for entry in applied]
    for key in ("subtotal", "subtotal_excluding_tax"):
        invoice[key] = subtotal
    for key in ("total", "total_excluding_tax", "amount_due", "amount_remaining"):
        invoice[key] = total


def _write(invoice: dict, entries: list[dict], txn_ids: list[str | None]) -> None:
    by_line: dict[str, list[dict]] = {}
    for entry, txn_id in zip(entries, txn_ids, strict=True):
        by_line.setdefault(entry["line"], []).append(
            {
                "amount": entry["amount"],
                "credit_balance_transaction": txn_id,
                "discount": None,
                "type": "credit_balance_transaction",
            }
        )
    for line in invoice["_lines"]:
        line["pretax_credit_amounts"] = by_line.get(line["id"], [])
    invoice["_credits"] = entries
    recompute_totals(invoice)


def show_provisionally(app: Emulator, invoice: dict, at: int | None = None) -> bool:
    """Credits on a draft or preview, not recorded in the ledger ([BC]: "Credits apply to
    invoices only at the time of finalization. If you apply credits to a preview or draft
    invoice, those credits might change if a finalized invoice uses them first").

    Each draft or preview is figured against the grants' ledger balance, not what other
    drafts already show: [BC] Example 1, "the same set of credits appear on both a draft
    invoice and a preview invoice", and Example 2, one set of credits can show on the
    previews of several subscriptions. Returns whether the credits shown changed."""
    store = app.store
    at = store.customer_now(invoice["customer"]) if at is None else at
    before = invoice.get("_credits", [])
    entries = _allocate(store, invoice, at)
    _write(invoice, entries, [None] * len(entries))
    return entries != before


def apply_at_finalization(app: Emulator, invoice: dict, at: int) -> None:
    """[BC]: "Credits apply to invoices only at the time of finalization"; [IG] "After the
    invoice finalizes, Stripe automatically applies all applicable billing credits"
    (https://docs.stripe.com/billing/subscriptions/usage-based/billing-credits/implementation-guide).
    Writes ``pretax_credit_amounts`` on each credited line, ``total_pretax_credit_amounts``
    on the invoice, lowers the totals and records one ``credits_applied`` debit per grant
    per line. One-off invoices are left as they are."""
    if not _is_subscription_invoice(invoice):
        return
    expire_due(app, now=at, customer=invoice["customer"])
    entries = _allocate(app.store, invoice, at)
    txns = [
        record(
            app,
            app.store.get(GRANT, entry["grant"]),
            "debit",
            "credits_applied",
            entry["amount"],
            effective_at=at,
            invoice=invoice["id"],
            line=entry["line"],
        )["id"]
        for entry in entries
    ]
    _write(invoice, entries, txns)


def refresh_drafts(app: Emulator, customer_id: str, at: int | None = None) -> None:
    """Re-figure the provisional credits of the customer's subscription drafts after the
    grants or the ledger changed; ``invoice.updated`` for each draft whose credits moved."""
    store = app.store
    for invoice in store.all("invoice"):
        if (
            invoice["customer"] == customer_id
            and invoice["status"] == "draft"
            and _is_subscription_invoice(invoice)
            and show_provisionally(app, invoice, at)
        ):
            app.emit("invoice.updated", present(store, invoice))


def reinstate_on_void(app: Emulator, invoice: dict, now: int) -> None:
    """[BC] / [CL-void]: "Voiding an invoice with credits applied reinstates the applied
    balance to the credit grant. If the credit grant is past the expiration date, the
    reinstated credits expire immediately" -- a ``credits_application_invoice_voided``
    credit per applied debit, then a ``credits_expired`` debit when the grant has expired."""
    store = app.store
    expired: dict[str, dict] = {}
    for txn in sorted(store.objects.get(TXN, {}).values(), key=lambda t: t["_seq"]):
        debit = txn["debit"] or {}
        if txn["_invoice"] != invoice["id"] or debit.get("type") != "credits_applied":
            continue
        grant = store.get(GRANT, txn["credit_grant"])
        if grant is None:
            continue
        record(
            app,
            grant,
            "credit",
            "credits_application_invoice_voided",
            debit["amount"]["monetary"]["value"],
            effective_at=now,
            invoice=invoice["id"],
            line=debit["credits_applied"]["invoice_line_item"],
        )
        if is_expired(grant, now):
            expired[grant["id"]] = grant
    for grant in expired.values():
        grant["_expired"] = True
        close_out(app, grant, "credits_expired", now)
    if expired or invoice.get("_credits"):
        refresh_drafts(app, invoice["customer"])
