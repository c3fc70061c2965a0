"""Selectors: an account's subscription as the rest of Meterdesk needs it.

Read from the dj-stripe mirror only (no network): the current period (in API version
dahlia it lives on the subscription items), each item with its price as a pricing
engine ``PriceSpec``, its meter and its included allowance.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import F
from djstripe.models import Price, Subscription

from billing.models import Account, Meter, Plan, PlanPrice
from billing.pricing import PriceSpec, included_units, price_spec_from_stripe
from billing.selectors import interval_step

LIVE_STATUSES = ("active", "past_due", "trialing", "incomplete", "unpaid")


@dataclass(frozen=True)
class ItemState:
    item_id: str
    price_id: str
    nickname: str
    spec: PriceSpec
    meter: Meter | None
    quantity: int
    included_units: int

    @property
    def is_metered(self) -> bool:
        return self.spec.usage_type == "metered"


@dataclass(frozen=True)
class SubscriptionState:
    subscription_id: str
    status: str
    cancel_at_period_end: bool
    period_start: datetime
    period_end: datetime
    currency: str
    interval: str
    interval_count: int
    plan: Plan | None
    items: tuple[ItemState, ...]
    synced_at: datetime  # when the mirror last heard from Stripe about it

    @property
    def metered_items(self) -> tuple[ItemState, ...]:
        return tuple(i for i in self.items if i.is_metered and i.meter is not None)

    @property
    def licensed_items(self) -> tuple[ItemState, ...]:
        return tuple(i for i in self.items if not i.is_metered)

    def period(self, offset: int = 0) -> tuple[datetime, datetime]:
        """The current period (0) or an earlier one (-1, -2, ...), same interval."""
        step = interval_step(self.interval, self.interval_count)
        return self.period_start + step * offset, self.period_end + step * offset


def _ts(value: int) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


def subscription_state_for_account(*, account: Account) -> SubscriptionState | None:
    """The account's live subscription, or None (no subscription yet, or canceled)."""
    return subscription_states_for_accounts(account_ids=[account.pk]).get(account.pk)


def subscription_states_for_accounts(*, account_ids) -> dict[int, SubscriptionState]:
    """Live subscription states of many accounts with a constant number of queries
    (subscriptions, prices, plan prices, meters, plans); each price is parsed once."""
    newest: dict[int, Subscription] = {}
    for subscription in (
        Subscription.objects.filter(
            customer__subscriber_id__in=list(account_ids), stripe_data__status__in=LIVE_STATUSES
        )
        .annotate(account_id=F("customer__subscriber_id"))
        .order_by("-created")
    ):
        newest.setdefault(subscription.account_id, subscription)
    raw = {
        account_id: (s, (s.stripe_data.get("items") or {}).get("data") or [])
        for account_id, s in newest.items()
    }
    price_ids = {_price_id(item) for _, items in raw.values() for item in items}
    mirrored = {p.id: p.stripe_data for p in Price.objects.filter(id__in=price_ids)}
    plan_prices = {
        pp.stripe_price_id: pp
        for pp in PlanPrice.objects.filter(stripe_price_id__in=price_ids).select_related("meter")
    }
    meters_by_stripe_id = {m.stripe_id: m for m in Meter.objects.exclude(stripe_id="")}
    plan_keys = {
        (s.stripe_data.get("metadata") or {}).get("meterdesk_plan") for s, _ in raw.values()
    }
    plans = {p.key: p for p in Plan.objects.filter(key__in=plan_keys - {None})}
    specs: dict[str, PriceSpec] = {}
    states = {}
    for account_id, (subscription, raw_items) in raw.items():
        if not raw_items:
            continue
        items = []
        for item in raw_items:
            price_id = _price_id(item)
            price_data = mirrored.get(price_id) or item["price"]
            if price_id not in specs:
                specs[price_id] = price_spec_from_stripe(price_data)
            spec = specs[price_id]
            plan_price = plan_prices.get(price_id)
            meter = (plan_price.meter if plan_price else None) or meters_by_stripe_id.get(
                ((price_data.get("recurring") or {}).get("meter")) or ""
            )
            items.append(
                ItemState(
                    item_id=item["id"],
                    price_id=price_id,
                    nickname=(plan_price.nickname if plan_price else "")
                    or price_data.get("nickname")
                    or price_id,
                    spec=spec,
                    meter=meter,
                    quantity=int(item.get("quantity") or 0),
                    included_units=included_units(spec),
                )
            )
        data = subscription.stripe_data
        first_price = mirrored.get(_price_id(raw_items[0])) or raw_items[0]["price"]
        recurring = first_price.get("recurring") or {}
        states[account_id] = SubscriptionState(
            subscription_id=subscription.id,
            status=data.get("status", ""),
            cancel_at_period_end=bool(data.get("cancel_at_period_end")),
            period_start=_ts(min(i["current_period_start"] for i in raw_items)),
            period_end=_ts(max(i["current_period_end"] for i in raw_items)),
            currency=data.get("currency") or items[0].spec.currency,
            interval=recurring.get("interval", "month"),
            interval_count=int(recurring.get("interval_count") or 1),
            plan=plans.get((data.get("metadata") or {}).get("meterdesk_plan")),
            items=tuple(items),
            synced_at=subscription.djstripe_updated,
        )
    return states


def _price_id(item: dict) -> str:
    price = item.get("price")
    return price["id"] if isinstance(price, dict) else price
