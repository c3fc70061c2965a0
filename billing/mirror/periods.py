"""Billing periods, stepped from the billing-cycle anchor exactly as Stripe does.

Period ``k`` of a subscription is ``[anchor + k*step, anchor + (k+1)*step)``, each edge
computed from the anchor (never chained from the previous edge), so month-end anchors
clamp like Stripe's: Jan 31 -> Feb 28 -> Mar 31. Periods are clamped to the
subscription's start (a first period that began after its anchor edge, or before a
future anchor, starts at the start) and to its end; none exists outside them.

This is the one way Meterdesk computes periods: the subscription state, the usage
reporting's ``PeriodResolver`` and the dashboards all step through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from djstripe.models import Subscription

from billing.mirror.shapes import (
    item_recurring,
    subscription_items,
    timestamp,
)
from billing.models import Account

Period = tuple[datetime, datetime]
_FAR = datetime.max.replace(tzinfo=UTC)


def interval_step(interval: str, count: int) -> relativedelta:
    """One billing interval as a relativedelta (month-end anchors clamp like Stripe's)."""
    count = max(1, int(count or 1))
    return {
        "day": relativedelta(days=count),
        "week": relativedelta(weeks=count),
        "month": relativedelta(months=count),
        "year": relativedelta(years=count),
    }.get(interval, relativedelta(months=count))


@dataclass(frozen=True)
class BillingCycle:
    """When a subscription bills: its anchor and interval, between its start and end."""

    anchor: datetime
    start: datetime
    end: datetime | None = None  # when the subscription ended; None while it lives
    interval: str = "month"
    interval_count: int = 1

    @property
    def step(self) -> relativedelta:
        return interval_step(self.interval, self.interval_count)

    def edge(self, index: int) -> datetime:
        """Where period ``index`` begins before clamping: ``anchor + index*step``."""
        return self.anchor + self.step * index

    def index_at(self, at: datetime) -> int:
        """The ``k`` with ``edge(k) <= at < edge(k+1)`` (ignoring start and end)."""
        average = (self.edge(12) - self.anchor) / 12 or timedelta(days=30)
        k = int((at - self.anchor) / average)
        while at < self.edge(k):
            k -= 1
        while at >= self.edge(k + 1):
            k += 1
        return k

    def period(self, index: int) -> Period | None:
        """Period ``index`` clamped to the subscription's start and end, or None when
        nothing of it lies inside them."""
        start = max(self.edge(index), self.start)
        end = min(self.edge(index + 1), self.end or _FAR)
        return (start, end) if start < end else None

    def period_at(self, at: datetime) -> Period | None:
        """The period holding ``at``, or None before the start or from the end on."""
        if at < self.start or (self.end is not None and at >= self.end):
            return None
        return self.period(self.index_at(at))

    @property
    def first_index(self) -> int:
        return self.index_at(self.start)


def cycle_from_subscription_data(
    data: Mapping[str, Any], *, recurring: Mapping[str, Any] | None = None
) -> BillingCycle | None:
    """The billing cycle of a subscription as Stripe returns it, or None without a
    start. ``recurring`` (the price's ``recurring`` hash) overrides the interval read
    from the first item's embedded price (or the legacy ``plan``)."""
    started = timestamp(data.get("start_date")) or timestamp(data.get("created"))
    if started is None:
        return None
    items = subscription_items(data)
    recurring = recurring or item_recurring(items[0] if items else None) or data.get("plan") or {}
    return BillingCycle(
        anchor=timestamp(data.get("billing_cycle_anchor")) or started,
        start=started,
        end=timestamp(data.get("ended_at")),
        interval=recurring.get("interval") or "month",
        interval_count=int(recurring.get("interval_count") or 1),
    )


def _item_period_holding(data: Mapping[str, Any], at: datetime) -> Period | None:
    for item in subscription_items(data):
        start = timestamp(item.get("current_period_start"))
        end = timestamp(item.get("current_period_end"))
        if start and end and start <= at < end:
            return start, end
    return None


def _subscriptions_data(account: Account) -> list[Mapping[str, Any]]:
    """The account's mirrored subscriptions as Stripe JSON, newest first."""
    return [
        data or {}
        for data in Subscription.objects.filter(customer__subscriber=account)
        .order_by("-created")
        .values_list("stripe_data", flat=True)
    ]


def account_subscription_spans(*, account: Account) -> list[tuple[datetime, datetime | None]]:
    """``(start, ended or None)`` of every mirrored subscription of the account."""
    spans = []
    for data in _subscriptions_data(account):
        started = timestamp(data.get("start_date")) or timestamp(data.get("created"))
        if started is not None:
            spans.append((started, timestamp(data.get("ended_at"))))
    return spans


def account_billing_period(*, account: Account, at: datetime) -> Period | None:
    """The account's Stripe billing period ``(start, end)`` holding ``at``, or None.

    From the mirror of the account's subscriptions (newest first). In API version
    dahlia periods live on subscription items (``current_period_start/end``); an item's
    current period is used when it holds ``at``; earlier or later periods are stepped
    from the subscription's ``billing_cycle_anchor`` by the price's interval, never
    before the subscription started nor after it ended. None when no subscription
    covered ``at``.
    """
    for data in _subscriptions_data(account):
        current = _item_period_holding(data, at)
        if current is not None:
            return current
        cycle = cycle_from_subscription_data(data)
        if cycle is None or not subscription_items(data):
            continue
        period = cycle.period_at(at)
        if period is not None:
            return period
    return None
