"""Pure parsing of Stripe-shaped JSON (the mirror's ``stripe_data`` and live API
responses alike): timestamps, the price of an item or invoice line, subscription items
and periods. The one place each of these is read; no database."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def timestamp(value: Any) -> datetime | None:
    """A Unix timestamp as an aware UTC datetime; None for a missing or empty value."""
    if value in (None, "", 0):
        return None
    return datetime.fromtimestamp(int(value), UTC)


def object_id(value: Any) -> str:
    """The id of an expandable field: the id itself, or the expanded object's ``id``."""
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")


# Invoice lines are read in dahlia's shape only: API 2025-03-31.basil removed the line's
# top-level ``price``, ``subscription_item`` and ``proration`` (now under ``pricing`` and
# ``parent``), and Stripe answers every request in the pinned version.


def line_price_id(line: Mapping[str, Any]) -> str:
    """The price of an invoice line (``pricing.price_details.price``); "" when the line
    has no price (a one-off amount)."""
    details = (line.get("pricing") or {}).get("price_details") or {}
    return object_id(details.get("price"))


def _line_parent_details(line: Mapping[str, Any]) -> Mapping[str, Any]:
    parent = line.get("parent") or {}
    return parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}


def line_subscription_item(line: Mapping[str, Any]) -> str:
    """The subscription item an invoice line bills
    (``parent.subscription_item_details.subscription_item``; "" for none)."""
    details = (line.get("parent") or {}).get("subscription_item_details") or {}
    return object_id(details.get("subscription_item"))


def line_is_proration(line: Mapping[str, Any]) -> bool:
    """Whether the line is a proration (``parent.*_details.proration``)."""
    return bool(_line_parent_details(line).get("proration"))


def subscription_items(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The items of a subscription as Stripe returns it (``items.data``)."""
    return list((data.get("items") or {}).get("data") or [])


def item_price_id(item: Mapping[str, Any]) -> str:
    return object_id(item.get("price"))


def item_recurring(item: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The ``recurring`` hash of an item's embedded price ({} when not embedded)."""
    price = (item or {}).get("price")
    return (price.get("recurring") or {}) if isinstance(price, Mapping) else {}


def subscription_current_period(data: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
    """The current period of a subscription (dahlia: on its items, else on itself).

    Items of one subscription share the billing interval, so the earliest start and
    the latest end of the items' periods is the subscription's period.
    """
    starts, ends = [], []
    for item in subscription_items(data):
        start = timestamp(item.get("current_period_start"))
        end = timestamp(item.get("current_period_end"))
        if start and end:
            starts.append(start)
            ends.append(end)
    if not starts:  # pre-dahlia shape
        start = timestamp(data.get("current_period_start"))
        end = timestamp(data.get("current_period_end"))
        return (start, end) if start and end else None
    return min(starts), max(ends)
