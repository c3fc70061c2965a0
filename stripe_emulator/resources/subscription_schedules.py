"""Subscription schedules, as far as a plan change at the end of the period needs them.

Stripe's way to change a subscription's prices from the next period on is a schedule
with a second phase starting at the current period's end
(https://docs.stripe.com/billing/subscriptions/subscription-schedules, "Upgrading or
downgrading a subscription"): create one ``from_subscription`` ("a subscription schedule
will be created using the subscription's item(s) ... When using this parameter, other
parameters (such as phase values) cannot be set",
https://docs.stripe.com/api/subscription_schedules/create), then update its ``phases``:
the current phase (its ``start_date`` unchanged) ending at the period end, and the next
phase's ``items``.
"When a phase starts, Stripe updates the subscription based on the next phase's
attributes", and its ``metadata`` "will update the underlying subscription's metadata
when the phase is entered". After the last phase the schedule completes by its
``end_behavior``: ``release`` leaves the subscription running on its own (the only
end behaviour emulated).

Emulated: ``from_subscription``; phases with ``items`` (``price``, ``quantity``,
``metadata``), ``start_date``, ``end_date`` or ``duration``, ``metadata``,
``proration_behavior``; ``end_behavior``; ``metadata``; retrieve, update, release,
cancel. A phase must start and end on a billing period boundary of the subscription
(that is all a period-end change needs); anything else is refused naming the parameter.
The phase change happens as the period closes, after the closed period's usage is rated
on the old items and before the new period's licensed fees: the renewal invoice bills
the new phase's prices in advance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import invoicing
from ..errors import invalid
from ..forms import as_dict, as_int, as_list, merge_metadata, one_of
from ..lists import present
from ..periods import add_interval, period_bounds
from ..routing import Request, route
from .common import get_or_404, show, snapshot
from .subscription_items import add_item, check_price

if TYPE_CHECKING:
    from ..app import Emulator

KIND = "subscription_schedule"
_PHASE_KEYS = {"items", "start_date", "end_date", "duration", "metadata", "proration_behavior"}
_ITEM_KEYS = {"price", "quantity", "metadata"}


def _phase(sub: dict, items: list[dict], start: int, end: int, metadata=None, proration=None):
    return {
        "add_invoice_items": [],
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": None,
        "billing_thresholds": None,
        "collection_method": None,
        "currency": sub["currency"],
        "default_payment_method": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "end_date": end,
        "invoice_settings": None,
        "items": items,
        "metadata": dict(metadata or {}),
        "on_behalf_of": None,
        "proration_behavior": proration or "create_prorations",
        "start_date": start,
        "transfer_data": None,
        "trial_end": None,
    }


def _phase_item(price_id: str, quantity) -> dict:
    return {
        "billing_thresholds": None,
        "discounts": [],
        "metadata": {},
        "plan": price_id,
        "price": price_id,
        "quantity": quantity,
        "tax_rates": [],
    }


def _boundaries(sub: dict, upto: int) -> set[int]:
    """The subscription's period boundaries from its current period to ``upto``."""
    found, index = set(), sub["_cycles"]
    while True:
        start, end = period_bounds(sub["billing_cycle_anchor"], *sub["_interval"], index)
        found.add(start)
        if end > upto:
            found.add(end)
            return found
        index += 1


@route("POST", "/v1/subscription_schedules")
def create(req: Request):
    params = req.params
    sub_id = params.get("from_subscription")
    if not sub_id:
        raise invalid(
            "Only schedules created from_subscription are emulated.", param="from_subscription"
        )
    for key in params:
        if key not in ("from_subscription", "metadata", "expand"):
            raise invalid(
                "You cannot set other parameters when using from_subscription.", param=key
            )
    sub = get_or_404(req, "subscription", sub_id, param="from_subscription")
    if sub["status"] == "canceled":
        raise invalid("You cannot migrate a canceled subscription.", param="from_subscription")
    if sub["schedule"]:
        raise invalid(
            f"You cannot migrate a subscription that is already attached to a schedule: "
            f"{sub['schedule']}.",
            param="from_subscription",
        )
    store = req.store
    now = store.customer_now(sub["customer"])
    start, end = invoicing.current_period(req.app, sub)
    items = [store.get("subscription_item", i) for i in sub["_items"]]
    schedule = {
        "id": store.new_id(KIND, 24),
        "object": KIND,
        "application": None,
        "billing_mode": dict(sub["billing_mode"]),
        "canceled_at": None,
        "completed_at": None,
        "created": now,
        "current_phase": {"start_date": start, "end_date": end},
        "customer": sub["customer"],
        "customer_account": None,
        "default_settings": {
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": "automatic",
            "billing_thresholds": None,
            "collection_method": sub["collection_method"],
            "default_payment_method": sub["default_payment_method"],
            "default_source": None,
            "description": None,
            "invoice_settings": {
                "account_tax_ids": None,
                "days_until_due": None,
                "issuer": {"type": "self"},
            },
            "on_behalf_of": None,
            "transfer_data": None,
        },
        "end_behavior": "release",
        "livemode": False,
        "metadata": merge_metadata({}, params.get("metadata", {})),
        "phases": [
            _phase(
                sub,
                [_phase_item(i["price"], i["quantity"]) for i in items],
                start,
                end,
                sub["metadata"],
            )
        ],
        "released_at": None,
        "released_subscription": None,
        "status": "active",
        "subscription": sub["id"],
        "test_clock": sub["test_clock"],
    }
    store.add(KIND, schedule)
    before = snapshot(req, sub)
    sub["schedule"] = schedule["id"]
    req.emit("subscription_schedule.created", snapshot(req, schedule))
    after = snapshot(req, sub)
    req.emit("customer.subscription.updated", after, {"schedule": before["schedule"]})
    return show(req, schedule)


