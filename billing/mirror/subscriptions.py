"""Reads: an account's subscription as the rest of Meterdesk needs it.

From the dj-stripe mirror only (no network): the current period (in API version
dahlia it lives on the subscription items), the billing cycle every other period is
stepped from, each item with its price as a pricing-engine ``PriceSpec``, its meter and
its included allowance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django.db import connections, router
from djstripe.models import Subscription

from billing.mirror.periods import BillingCycle, Period, cycle_from_subscription_data
from billing.mirror.prices import (
    mirrored_prices_data,
    plan_for_price_ids,
    price_uses,
)
from billing.mirror.shapes import (
    item_price_id,
    subscription_current_period,
    subscription_items,
)
from billing.models import Account, Meter, Plan
from billing.pricing import PriceSpec, included_units, price_spec_from_stripe

LIVE_STATUSES = ("active", "past_due", "trialing", "incomplete", "unpaid")


class PeriodNotFound(LookupError):
    """The subscription has no period at that offset (before it started, or after it ended)."""


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
    period_start: datetime  # the current period, as the mirror last heard it
    period_end: datetime
    currency: str
    interval: str
    interval_count: int
    plan: Plan | None
    items: tuple[ItemState, ...]
    synced_at: datetime  # when the mirror last heard from Stripe about it
    start_date: datetime  # when the subscription started
    billing_cycle_anchor: datetime
    ended_at: datetime | None = None

    @property
    def metered_items(self) -> tuple[ItemState, ...]:
        return tuple(i for i in self.items if i.is_metered and i.meter is not None)

    @property
    def licensed_items(self) -> tuple[ItemState, ...]:
        return tuple(i for i in self.items if not i.is_metered)

    @property
    def cycle(self) -> BillingCycle:
        return BillingCycle(
            anchor=self.billing_cycle_anchor,
            start=self.start_date,
            end=self.ended_at,
            interval=self.interval,
            interval_count=self.interval_count,
        )

    def period_or_none(self, offset: int = 0) -> Period | None:
        """The current period (0), an earlier (-1, -2, ...) or a later one, each stepped
        from the billing-cycle anchor as Stripe does; None when it does not exist."""
        if offset == 0:
            return self.period_start, self.period_end
        cycle = self.cycle
        return cycle.period(cycle.index_at(self.period_start) + offset)

    def period(self, offset: int = 0) -> Period:
        """Like ``period_or_none`` but raises ``PeriodNotFound`` for a missing period."""
        period = self.period_or_none(offset)
        if period is None:
            raise PeriodNotFound(f"no billing period at offset {offset}")
        return period

    def has_period(self, offset: int) -> bool:
        return self.period_or_none(offset) is not None

    def past_periods(self, *, limit: int | None = None) -> list[tuple[int, Period]]:
        """``(offset, period)`` from the current period (0) back to the first one the
        subscription had (at most ``limit`` of them), newest first."""
        periods = []
        offset = 0
        while limit is None or len(periods) < limit:
            period = self.period_or_none(offset)
            if period is None:
                break
            periods.append((offset, period))
            offset -= 1
        return periods


class _SubscriptionRow(NamedTuple):
    account_id: int
    id: str
    djstripe_updated: datetime
    stripe_data: dict  # on PostgreSQL narrowed to the keys a state reads
    narrowed: bool


# The keys of a subscription's JSON that ``subscription_states_for_accounts`` reads (and
# only those): the parsers in ``billing.mirror.shapes`` / ``periods`` read it with
# ``.get``, so a key left out or null (``jsonb_strip_nulls``) reads the same. An item's
# embedded price is narrowed to its id and ``recurring``; a price that is not mirrored is
# read whole afterwards (``_embedded_prices``). The JSON is detoasted once per row (the
# LATERAL ... OFFSET 0), not once per key; the status is filtered on the narrowed JSON,
# so the customer -> subscription index decides the plan. ~600 bytes a row instead of
# the whole object (6 kB with every item's price and plan).
_NARROW_SQL = """
SELECT c.subscriber_id, s.id, s.djstripe_updated, jsonb_strip_nulls(jsonb_build_object(
    'status', x.d->'status',
    'cancel_at_period_end', x.d->'cancel_at_period_end',
    'currency', x.d->'currency',
    'metadata', jsonb_build_object('meterdesk_plan', x.d->'metadata'->'meterdesk_plan'),
    'start_date', x.d->'start_date',
    'created', x.d->'created',
    'billing_cycle_anchor', x.d->'billing_cycle_anchor',
    'ended_at', x.d->'ended_at',
    'current_period_start', x.d->'current_period_start',
    'current_period_end', x.d->'current_period_end',
    'plan', x.d->'plan',
    'items', jsonb_build_object('data', (
        SELECT jsonb_agg(jsonb_build_object(
            'id', i->'id',
            'quantity', i->'quantity',
            'current_period_start', i->'current_period_start',
            'current_period_end', i->'current_period_end',
            'price', CASE WHEN jsonb_typeof(i->'price') = 'object'
                          THEN jsonb_build_object('id', i->'price'->'id',
                                                  'recurring', i->'price'->'recurring')
                          ELSE i->'price' END
        ) ORDER BY n)
        FROM jsonb_array_elements(CASE WHEN jsonb_typeof(x.d->'items'->'data') = 'array'
                                       THEN x.d->'items'->'data' END)
             WITH ORDINALITY AS e(i, n)))
))
FROM djstripe_customer c
JOIN djstripe_subscription s ON s.customer_id = c.id
CROSS JOIN LATERAL (SELECT s.stripe_data || jsonb_build_object() AS d OFFSET 0) x
WHERE c.subscriber_id = ANY(%s::bigint[]) AND x.d->>'status' = ANY(%s::text[])
ORDER BY s.created DESC
"""


def _reader():
    """The connection this module's raw SQL reads through: the router's choice for
    ``Subscription`` (the replica on customer pages, when one is set), as the ORM's would be."""
    return connections[router.db_for_read(Subscription)]


