"""The customer's invoice (credit) balance applied to the next invoice at finalization.

Stripe: "Each customer has a Balance value, which denotes a debit or credit that's
automatically applied to their next invoice upon finalization"
(https://docs.stripe.com/api/customer_balance_transactions); "The invoice balance
automatically applies toward the next invoice finalized to a customer", and "Prorations
from downgrading a subscription can indirectly create credits to reduce the amount due on
the next invoice" (https://docs.stripe.com/billing/customer/balance). The invoice shows it
as ``starting_balance`` ("Starting customer balance before the invoice is finalized. If
the invoice has not been finalized yet, this will be the current customer balance") and
``ending_balance`` ("Ending customer balance after the invoice is finalized ... If the
invoice has not been finalized yet, this will be null"), https://docs.stripe.com/api/invoices/object.
A balance is negative for a credit, positive for a debit; each change is a
``customer_balance_transaction`` whose ``amount`` is "A negative value is a credit for the
customer's balance, and a positive value is a debit", with ``ending_balance`` "The
customer's balance after the transaction was applied", type ``applied_to_invoice``
("Traces the application of credit against a linked Invoice"),
https://docs.stripe.com/api/customer_balance_transactions/object.

So, with ``due`` the invoice's amount after billing credits (which apply first: "before
taxes and the invoice_credit_balance") and ``start`` the customer's balance:
``x = due + start``; the invoice's ``amount_due`` is ``max(0, x)``; what is left,
``min(0, x)``, is the customer's new balance and the invoice's ``ending_balance``. A credit
larger than the invoice leaves the rest for later invoices; a debit is added to the
amount due; an invoice with a negative total (a downgrade's prorations) adds its credit
to the balance. The docs name no other transaction type for that last case, so the
emulator records it as ``applied_to_invoice`` too (with a negative amount). Called with
``store.lock`` held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import Emulator

KIND = "customer_balance_transaction"


def apply_at_finalization(app: Emulator, invoice: dict, now: int) -> None:
    """Set ``starting_balance``, ``amount_due`` / ``amount_remaining`` and
    ``ending_balance``; move the customer's ``balance``; record the transaction."""
    store = app.store
    customer = store.get("customer", invoice["customer"])
    start = int(customer.get("balance", 0)) if customer else 0
    x = int(invoice["amount_due"]) + start
    end = min(0, x)
    invoice.update(
        starting_balance=start,
        ending_balance=end,
        amount_due=max(0, x),
        amount_remaining=max(0, x),
    )
    if customer is None or end == start:
        return
    customer["balance"] = end
    txn = {
        "id": store.new_id(KIND),
        "object": KIND,
        "amount": end - start,
        "checkout_session": None,
        "created": now,
        "credit_note": None,
        "currency": invoice["currency"],
        "customer": customer["id"],
        "customer_account": None,
        "description": None,
        "ending_balance": end,
        "invoice": invoice["id"],
        "livemode": False,
        "metadata": {},
        "type": "applied_to_invoice",
    }
    store.add(KIND, txn)


def show_in_preview(app: Emulator, invoice: dict, customer_id: str) -> None:
    """A preview (``create_preview``; ``invoice`` is the answer's copy) is not finalized:
    ``starting_balance`` is the customer's balance now, ``ending_balance`` null, and the
    amount due what finalization would leave; nothing moves."""
    customer = app.store.get("customer", customer_id)
    start = int(customer.get("balance", 0)) if customer else 0
    due = max(0, int(invoice["amount_due"]) + start)
    invoice.update(
        starting_balance=start, ending_balance=None, amount_due=due, amount_remaining=due
    )


def transactions_for(app: Emulator, customer_id: str) -> list[dict]:
    return [t for t in app.store.all(KIND) if t["customer"] == customer_id]