def _schedule(req: Request) -> dict:
    return get_or_404(req, KIND, req.args["id"], label="subscription schedule")


@route("GET", "/v1/subscription_schedules/{id}")
def retrieve(req: Request):
    return show(req, _schedule(req))


def _read_phases(req: Request, schedule: dict, sub: dict) -> list[dict]:
    raw = as_list(req.params.get("phases"), "phases")
    if not raw:
        raise invalid("A schedule must have at least one phase.", param="phases")
    current_start = schedule["current_phase"]["start_date"]
    phases, previous_end = [], None
    for i, spec in enumerate(raw):
        param = f"phases[{i}]"
        spec = as_dict(spec, param)
        for key in spec:
            if key not in _PHASE_KEYS:
                raise invalid(f"{param}[{key}] is not emulated.", param=f"{param}[{key}]")
        if i == 0:
            start = as_int(spec.get("start_date", current_start), f"{param}[start_date]")
            if start != current_start:
                raise invalid(
                    "You can not modify the start date of the current phase.",
                    param=f"{param}[start_date]",
                )
        else:
            start = previous_end
            if "start_date" in spec and as_int(spec["start_date"], f"{param}[start_date]") != start:
                raise invalid(
                    "Phases must be sequential: a phase starts where the previous one ends.",
                    param=f"{param}[start_date]",
                )
        if "end_date" in spec:
            end = as_int(spec["end_date"], f"{param}[end_date]")
        elif "duration" in spec:
            duration = as_dict(spec["duration"], f"{param}[duration]")
            interval = one_of(
                duration.get("interval"),
                f"{param}[duration][interval]",
                ("day", "week", "month", "year"),
            )
            count = as_int(
                duration.get("interval_count", 1), f"{param}[duration][interval_count]", minimum=1
            )
            end = add_interval(start, interval, count)
        else:
            end = add_interval(start, *sub["_interval"])
        if end <= start:
            raise invalid("A phase must end after it starts.", param=f"{param}[end_date]")
        if end not in _boundaries(sub, end):
            raise invalid(
                "Emulated phases end on a billing period boundary of the subscription.",
                param=f"{param}[end_date]",
            )
        items = []
        for j, item_spec in enumerate(as_list(spec.get("items"), f"{param}[items]")):
            iparam = f"{param}[items][{j}]"
            item_spec = as_dict(item_spec, iparam)
            for key in item_spec:
                if key not in _ITEM_KEYS:
                    raise invalid(f"{iparam}[{key}] is not emulated.", param=f"{iparam}[{key}]")
            price = check_price(req, item_spec.get("price"), f"{iparam}[price]", sub)
            metered = price["recurring"]["usage_type"] == "metered"
            if metered and item_spec.get("quantity") not in (None, ""):
                raise invalid(
                    "Quantity should not be specified where usage_type is `metered`.",
                    param=f"{iparam}[quantity]",
                )
            quantity = (
                None
                if metered
                else as_int(item_spec.get("quantity", 1), f"{iparam}[quantity]", minimum=0)
            )
            items.append(_phase_item(price["id"], quantity))
        if not items:
            raise invalid("Each phase needs at least one item.", param=f"{param}[items]")
        if len({item["price"] for item in items}) != len(items):
            raise invalid(
                "Cannot add multiple subscription items with the same price.",
                param=f"{param}[items]",
            )
        behaviour = spec.get("proration_behavior") or "create_prorations"
        phases.append(_phase(sub, items, start, end, spec.get("metadata"), behaviour))
        previous_end = end
    return phases