def _subscription_rows(*, account_ids) -> list[_SubscriptionRow]:
    """The accounts' mirrored subscriptions, newest first (``created`` descending), in
    one query: on PostgreSQL the live ones only, their JSON narrowed (``_NARROW_SQL``);
    elsewhere every one, whole (the caller filters the status either way)."""
    ids = [int(a) for a in account_ids]
    if _reader().vendor == "postgresql":
        with _reader().cursor() as cursor:
            cursor.execute(
                _NARROW_SQL,
                ["{" + ",".join(map(str, ids)) + "}", "{" + ",".join(LIVE_STATUSES) + "}"],
            )
            # Django has psycopg return jsonb as text (JSONField decodes it with json).
            return [
                _SubscriptionRow(a, sid, updated, json.loads(data), True)
                for a, sid, updated, data in cursor.fetchall()
            ]
    return [
        _SubscriptionRow(a, sid, updated, data or {}, False)
        for a, sid, updated, data in Subscription.objects.filter(customer__subscriber_id__in=ids)
        .order_by("-created")
        .values_list("customer__subscriber_id", "id", "djstripe_updated", "stripe_data")
    ]


def _embedded_prices(raw: dict, *, mirrored: Mapping) -> dict[str, Mapping]:
    """``{price id: the price object embedded in an item}`` for the items whose price is
    embedded, as the subscriptions' JSON has it (the last one read wins). A narrowed row's
    embedded price is only its id and ``recurring``: the whole object is read, in one
    more query, for the prices that are not mirrored (``mirrored`` wins over it anyway)."""
    embedded: dict[str, Mapping] = {}
    wanted: dict[str, list[str]] = {}  # narrowed subscription id -> price ids to read
    for row, items in raw.values():
        for item in items:
            if not isinstance(item.get("price"), dict):
                continue
            price_id = item_price_id(item)
            if not row.narrowed:
                embedded[price_id] = item["price"]
            elif price_id not in mirrored:
                wanted.setdefault(row.id, []).append(price_id)
                embedded[price_id] = item["price"]  # replaced below, keeps the order
    if wanted:
        whole = dict(
            Subscription.objects.filter(id__in=list(wanted)).values_list("id", "stripe_data")
        )
        for subscription_id, price_ids in wanted.items():
            for item in subscription_items(whole.get(subscription_id) or {}):
                price_id = item_price_id(item)
                if price_id in price_ids and isinstance(item.get("price"), dict):
                    embedded[price_id] = item["price"]
    return embedded


def subscription_state_for_account(*, account: Account) -> SubscriptionState | None:
    """The account's live subscription, or None (no subscription yet, or canceled)."""
    return subscription_states_for_accounts(account_ids=[account.pk]).get(account.pk)


