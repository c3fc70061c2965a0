"""The entitlement decision (issue 16): may this customer use ``quantity`` more of a
meter now? Pure: it reads a :class:`~usage.selectors.entitlement_snapshot.Snapshot`
and the period's usage so far (``{meter id: value}``), both kept warm by
``usage.services.entitlement_state``, and prices with the pricing engine.

Reasons, first match wins:

- ``no_subscription``: no account has the customer, the account is ``canceled``, or it
  has no live subscription (or no period holds ``now``);
- ``suspended``: the account is suspended, or past due beyond its grace deadline
  (``billing.past_due.account_suspension_deadline``) while the beat task has not
  suspended it yet;
- ``unknown_meter``: no active meter has the event name, or the plan has no price on it;
- ``cap_reached``: a hard cap leaves fewer than ``quantity`` units (it wins over
  ``past_due_grace``);
- ``past_due_grace``: past due within the grace period: allowed, with the reason;
- ``ok``.

``remaining`` is the smallest of the hard caps that apply, in units of the meter, or
None when none does (budgets without ``hard_cap`` never deny, they only alert):

- a ``units`` cap: ``limit - used`` (never below 0);
- a ``spend`` cap: ``billing.pricing.units_until``: how many more units of the meter's
  price fit before the period's bill (every price of the subscription: licensed ones
  with their quantity, metered ones with the usage so far) exceeds the limit; exact
  for per-unit, package, graduated and volume prices.

``allowed`` is ``quantity <= remaining``. For a ``last`` meter (seats) ``quantity`` is
the level asked for, not an increment, and ``remaining`` is the highest level that fits:
the units cap itself, or the units that fit from 0 under the spend cap with every other
price as it is. When two prices of the subscription bill the same meter only the first
grows in the spend inversion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from billing.models import Account, Meter
from billing.pricing.budget import bill_amount, units_until
from usage.models import Budget
from usage.selectors.entitlement_snapshot import Cap, MeterFact, Snapshot

OK = "ok"
CAP_REACHED = "cap_reached"
SUSPENDED = "suspended"
PAST_DUE_GRACE = "past_due_grace"
NO_SUBSCRIPTION = "no_subscription"
UNKNOWN_METER = "unknown_meter"
Status = Account.Status


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    remaining: int | None
    resets_at: datetime | None

    def as_dict(self) -> dict:
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "remaining": self.remaining,
            "resets_at": iso(self.resets_at),
        }


def _deny(reason: str, resets_at: datetime | None = None) -> Decision:
    return Decision(False, reason, None, resets_at)


def priced_items(snapshot: Snapshot, usage: Mapping[int, int]) -> list[tuple]:
    """(PriceSpec, quantity) of every price: licensed with its quantity, metered with
    the usage so far."""
    return [
        (
            item.spec,
            item.quantity
            if item.spec.usage_type == "licensed"
            else usage.get(item.meter_id, 0)
            if item.meter_id is not None
            else 0,
        )
        for item in snapshot.items
    ]


def spend_so_far(snapshot: Snapshot, usage: Mapping[int, int]) -> int:
    """The period's bill so far, minor units of the subscription's currency."""
    return bill_amount(items=priced_items(snapshot, usage))


def _item_index(snapshot: Snapshot, meter_id: int) -> int | None:
    for index, item in enumerate(snapshot.items):
        if item.meter_id == meter_id and item.spec.usage_type == "metered":
            return index
    return None


def _cap_remaining(
    cap: Cap, snapshot: Snapshot, usage: Mapping[int, int], meter: MeterFact, index: int
) -> int | None:
    last = meter.aggregation == Meter.Aggregation.LAST
    if cap.kind == Budget.Kind.UNITS:
        if cap.meter_id != meter.id:
            return None
        return cap.limit if last else max(0, cap.limit - usage.get(meter.id, 0))
    items = priced_items(snapshot, usage)
    if last:
        items[index] = (items[index][0], 0)
    return units_until(items=items, index=index, limit=cap.limit)


def remaining_units(
    snapshot: Snapshot, usage: Mapping[int, int], meter: MeterFact, index: int
) -> int | None:
    """The smallest of the applicable hard caps in units of ``meter``, or None."""
    values = [
        value
        for cap in snapshot.caps
        if (value := _cap_remaining(cap, snapshot, usage, meter, index)) is not None
    ]
    return min(values) if values else None


def decide(
    *,
    snapshot: Snapshot | None,
    usage: Mapping[int, int],
    event_name: str,
    quantity: int,
    now: datetime,
) -> Decision:
    """The answer to one check (see the module docstring)."""
    if snapshot is None or snapshot.status == Status.CANCELED:
        return _deny(NO_SUBSCRIPTION)
    past_due = snapshot.status == Status.PAST_DUE
    if snapshot.status == Status.SUSPENDED or (
        past_due and snapshot.grace_until is not None and now >= snapshot.grace_until
    ):
        return _deny(SUSPENDED)
    period = snapshot.current_period(now)
    if period is None:
        return _deny(NO_SUBSCRIPTION)
    meter = snapshot.meters.get(event_name)
    index = _item_index(snapshot, meter.id) if meter is not None and meter.active else None
    if index is None:
        return _deny(UNKNOWN_METER, period[1])
    remaining = remaining_units(snapshot, usage, meter, index)
    if remaining is not None and quantity > remaining:
        return Decision(False, CAP_REACHED, remaining, period[1])
    return Decision(True, PAST_DUE_GRACE if past_due else OK, remaining, period[1])


# -- which hard caps a change of usage reached (the ingest answer) ----------------------
def cap_reached(cap: Cap, snapshot: Snapshot, usage: Mapping[int, int]) -> bool:
    """Whether usage has reached the cap: units at or above the limit, or the bill at
    or above the spend limit (the check then denies a further unit that costs)."""
    if cap.kind == Budget.Kind.UNITS:
        return usage.get(cap.meter_id, 0) >= cap.limit
    return spend_so_far(snapshot, usage) >= cap.limit
