"""Read-only helpers for staff pages: an account's Stripe customer, plan and period.

Everything here reads the dj-stripe mirror and Meterdesk's own tables; no network.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from djstripe.models import Customer, Price, Subscription

from billing.models import Account, Plan, PlanPrice
from billing.pricing import PriceSpec, price_spec_from_stripe


def _timestamp(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    return datetime.fromtimestamp(int(value), UTC)


def account_stripe_customer(*, account: Account) -> Customer | None:
    """The account's dj-stripe customer (not purged), or None before its first subscription."""
    return (
        Customer.objects.filter(subscriber=account, date_purged__isnull=True)
        .order_by("-created")
        .first()
    )


def subscription_item_rows(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The items of a subscription as Stripe returns it (``items.data``)."""
    items = data.get("items") or {}
    return list(items.get("data") or [])


def item_price_id(item: Mapping[str, Any]) -> str:
    price = item.get("price")
    if isinstance(price, Mapping):
        return str(price.get("id") or "")
    return str(price or "")


def subscription_current_period(
    data: Mapping[str, Any],
) -> tuple[datetime, datetime] | None:
    """The current period of a subscription (dahlia: on its items, else on itself).

    Items of one subscription share the billing interval, so the earliest start and
    the latest end of the items' periods is the subscription's period.
    """
    starts, ends = [], []
    for item in subscription_item_rows(data):
        start = _timestamp(item.get("current_period_start"))
        end = _timestamp(item.get("current_period_end"))
        if start and end:
            starts.append(start)
            ends.append(end)
    if not starts:  # pre-dahlia shape
        start = _timestamp(data.get("current_period_start"))
        end = _timestamp(data.get("current_period_end"))
        return (start, end) if start and end else None
    return min(starts), max(ends)


def plan_for_price_ids(price_ids: Iterable[str]) -> Plan | None:
    """The Meterdesk plan whose current prices include these Stripe prices."""
    ids = [price_id for price_id in price_ids if price_id]
    if not ids:
        return None
    plan_price = PlanPrice.objects.select_related("plan").filter(stripe_price_id__in=ids).first()
    return plan_price.plan if plan_price else None


def subscription_plan(*, subscription: Subscription) -> Plan | None:
    """The plan of a mirrored subscription: by its items' prices, else its metadata."""
    data = subscription.stripe_data or {}
    plan = plan_for_price_ids(item_price_id(item) for item in subscription_item_rows(data))
    if plan is not None:
        return plan
    key = (data.get("metadata") or {}).get("meterdesk_plan")
    return Plan.objects.filter(key=key).first() if key else None


def mirrored_price_spec(*, price_id: str) -> PriceSpec | None:
    """The pricing engine's view of a price from the dj-stripe mirror, or None.

    None when the price is not mirrored, or mirrored without its tiers (dj-stripe
    only has them when the price was fetched with ``expand=["tiers"]``).
    """
    price = Price.objects.filter(id=price_id).first()
    if price is None:
        return None
    data = price.stripe_data or {}
    if data.get("billing_scheme") == "tiered" and not data.get("tiers"):
        return None
    return price_spec_from_stripe(data)