def subscription_states_for_accounts(*, account_ids) -> dict[int, SubscriptionState]:
    """Live subscription states of many accounts with a constant number of queries
    (subscriptions, prices, plan prices, meters, plans); each price is parsed once.
    The subscriptions are read narrowed to the keys a state reads
    (:func:`_subscription_rows`)."""
    newest: dict[int, _SubscriptionRow] = {}
    for row in _subscription_rows(account_ids=account_ids):
        if row.stripe_data.get("status") in LIVE_STATUSES:
            newest.setdefault(row.account_id, row)
    raw = {
        account_id: (s, subscription_items(s.stripe_data or {})) for account_id, s in newest.items()
    }
    price_ids = {item_price_id(item) for _, items in raw.values() for item in items}
    mirrored_only = mirrored_prices_data(price_ids=price_ids)
    embedded = _embedded_prices(raw, mirrored=mirrored_only)
    mirrored = {**embedded, **mirrored_only}
    uses = price_uses(price_ids=price_ids, data=mirrored)
    specs = {price_id: price_spec_from_stripe(mirrored[price_id]) for price_id in price_ids}
    allowances = {price_id: included_units(spec) for price_id, spec in specs.items()}
    plan_keys = {
        (s.stripe_data.get("metadata") or {}).get("meterdesk_plan") for s, _ in raw.values()
    }
    plans = {p.key: p for p in Plan.objects.filter(key__in=plan_keys - {None})}
    states = {}
    for account_id, (subscription, raw_items) in raw.items():
        data = subscription.stripe_data
        current = subscription_current_period(data)
        first_price = mirrored.get(item_price_id(raw_items[0])) if raw_items else None
        cycle = cycle_from_subscription_data(data, recurring=(first_price or {}).get("recurring"))
        if not raw_items or current is None or cycle is None:
            continue
        items = tuple(
            ItemState(
                item_id=item["id"],
                price_id=(price_id := item_price_id(item)),
                nickname=uses[price_id].nickname,
                spec=specs[price_id],
                meter=uses[price_id].meter,
                quantity=int(item.get("quantity") or 0),
                included_units=allowances[price_id],
            )
            for item in raw_items
        )
        states[account_id] = SubscriptionState(
            subscription_id=subscription.id,
            status=data.get("status", ""),
            cancel_at_period_end=bool(data.get("cancel_at_period_end")),
            period_start=current[0],
            period_end=current[1],
            currency=data.get("currency") or items[0].spec.currency,
            interval=cycle.interval,
            interval_count=cycle.interval_count,
            plan=plans.get((data.get("metadata") or {}).get("meterdesk_plan")),
            items=items,
            synced_at=subscription.djstripe_updated,
            start_date=cycle.start,
            billing_cycle_anchor=cycle.anchor,
            ended_at=cycle.end,
        )
    return states


@dataclass(frozen=True)
class MirroredSubscription:
    """The account's live subscription as mirrored: ids and Stripe's JSON of it, for
    code that goes on to compare it with a live Stripe answer of the same shape."""

    id: str
    customer_id: str
    data: dict
    mirror_pk: int  # the dj-stripe row's primary key (admin links)

    @property
    def status(self) -> str:
        return self.data.get("status", "")

    @property
    def current_period(self) -> Period | None:
        return subscription_current_period(self.data)

    @property
    def plan(self) -> Plan | None:
        """Its Meterdesk plan: by its items' prices, else its ``meterdesk_plan`` metadata."""
        plan = plan_for_price_ids(item_price_id(item) for item in subscription_items(self.data))
        if plan is not None:
            return plan
        key = (self.data.get("metadata") or {}).get("meterdesk_plan")
        return Plan.objects.filter(key=key).first() if key else None


def live_subscription_for_account(*, account: Account) -> MirroredSubscription | None:
    """The account's newest live mirrored subscription, or None."""
    subscription = (
        Subscription.objects.filter(
            customer__subscriber=account, stripe_data__status__in=LIVE_STATUSES
        )
        .order_by("-created")
        .first()
    )
    if subscription is None:
        return None
    return MirroredSubscription(
        id=subscription.id,
        customer_id=subscription.customer_id,
        data=dict(subscription.stripe_data or {}),
        mirror_pk=subscription.pk,
    )
