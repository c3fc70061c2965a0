"""The plan simulator: an account's own usage replayed under every plan it could move to,
and the staff's catalog-wide "what if we changed this price".

Everything is priced by the pricing engine (:func:`billing.pricing.line_amount`, the
same rounding as an invoice line) from the account's own rollups, read through the one
rollup reader (:func:`usage.selectors.rollups.rollup_values`, so ``sum`` meters sum,
``count`` meters count and ``last`` meters give the period's last value).

A period's cost on a plan is what that period's service costs: each licensed price's fee
for the period (quantity 1, or the account's own quantity when it already pays that
price) plus each metered price rated on the period's usage of its meter. Usage of a
meter a plan has no price for is not billed on it. (Stripe bills the fee in advance and
the usage in arrears on the invoice that closes a period; a period's cost counts both
for the same period.) Prices are today's: the plans' current prices from the dj-stripe
mirror, read once for all plans. Taxes, discounts and credits are not included. Money is
integer minor units in the account's one currency: only plans priced in it are offered
(``billing.services.subscriptions.plans_for_account``), never a conversion.

Query count is constant, whatever the number of plans: the subscription state, the
plans and their prices in the currency (two), the mirrored prices (one), one
:func:`rollup_values` call per closed period and one for the current period, and two
for the projection inputs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from functools import cache, partial
from typing import Any

from django.utils import timezone

from billing.mirror.prices import mirrored_prices_data
from billing.mirror.subscriptions import (
    ItemState,
    SubscriptionState,
    subscription_state_for_account,
    subscription_states_for_accounts,
)
from billing.models import Account, Meter, Plan, PlanPrice
from billing.pricing import PriceSpec, line_amount, price_spec_from_stripe
from billing.services.subscriptions import plans_for_account
from usage.selectors.projection_inputs import ProjectionInputs
from usage.selectors.rollups import rollup_values
from usage.selectors.summary_lines import meter_line

CLOSED_PERIODS = 3
Period = tuple[datetime, datetime]


# -- plans and their prices ---------------------------------------------------------------
@dataclass(frozen=True)
class PricedItem:
    """One price of a plan as the simulator rates it."""

    lookup_key: str
    nickname: str
    spec: PriceSpec
    meter: Meter | None

    @property
    def is_metered(self) -> bool:
        return self.spec.usage_type == "metered"


@dataclass(frozen=True)
class PlanPricing:
    plan: Plan
    currency: str
    items: tuple[PricedItem, ...]

    @property
    def meters(self) -> list[Meter]:
        return [i.meter for i in self.items if i.is_metered and i.meter is not None]


def _spec_of(data: Mapping[str, Any] | None) -> PriceSpec | None:
    """The engine's view of a mirrored price, or None when it cannot be rated (not
    mirrored, or tiered and mirrored without its tiers)."""
    if not data:
        return None
    if data.get("billing_scheme") == "tiered" and not data.get("tiers"):
        return None
    try:
        return price_spec_from_stripe(data)
    except (TypeError, ValueError):
        return None


def plan_pricings(
    *, plans: Iterable[Plan], currencies: Iterable[str]
) -> tuple[dict[tuple[int, str], PlanPricing], dict[tuple[int, str], str]]:
    """``{(plan id, currency): PlanPricing}`` of the plans' current prices in each
    currency (two queries: plan prices, mirrored prices), and ``{(plan id, currency):
    why not}`` for a plan that cannot be rated in it (a price missing from the mirror)."""
    plans = {p.pk: p for p in plans}
    currencies = {c.lower() for c in currencies}
    plan_prices = list(
        PlanPrice.objects.filter(plan_id__in=list(plans), currency__in=currencies)
        .select_related("meter")
        .order_by("plan_id", "id")
    )
    data = mirrored_prices_data(price_ids=[pp.stripe_price_id for pp in plan_prices])
    grouped: dict[tuple[int, str], list[PricedItem]] = defaultdict(list)
    unavailable: dict[tuple[int, str], str] = {}
    for pp in plan_prices:
        key = (pp.plan_id, pp.currency)
        spec = _spec_of(data.get(pp.stripe_price_id)) if pp.stripe_price_id else None
        if spec is None or spec.currency != pp.currency:
            unavailable[key] = f"price {pp.lookup_key} is not in the Stripe mirror"
            continue
        grouped[key].append(
            PricedItem(
                lookup_key=pp.lookup_key,
                nickname=pp.nickname or spec.name,
                spec=spec,
                meter=pp.meter,
            )
        )
    pricings = {
        key: PlanPricing(plan=plans[key[0]], currency=key[1], items=tuple(items))
        for key, items in grouped.items()
        if key not in unavailable
    }
    return pricings, unavailable


# -- costs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CostLine:
    label: str
    kind: str  # "licensed" | "metered"
    quantity: int
    amount: int  # minor units


@dataclass(frozen=True)
class PeriodCost:
    start: datetime
    end: datetime
    lines: tuple[CostLine, ...]

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


@dataclass(frozen=True)
class ProjectedCost:
    """The current period's cost at the projected usage: low, expected, high (80% range
    of the projection, each meter through :func:`usage.projection_cost.project_cost`)."""

    start: datetime
    end: datetime
    low: int
    expected: int
    high: int


def _quantity(item: PricedItem | ItemState, usage: Mapping[int, int], owned: Mapping[str, int]):
    if item.spec.usage_type == "metered":
        return usage.get(item.meter.pk, 0) if item.meter is not None else 0
    return owned.get(item.spec.id, 1)


def _label(item: PricedItem | ItemState) -> str:
    return item.nickname or item.spec.name


def period_cost(
    *,
    items: Sequence[PricedItem | ItemState],
    usage: Mapping[int, int],
    period: Period,
    owned: Mapping[str, int] | None = None,
) -> PeriodCost:
    """One period's cost under ``items``: licensed fees (``owned`` quantities by price id,
    else 1) plus metered prices on ``usage`` (``{meter id: value}``); each line rounded
    once by the engine."""
    owned = owned or {}
    lines = []
    for item in items:
        quantity = _quantity(item, usage, owned)
        lines.append(
            CostLine(
                label=_label(item),
                kind=item.spec.usage_type,
                quantity=quantity,
                amount=line_amount(price=item.spec, quantity=quantity),
            )
        )
    return PeriodCost(start=period[0], end=period[1], lines=tuple(lines))


def _projected_cost(
    *,
    items: Sequence[PricedItem | ItemState],
    usage: Mapping[int, int],
    projector,
    period: Period,
    owned: Mapping[str, int],
) -> ProjectedCost:
    low = expected = high = 0
    for item in items:
        if item.spec.usage_type == "metered" and item.meter is not None:
            state_item = ItemState(
                item_id="",
                price_id=item.spec.id,
                nickname=_label(item),
                spec=item.spec,
                meter=item.meter,
                quantity=0,
                included_units=item.spec.included_units,
            )
            line = meter_line(
                item=state_item, usage=usage.get(item.meter.pk, 0), projector=projector(item.meter)
            )
            costs = line.projected_cost
        else:
            fee = line_amount(price=item.spec, quantity=_quantity(item, usage, owned))
            costs = (fee, fee, fee)
        low, expected, high = low + costs[0], expected + costs[1], high + costs[2]
    return ProjectedCost(start=period[0], end=period[1], low=low, expected=expected, high=high)


# -- the simulation of one account ----------------------------------------------------------
@dataclass(frozen=True)
class PlanSimulation:
    """One plan's costs over the account's periods and the differences to what the
    account pays now (positive: dearer, negative: cheaper)."""

    plan: Plan | None  # None: the account's own subscription
    is_current: bool
    closed: tuple[PeriodCost, ...]  # newest first, as Simulation.closed_periods
    projection: ProjectedCost | None
    differences: tuple[int, ...] = ()
    projection_difference: int | None = None

    @property
    def name(self) -> str:
        return self.plan.name if self.plan is not None else "Your subscription"

    @property
    def closed_total(self) -> int:
        return sum(cost.total for cost in self.closed)

    @property
    def closed_difference(self) -> int:
        return sum(self.differences)


@dataclass(frozen=True)
class Simulation:
    account: Account
    currency: str
    now: datetime
    current_plan: Plan | None
    closed_periods: tuple[Period, ...]  # newest first
    current_period: Period | None
    meters: tuple[Meter, ...]
    usage: Mapping[Period, Mapping[int, int]]  # {period: {meter id: value}}; current: so far
    actual: PlanSimulation  # the account's own subscription, at the prices it pays
    plans: tuple[PlanSimulation, ...]
    unavailable: tuple[tuple[Plan, str], ...] = field(default=())

    @property
    def alternatives(self) -> tuple[PlanSimulation, ...]:
        return tuple(p for p in self.plans if not p.is_current)

    def cheapest(self) -> PlanSimulation | None:
        """The plan that would have cost least over the closed periods (None without any)."""
        if not self.closed_periods or not self.plans:
            return None
        return min(self.plans, key=lambda p: (p.closed_total, not p.is_current))


def _current_plan(state: SubscriptionState, pricings: Mapping[int, PlanPricing]) -> Plan | None:
    if state.plan is not None:
        return state.plan
    own = {item.price_id for item in state.items}
    for pricing in pricings.values():
        if own & {item.spec.id for item in pricing.items}:
            return pricing.plan
    return None


def _usage(
    *, account_id: int, periods: Sequence[Period], meters: Mapping[int, Meter]
) -> dict[Period, dict[int, int]]:
    usage = {}
    for start, end in periods:
        values = rollup_values(ranges={account_id: (start, end)}, meters=meters.values())
        usage[(start, end)] = {
            meter_id: buckets[0].value if buckets else 0
            for (_, meter_id), buckets in values.items()
        }
    return usage


def plan_simulation(
    *, account: Account, now: datetime | None = None, closed: int = CLOSED_PERIODS
) -> Simulation | None:
    """The account's last ``closed`` closed periods and the current period's projection
    on every plan it could move to (and its current plan), or None without a live
    subscription."""
    now = now or timezone.now()
    state = subscription_state_for_account(account=account)
    if state is None:
        return None
    currency = state.currency.lower()
    candidates = {p.pk: p for p in plans_for_account(account=account)}
    if state.plan is not None:
        candidates.setdefault(state.plan.pk, state.plan)
    pricings_by_key, unavailable_by_key = plan_pricings(
        plans=candidates.values(), currencies=[currency]
    )
    pricings = {plan_id: p for (plan_id, _), p in pricings_by_key.items()}
    current_plan = _current_plan(state, pricings)

    current = state.period_or_none(0)
    if current is not None and current[1] <= now:  # the mirror has not heard of the renewal
        current = None
    closed_periods = []
    for offset in range(-1, -closed - 1, -1):
        period = state.period_or_none(offset)
        if period is None:
            break
        if period[1] <= now:
            closed_periods.append(period)

    meters = {m.pk: m for m in (i.meter for i in state.metered_items)}
    for pricing in pricings.values():
        meters.update((m.pk, m) for m in pricing.meters)
    measured = list(closed_periods)
    so_far = (current[0], min(now, current[1])) if current is not None else None
    if so_far is not None and so_far[0] < so_far[1]:
        measured.append(so_far)
    usage = _usage(account_id=account.pk, periods=measured, meters=meters)
    if so_far is not None:
        usage.setdefault(so_far, {})
        usage[current] = usage.pop(so_far)

    projector = None
    if current is not None:
        inputs = ProjectionInputs(periods={account.pk: current}, meters=meters, now=now)

        @cache
        def projection(meter_id: int):
            return inputs.projection(account_id=account.pk, meter=meters[meter_id])

        def projector(meter: Meter):
            return partial(projection, meter.pk)

    owned = {item.price_id: item.quantity for item in state.licensed_items}

    def simulate(items, plan: Plan | None, is_current: bool) -> PlanSimulation:
        costs = tuple(
            period_cost(items=items, usage=usage[period], period=period, owned=owned)
            for period in closed_periods
        )
        projected = (
            _projected_cost(
                items=items,
                usage=usage[current],
                projector=projector,
                period=current,
                owned=owned,
            )
            if current is not None
            else None
        )
        return PlanSimulation(plan=plan, is_current=is_current, closed=costs, projection=projected)

    actual = simulate(state.items, current_plan, True)
    plans = []
    for plan in sorted(candidates.values(), key=lambda p: (p.position, p.name)):
        if plan.pk not in pricings:
            continue
        sim = simulate(pricings[plan.pk].items, plan, plan == current_plan)
        plans.append(
            replace(
                sim,
                differences=tuple(
                    cost.total - base.total
                    for cost, base in zip(sim.closed, actual.closed, strict=True)
                ),
                projection_difference=(
                    sim.projection.expected - actual.projection.expected
                    if sim.projection is not None and actual.projection is not None
                    else None
                ),
            )
        )
    unavailable = tuple(
        (candidates[plan_id], why) for (plan_id, _), why in sorted(unavailable_by_key.items())
    )
    return Simulation(
        account=account,
        currency=currency,
        now=now,
        current_plan=current_plan,
        closed_periods=tuple(closed_periods),
        current_period=current,
        meters=tuple(sorted(meters.values(), key=lambda m: m.event_name)),
        usage=usage,
        actual=actual,
        plans=tuple(plans),
        unavailable=unavailable,
    )


# -- staff: what if we changed this price ---------------------------------------------------
class WhatIfError(ValueError):
    """The change cannot be priced (unknown lookup key, amounts the engine refuses)."""


@dataclass(frozen=True)
class WhatIfRow:
    account: Account
    currency: str
    period: Period
    now_total: int
    changed_total: int
    affected: bool  # billed with the changed price (else the change does not touch it)

    @property
    def difference(self) -> int:
        return self.changed_total - self.now_total


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    accounts: int
    now_total: int
    changed_total: int

    @property
    def difference(self) -> int:
        return self.changed_total - self.now_total


@dataclass(frozen=True)
class WhatIf:
    plan_price: PlanPrice
    old_spec: PriceSpec
    new_spec: PriceSpec
    rows: tuple[WhatIfRow, ...]
    totals: tuple[CurrencyTotal, ...]  # one per currency, never summed across them
    skipped: tuple[tuple[Account, str], ...] = ()


def _decimal_json(text: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise WhatIfError(f"tiers are not valid JSON: {exc.msg} (line {exc.lineno})") from None


def changed_price_spec(
    *,
    old: PriceSpec,
    unit_amount_decimal: Decimal | None = None,
    tiers: str | list | None = None,
    tiers_mode: str | None = None,
) -> PriceSpec:
    """``old`` with new amounts: a per-unit amount, or a tier table (Stripe's tier JSON:
    ``[{"up_to": 1000, "unit_amount_decimal": "0.5", "flat_amount": 100}, ...,
    {"up_to": "inf", ...}]``), read by the engine's own Stripe parser so it is checked
    the way Stripe checks a price. Everything else (currency, meter, interval, usage
    type) stays the price's."""
    if (unit_amount_decimal is None) == (tiers is None):
        raise WhatIfError("give either a new unit amount or new tiers")
    data: dict[str, Any] = {
        "id": old.id,
        "currency": old.currency,
        "nickname": old.nickname,
        "lookup_key": old.lookup_key,
        "recurring": {
            "interval": old.interval,
            "interval_count": old.interval_count,
            "usage_type": old.usage_type,
            "meter": old.meter,
        },
    }
    if unit_amount_decimal is not None:
        if old.transform_divide_by is not None:
            data["transform_quantity"] = {
                "divide_by": old.transform_divide_by,
                "round": old.transform_round,
            }
        data.update(billing_scheme="per_unit", unit_amount_decimal=unit_amount_decimal)
    else:
        table = _decimal_json(tiers) if isinstance(tiers, str) else tiers
        if not isinstance(table, list) or not table:
            raise WhatIfError("tiers must be a JSON list of tiers")
        data.update(
            billing_scheme="tiered",
            tiers_mode=tiers_mode or old.tiers_mode or "graduated",
            tiers=table,
        )
    try:
        return price_spec_from_stripe(data)
    except (TypeError, ValueError) as exc:
        raise WhatIfError(str(exc)) from None


