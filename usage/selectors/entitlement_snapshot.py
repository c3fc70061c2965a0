"""What an entitlement check needs to know about an account, read from the database.

A :class:`Snapshot` holds one account's facts that change rarely: its status and grace
deadline, its live subscription's current period, billing cycle and prices (each with
its meter and quantity), every meter by event name, and its hard-capped budgets. It is
built here in a constant number of queries for many accounts
(:func:`snapshots_for_accounts`), serialized to JSON for Redis
(``usage.services.entitlement_state`` caches it there and per process), and read by the
pure decision in :mod:`usage.selectors.entitlements`. Usage itself is not in it: that
changes with every batch and is kept apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from billing.mirror.customers import account_ids_for_customer_ids
from billing.mirror.periods import BillingCycle, Period
from billing.mirror.subscriptions import subscription_states_for_accounts
from billing.models import Account, Meter
from billing.past_due import account_suspension_deadline
from billing.pricing import PriceSpec, Tier
from usage.models import Budget


@dataclass(frozen=True, slots=True)
class MeterFact:
    id: int
    aggregation: str  # sum | count | last
    active: bool


@dataclass(frozen=True, slots=True)
class PriceFact:
    """One subscription item: its price, its meter (metered prices) and quantity
    (licensed prices; metered ones are rated on the usage instead)."""

    spec: PriceSpec
    meter_id: int | None
    quantity: int


@dataclass(frozen=True, slots=True)
class Cap:
    """A budget with ``hard_cap``: ``units`` of one meter, or ``spend`` (minor units of
    the subscription's currency)."""

    kind: str
    meter_id: int | None
    limit: int


@dataclass(frozen=True)
class Snapshot:
    account_id: int
    status: str
    grace_until: datetime | None  # past_due only: when the grace period ends
    currency: str = ""
    period: Period | None = None  # the current period as the mirror last heard it
    cycle: BillingCycle | None = None
    items: tuple[PriceFact, ...] = ()
    meters: dict[str, MeterFact] = field(default_factory=dict)  # by event name
    caps: tuple[Cap, ...] = ()
    token: str = ""  # the Redis version it was built under ("" from the database)

    @property
    def has_caps(self) -> bool:
        return bool(self.caps)

    def current_period(self, now: datetime) -> Period | None:
        """The period holding ``now``: the mirror's, or stepped on from it along the
        billing cycle when the renewal has not been mirrored yet; None without a live
        subscription (or once it ended)."""
        if self.period is None:
            return None
        if now < self.period[1] or self.cycle is None:
            return self.period
        return self.cycle.period_at(now)

    def meter_ids(self) -> set[int]:
        return {m.id for m in self.meters.values()}

    def aggregation_of(self, meter_id: int) -> str:
        for meter in self.meters.values():
            if meter.id == meter_id:
                return meter.aggregation
        return Meter.Aggregation.SUM


# -- from the database -----------------------------------------------------------------
def account_ids_for_customers(customer_ids) -> dict[str, int]:
    return account_ids_for_customer_ids(customer_ids=customer_ids)


def snapshots_for_accounts(*, account_ids, token: str = "") -> dict[int, Snapshot]:
    """Snapshots of the accounts that exist: five queries for the subscriptions (see
    ``subscription_states_for_accounts``), one each for accounts, budgets and meters."""
    ids = list(set(account_ids))
    if not ids:
        return {}
    accounts = Account.objects.filter(pk__in=ids).only("id", "status", "past_due_since")
    states = subscription_states_for_accounts(account_ids=ids)
    meters = {
        name: MeterFact(pk, aggregation, status == Meter.Status.ACTIVE)
        for pk, name, aggregation, status in Meter.objects.values_list(
            "pk", "event_name", "aggregation", "status"
        )
    }
    budgets: dict[int, list[tuple]] = {}
    for row in Budget.objects.filter(account_id__in=ids, hard_cap=True).values_list(
        "account_id", "kind", "meter_id", "limit", "currency"
    ):
        budgets.setdefault(row[0], []).append(row[1:])
    snapshots = {}
    for account in accounts:
        state = states.get(account.pk)
        common = {
            "account_id": account.pk,
            "status": account.status,
            "grace_until": account_suspension_deadline(account=account),
            "meters": meters,
            "token": token,
        }
        if state is None:
            snapshots[account.pk] = Snapshot(**common)
            continue
        caps = tuple(
            Cap(kind, meter_id, limit)
            for kind, meter_id, limit, currency in budgets.get(account.pk, [])
            # A spend budget in another currency than the bill's cannot be compared.
            if kind == Budget.Kind.UNITS or currency == state.currency
        )
        snapshots[account.pk] = Snapshot(
            **common,
            currency=state.currency,
            period=(state.period_start, state.period_end),
            cycle=state.cycle,
            items=tuple(
                PriceFact(i.spec, i.meter.pk if i.meter else None, i.quantity) for i in state.items
            ),
            caps=caps,
        )
    return snapshots


# -- JSON (Redis) ----------------------------------------------------------------------
def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _undec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _untime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


_SPEC_PLAIN = (
    "id", "currency", "billing_scheme", "tiers_mode", "transform_divide_by",
    "transform_round", "usage_type", "interval", "interval_count", "included_units",
    "nickname", "lookup_key", "meter",
)  # fmt: skip


def _spec_json(spec: PriceSpec) -> dict:
    data = {name: getattr(spec, name) for name in _SPEC_PLAIN}
    data["unit_amount_decimal"] = _dec(spec.unit_amount_decimal)
    data["tiers"] = [
        [t.up_to, _dec(t.unit_amount_decimal), _dec(t.flat_amount_decimal)] for t in spec.tiers
    ]
    return data


def _spec_from(data: dict) -> PriceSpec:
    return PriceSpec(
        **{name: data[name] for name in _SPEC_PLAIN},
        unit_amount_decimal=_undec(data["unit_amount_decimal"]),
        tiers=tuple(Tier(up_to, _undec(unit), _undec(flat)) for up_to, unit, flat in data["tiers"]),
    )


def _cycle_json(cycle: BillingCycle | None) -> list | None:
    if cycle is None:
        return None
    times = [_time(cycle.anchor), _time(cycle.start), _time(cycle.end)]
    return [*times, cycle.interval, cycle.interval_count]


def _cycle_from(data: list) -> BillingCycle:
    anchor, start, end, interval, count = data
    return BillingCycle(
        anchor=_untime(anchor), start=_untime(start), end=_untime(end),
        interval=interval, interval_count=count,
    )  # fmt: skip


def snapshot_to_json(snapshot: Snapshot) -> str:
    cycle = snapshot.cycle
    return json.dumps(
        {
            "a": snapshot.account_id,
            "s": snapshot.status,
            "g": _time(snapshot.grace_until),
            "c": snapshot.currency,
            "p": None if snapshot.period is None else [_time(t) for t in snapshot.period],
            "y": _cycle_json(cycle),
            "i": [[_spec_json(i.spec), i.meter_id, i.quantity] for i in snapshot.items],
            "m": {name: [m.id, m.aggregation, m.active] for name, m in snapshot.meters.items()},
            "b": [[c.kind, c.meter_id, c.limit] for c in snapshot.caps],
        },
        separators=(",", ":"),
    )


def snapshot_from_json(text: str | bytes, *, token: str) -> Snapshot:
    data = json.loads(text)
    y = data["y"]
    return Snapshot(
        account_id=data["a"],
        status=data["s"],
        grace_until=_untime(data["g"]),
        currency=data["c"],
        period=None if data["p"] is None else tuple(_untime(t) for t in data["p"]),
        cycle=None if y is None else _cycle_from(y),
        items=tuple(PriceFact(_spec_from(s), m, q) for s, m, q in data["i"]),
        meters={name: MeterFact(*fact) for name, fact in data["m"].items()},
        caps=tuple(Cap(*c) for c in data["b"]),
        token=token,
    )