@route("POST", "/v1/subscription_schedules/{id}")
def update(req: Request):
    schedule = _schedule(req)
    if schedule["status"] not in ("active", "not_started"):
        raise invalid(f"You cannot update a subscription schedule that is {schedule['status']}.")
    sub = req.store.get("subscription", schedule["subscription"])
    params = req.params
    for key in params:
        if key not in ("phases", "end_behavior", "metadata", "proration_behavior", "expand"):
            raise invalid(f"{key} is not emulated on subscription schedules.", param=key)
    if "phases" in params:
        schedule["phases"] = _read_phases(req, schedule, sub)
        first = schedule["phases"][0]
        schedule["current_phase"] = {
            "start_date": first["start_date"],
            "end_date": first["end_date"],
        }
    if "end_behavior" in params:
        behaviour = one_of(
            params["end_behavior"], "end_behavior", ("cancel", "none", "release", "renew")
        )
        if behaviour != "release":
            raise invalid("Only end_behavior=release is emulated.", param="end_behavior")
        schedule["end_behavior"] = behaviour
    if "metadata" in params:
        schedule["metadata"] = merge_metadata(schedule["metadata"], params["metadata"])
    req.emit("subscription_schedule.updated", snapshot(req, schedule))
    return show(req, schedule)


def _detach(app: Emulator, schedule: dict, status: str, now: int) -> None:
    sub = app.store.get("subscription", schedule["subscription"])
    schedule["status"] = status
    schedule["current_phase"] = None
    if status == "released":
        schedule["released_at"] = now
        schedule["released_subscription"] = schedule["subscription"]
    if sub is not None and sub["schedule"] == schedule["id"]:
        before = present(app.store, sub)
        sub["schedule"] = None
        app.emit(
            "customer.subscription.updated",
            present(app.store, sub),
            {"schedule": before["schedule"]},
        )


@route("POST", "/v1/subscription_schedules/{id}/release")
def release(req: Request):
    schedule = _schedule(req)
    if schedule["status"] not in ("active", "not_started"):
        raise invalid(f"You cannot release a subscription schedule that is {schedule['status']}.")
    _detach(req.app, schedule, "released", req.store.customer_now(schedule["customer"]))
    req.emit("subscription_schedule.released", snapshot(req, schedule))
    return show(req, schedule)


@route("POST", "/v1/subscription_schedules/{id}/cancel")
def cancel(req: Request):
    """ "Cancels a subscription schedule and its associated subscription immediately (if
    the subscription schedule has an active subscription)"
    (https://docs.stripe.com/api/subscription_schedules/cancel)."""
    from .subscriptions import cancel_subscription

    schedule = _schedule(req)
    if schedule["status"] not in ("active", "not_started"):
        raise invalid(f"You cannot cancel a subscription schedule that is {schedule['status']}.")
    now = req.store.customer_now(schedule["customer"])
    sub = req.store.get("subscription", schedule["subscription"])
    schedule["canceled_at"] = now
    _detach(req.app, schedule, "canceled", now)
    if sub is not None and sub["status"] != "canceled":
        cancel_subscription(req.app, sub, now=now)
    req.emit("subscription_schedule.canceled", snapshot(req, schedule))
    return show(req, schedule)


# -- the phase change at a period boundary ----------------------------------------------
def _attached(app: Emulator, sub: dict) -> dict | None:
    schedule = app.store.get(KIND, sub.get("schedule") or "")
    return schedule if schedule and schedule["status"] == "active" else None


def next_phase_items(app: Emulator, sub: dict, boundary: int) -> list[dict] | None:
    """The items (item-shaped dicts) the subscription will have from ``boundary`` when its
    schedule enters a phase then; None when nothing changes."""
    schedule = _attached(app, sub)
    if schedule is None:
        return None
    for phase in schedule["phases"][1:]:
        if phase["start_date"] == boundary:
            return [
                {"id": None, "price": i["price"], "quantity": i["quantity"], "metadata": {}}
                for i in phase["items"]
            ]
    return None


def enter_phase(app: Emulator, sub: dict, start: int) -> None:
    """Called as the subscription's period ``[start, ...)`` begins (its items already
    carry the new period): enter the phase starting then, or end the schedule when its
    last phase ended."""
    schedule = _attached(app, sub)
    if schedule is None:
        return
    last_end = schedule["phases"][-1]["end_date"]
    if start >= last_end:  # end_behavior release: the subscription goes on by itself
        _detach(app, schedule, "released", start)
        app.emit("subscription_schedule.released", present(app.store, schedule))
        return
    for phase in schedule["phases"][1:]:
        if phase["start_date"] != start:
            continue
        store = app.store
        for item_id in list(sub["_items"]):
            store.delete("subscription_item", item_id)
        sub["_items"] = []
        fake = _PhaseRequest(app)
        for item in phase["items"]:
            spec = {"price": item["price"]}
            if item["quantity"] is not None:
                spec["quantity"] = item["quantity"]
            add_item(fake, sub, spec, "")
        if phase["metadata"]:
            sub["metadata"] = merge_metadata(sub["metadata"], phase["metadata"])
        schedule["current_phase"] = {
            "start_date": phase["start_date"],
            "end_date": phase["end_date"],
        }
        app.emit("subscription_schedule.updated", present(store, schedule))
        return


class _PhaseRequest:
    """What :func:`add_item` reads of a request, for a change made by the clock."""

    def __init__(self, app: Emulator):
        self.app = app
        self.store = app.store
        self.params: dict = {}
