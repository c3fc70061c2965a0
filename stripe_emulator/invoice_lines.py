"""Invoice lines of a subscription: licensed items (in advance) and metered items (in
arrears, quantity = the meter's aggregation over the period), each rated once by
:mod:`stripe_emulator.rating`. Called with ``store.lock`` held."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from . import rating
from .resources.meter_events import aggregate
from .store import random_token

if TYPE_CHECKING:
    from .app import Emulator


# The emulator's own table of Stripe's currency exponents (it imports nothing from the
# apps): amounts are integers in the minor unit, and a zero-decimal currency has none
# below the major unit ("to charge ¥500, provide an amount value of 500"), a
# three-decimal one has a thousandth. https://docs.stripe.com/currencies
ZERO_DECIMAL = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
SYMBOLS = {"usd": "$", "eur": "\u20ac", "gbp": "\u00a3", "jpy": "\u00a5"}


def exponent(currency: str) -> int:
    code = currency.lower()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def _money(amount: int | Decimal, currency: str) -> str:
    """An amount in minor units in the currency's major unit, with at least the
    currency's decimals and more when a unit price has them: ``$0.001`` (0.1 cent),
    ``\u00a51,500``, ``\u00a54.5``, ``0.00031 KWD`` (0.31 fils)."""
    places = exponent(currency)
    value = Decimal(amount).scaleb(-places)
    shown = max(places, -value.normalize().as_tuple().exponent)
    number = f"{value:,.{shown}f}"
    symbol = SYMBOLS.get(currency.lower())
    return f"{symbol}{number}" if symbol else f"{number} {currency.upper()}"


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
