"""Prorations of a subscription change, Stripe's way.

- "If a customer upgrades from a 10 USD monthly plan to a 20 USD option halfway through
  the billing period, the customer is billed an additional 5 USD": a credit for the
  unused time on the old price and a charge for the remaining time on the new one
  (https://docs.stripe.com/billing/subscriptions/prorations).
- "Stripe calculates proration down to the second based on the starting timestamp of the
  billing period and the timestamp of the proration's triggering event"
  (https://docs.stripe.com/billing/scripts/prorations): the fraction is
  ``(period end - proration date) / (period end - period start)`` in seconds.
- "Prorations are created only for licensed (per-seat) subscriptions because they're
  billed at the start of each billing period" (https://stripe.com/docs/billing/
  subscriptions/prorations): metered items bill in arrears and are never prorated.
- ``proration_date``: "If set, the proration will be calculated as though the
  subscription was updated at the given time. This can be used to apply exactly the
  same proration that was previewed with the create preview endpoint"
  (https://docs.stripe.com/api/subscriptions/update).

Each proration line is rated at its full-period amount (:mod:`stripe_emulator.rating`,
exact), times the fraction, and rounded once, half up. A credit is the negative of the
same rounding. Called with ``store.lock`` held.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from . import invoice_lines, rating

if TYPE_CHECKING:
    from .app import Emulator


def licensed_state(app: Emulator, items: list[dict]) -> dict:
    """``{key: item}`` of the licensed items (key: the item id, or a placeholder for an
    item that does not exist yet)."""
    state = {}
    for index, item in enumerate(items):
        price = app.store.get("price", item["price"])
        if price["recurring"]["usage_type"] == "licensed":
            state[item["id"] or f"new-{index}"] = item
    return state


def remaining(start: int, end: int, at: int) -> Decimal:
    """The part of the period ``[start, end)`` left at ``at``, to the second."""
    return Decimal(end - at) / Decimal(end - start)


def _line(app: Emulator, sub: dict, item: dict, at: int, end: int, fraction, *, credit: bool):
    price = app.store.get("price", item["price"])
    product = app.store.get("product", price["product"]) or {"name": price["product"]}
    full = rating.line_amount(price, item["quantity"])
    amount = rating.to_minor_units(full * fraction)
    line = invoice_lines.make_line(app, sub, item, item["quantity"], at, end)
    line["amount"] = line["subtotal"] = -amount if credit else amount
    day = datetime.fromtimestamp(at, UTC).strftime("%d %b %Y")
    what = "Unused" if credit else "Remaining"
    line["description"] = f"{what} time on {item['quantity']} \u00d7 {product['name']} after {day}"
    line["parent"]["subscription_item_details"]["proration"] = True
    return line


def _changed(item: dict, other: dict | None) -> bool:
    return other is None or (item["price"], item["quantity"]) != (other["price"], other["quantity"])


def proration_lines(
    app: Emulator, sub: dict, before: dict, after: dict, *, start: int, end: int, at: int
) -> list[dict]:
    """Credits for licensed items removed or changed (price or quantity), charges for
    those added or changed, for the rest of the period ``[at, end)``."""
    fraction = remaining(start, end, at)
    lines = []
    for key, old in before.items():
        if old["quantity"] and _changed(old, after.get(key)):
            lines.append(_line(app, sub, old, at, end, fraction, credit=True))
    for key, new in after.items():
        if new["quantity"] and _changed(new, before.get(key)):
            lines.append(_line(app, sub, new, at, end, fraction, credit=False))
    return lines