def price_what_if(
    *,
    lookup_key: str,
    unit_amount_decimal: Decimal | None = None,
    tiers: str | list | None = None,
    tiers_mode: str | None = None,
    now: datetime | None = None,
    chunk: int = 200,
) -> WhatIf:
    """Every account on the plan that has the price ``lookup_key``: its last closed
    period's cost on the plan's prices today, and with this price's new amounts. Accounts
    billed in another currency than the price's are listed unchanged (they pay the plan's
    price in their currency). Totals per currency. Constant queries per ``chunk`` of
    accounts (SQLite's expression depth bounds a rollup read's OR-ed ranges)."""
    now = now or timezone.now()
    plan_price = (
        PlanPrice.objects.select_related("plan", "meter").filter(lookup_key=lookup_key).first()
    )
    if plan_price is None:
        raise WhatIfError(f"no price with lookup key {lookup_key!r}")
    plan = plan_price.plan
    old = _spec_of(
        mirrored_prices_data(price_ids=[plan_price.stripe_price_id]).get(plan_price.stripe_price_id)
    )
    if old is None:
        raise WhatIfError(f"price {lookup_key} is not in the Stripe mirror")
    new = changed_price_spec(
        old=old, unit_amount_decimal=unit_amount_decimal, tiers=tiers, tiers_mode=tiers_mode
    )

    plan_price_ids = set(
        PlanPrice.objects.filter(plan=plan)
        .exclude(stripe_price_id="")
        .values_list("stripe_price_id", flat=True)
    )

    def is_on_plan(state: SubscriptionState) -> bool:
        # The plan the subscription was made for; without that metadata, its prices.
        if state.plan is not None:
            return state.plan.pk == plan.pk
        return bool(plan_price_ids & {item.price_id for item in state.items})

    account_ids = list(Account.objects.order_by("pk").values_list("pk", flat=True))
    rows: list[WhatIfRow] = []
    skipped: list[tuple[Account, str]] = []
    for index in range(0, len(account_ids), chunk):
        states = subscription_states_for_accounts(account_ids=account_ids[index : index + chunk])
        on_plan = {a: s for a, s in states.items() if is_on_plan(s)}
        if not on_plan:
            continue
        accounts = Account.objects.in_bulk(list(on_plan))
        currencies = {s.currency.lower() for s in on_plan.values()}
        pricings, unavailable = plan_pricings(plans=[plan], currencies=currencies)
        periods: dict[int, Period] = {}
        for account_id, state in on_plan.items():
            currency = state.currency.lower()
            period = state.period_or_none(-1)
            if (plan.pk, currency) not in pricings:
                why = unavailable.get((plan.pk, currency), f"{plan} has no prices in {currency}")
                skipped.append((accounts[account_id], why))
            elif period is None or period[1] > now:
                skipped.append((accounts[account_id], "no closed period yet"))
            else:
                periods[account_id] = period
        meters = {
            m.pk: m
            for c in currencies
            if (plan.pk, c) in pricings
            for m in pricings[(plan.pk, c)].meters
        }
        values = rollup_values(ranges=periods, meters=meters.values())
        for account_id, period in periods.items():
            state = on_plan[account_id]
            currency = state.currency.lower()
            items = pricings[(plan.pk, currency)].items
            changed = tuple(
                replace(item, spec=new) if item.lookup_key == lookup_key else item for item in items
            )
            usage = {
                meter_id: buckets[0].value
                for (a, meter_id), buckets in values.items()
                if a == account_id and buckets
            }
            owned = {item.price_id: item.quantity for item in state.licensed_items}
            before = period_cost(items=items, usage=usage, period=period, owned=owned)
            after = period_cost(items=changed, usage=usage, period=period, owned=owned)
            rows.append(
                WhatIfRow(
                    account=accounts[account_id],
                    currency=currency,
                    period=period,
                    now_total=before.total,
                    changed_total=after.total,
                    affected=currency == plan_price.currency,
                )
            )
    rows.sort(key=lambda r: (r.currency, r.account.name, r.account.pk))
    totals = []
    for currency in sorted({r.currency for r in rows}):
        mine = [r for r in rows if r.currency == currency]
        totals.append(
            CurrencyTotal(
                currency=currency,
                accounts=len(mine),
                now_total=sum(r.now_total for r in mine),
                changed_total=sum(r.changed_total for r in mine),
            )
        )
    return WhatIf(
        plan_price=plan_price,
        old_spec=old,
        new_spec=new,
        rows=tuple(rows),
        totals=tuple(totals),
        skipped=tuple(skipped),
    )
