"""Guards against deleting a mirrored Stripe customer that other apps still need.

Why a registry: deleting the dj-stripe ``Customer`` row of an account with unreported
usage strands that usage (the reporting pass finds no customer to send it to), so the
admin must refuse. But the facts live in ``usage`` (its ledger and reports), the
``Customer`` admin lives in ``billing`` (the only app that may import dj-stripe), and
the layers forbid ``billing`` from importing ``usage``. A ``PROTECT`` foreign key does
not fit either: usage rows point at the ``Account``, which survives when its customer
row is deleted, and ``usage`` may not name a dj-stripe model. So ``billing`` owns this
small registry and asks it before deleting; ``usage`` (which depends on ``billing``)
registers its check when its app is ready. Any later app can add its own guard the same
way without ``billing`` learning about it.

A guard is called with the customers about to be deleted, as ``{customer id: account
id or None}``, and returns one human-readable reason per blocked customer (an empty list
allows the deletion).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

CustomerDeletionGuard = Callable[..., list[str]]

_guards: dict[str, CustomerDeletionGuard] = {}


def customer_deletion_guard_register(*, name: str, guard: CustomerDeletionGuard) -> None:
    """Add (or replace, by ``name``, so a repeated ``ready()`` is harmless) a guard."""
    _guards[name] = guard


def customer_deletion_blockers(*, customers: Iterable) -> list[str]:
    """Why the given mirrored customers (dj-stripe ``Customer`` rows) may not be deleted;
    empty when nothing stands in the way."""
    accounts = {customer.id: customer.subscriber_id for customer in customers}
    if not accounts:
        return []
    reasons: list[str] = []
    for guard in _guards.values():
        reasons.extend(guard(customer_accounts=accounts))
    return reasons
