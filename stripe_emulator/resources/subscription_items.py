"""Subscription items: their presentation, validation and changes, and the
``/v1/subscription_items`` routes. A change of a licensed item is prorated as by the
subscription update (``proration_behavior``, ``proration_date``;
:mod:`stripe_emulator.prorations`)."""

from __future__ import annotations

from .. import invoicing
from ..errors import invalid, missing_param
from ..forms import as_bool, as_dict, as_int, as_list, merge_metadata
from ..lists import paginate, present, presenter
from ..periods import period_bounds
from ..routing import Request, route
from ..store import Store
from .common import changed, deleted, get_or_404, require, show, snapshot
from .prices import plan_from_price


@presenter("subscription_item")
def _present_item(store: Store, item: dict) -> dict:
    price = store.get("price", item["price"])
    item["price"] = present(store, price)
    item["plan"] = plan_from_price(item["price"])
    if price["recurring"]["usage_type"] == "metered":
        item.pop("quantity", None)  # metered items have no quantity
    return item


def _p(prefix: str, name: str) -> str:
    return f"{prefix}[{name}]" if prefix else name


def check_price(req: Request, price_id, param: str, sub_like: dict | None) -> dict:
    if not price_id:
        raise missing_param(param)
    price = get_or_404(req, "price", price_id, param=param)
    if not price["recurring"]:
        raise invalid(
            "The price specified is set to `type=one_time` but this field only "
            "accepts prices with `type=recurring`.",
            param=param,
        )
    if not price["active"]:
        raise invalid(f"The price specified is inactive: {price_id}", param=param)
    if sub_like:
        recurring = price["recurring"]
        if price["currency"] != sub_like["currency"]:
            raise invalid("All prices on a subscription must have the same currency.", param=param)
        if (recurring["interval"], recurring["interval_count"]) != tuple(sub_like["_interval"]):
            raise invalid(
                "All prices on a subscription must have the same recurring interval.", param=param
            )
    return price


def add_item(req: Request, sub: dict, spec: dict, param: str) -> dict:
    store = req.store
    price = check_price(req, spec.get("price"), _p(param, "price"), sub)
    for other in sub["_items"]:
        if store.get("subscription_item", other)["price"] == price["id"]:
            raise invalid(
                "Cannot add multiple subscription items with the same price.",
                param=_p(param, "price"),
            )
    metered = price["recurring"]["usage_type"] == "metered"
    if metered and spec.get("quantity") not in (None, ""):
        raise invalid(
            "Quantity should not be specified where usage_type is `metered`.",
            param=_p(param, "quantity"),
        )
    start, end = (
        invoicing.current_period(req.app, sub)
        if sub["_items"]
        else period_bounds(sub["billing_cycle_anchor"], *sub["_interval"], sub["_cycles"])
    )
    item = {
        "id": store.new_id("subscription_item"),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": store.customer_now(sub["customer"]),
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": merge_metadata({}, spec.get("metadata", {})),
        "price": price["id"],
        "quantity": None
        if metered
        else as_int(spec.get("quantity", 1), _p(param, "quantity"), minimum=0),
        "subscription": sub["id"],
        "tax_rates": [],
    }
    store.add("subscription_item", item)
    sub["_items"].append(item["id"])
    return item


def change_item(req: Request, item: dict, spec: dict, param: str) -> None:
    sub = req.store.get("subscription", item["subscription"])
    if spec.get("price") and spec["price"] != item["price"]:
        check_price(req, spec["price"], _p(param, "price"), sub)
        item["price"] = spec["price"]
    metered = req.store.get("price", item["price"])["recurring"]["usage_type"] == "metered"
    if metered:
        item["quantity"] = None
    elif spec.get("quantity") not in (None, ""):
        item["quantity"] = as_int(spec["quantity"], _p(param, "quantity"), minimum=0)
    elif item["quantity"] is None:
        item["quantity"] = 1
    if "metadata" in spec:
        item["metadata"] = merge_metadata(item["metadata"], spec["metadata"])


def plan_item_changes(req: Request, sub: dict, specs=None, prefix: str = "items"):
    """Validate ``items[]`` of a subscription update (or ``specs`` named ``prefix``, e.g.
    ``subscription_details[items]`` of a preview) as a whole before changing anything:
    (items to remove, (item, spec, param) to update, (spec, param) to add)."""
    removals, updates, additions = [], [], []
    raw = req.params.get("items") if specs is None else specs
    for i, spec in enumerate(as_list(raw, prefix)):
        param = f"{prefix}[{i}]"
        spec = as_dict(spec, param)
        if not spec.get("id"):
            price = check_price(req, spec.get("price"), f"{param}[price]", sub)
            if price["recurring"]["usage_type"] == "metered" and spec.get("quantity"):
                raise invalid(
                    "Quantity should not be specified where usage_type is `metered`.",
                    param=f"{param}[quantity]",
                )
            additions.append((spec, param))
            continue
        item = get_or_404(req, "subscription_item", spec["id"], param=f"{param}[id]")
        if item["subscription"] != sub["id"]:
            raise invalid("This item belongs to another subscription.", param=f"{param}[id]")
        if as_bool(spec.get("deleted", False), f"{param}[deleted]"):
            removals.append(item)
        else:
            if spec.get("price"):
                check_price(req, spec["price"], f"{param}[price]", sub)
            if spec.get("quantity") not in (None, ""):
                as_int(spec["quantity"], f"{param}[quantity]", minimum=0)
            updates.append((item, spec, param))
    kept = [i for i in sub["_items"] if i not in {r["id"] for r in removals}]
    new_price = {item["id"]: spec.get("price") for item, spec, _ in updates if spec.get("price")}
    prices = [new_price.get(i) or req.store.get("subscription_item", i)["price"] for i in kept]
    prices += [spec["price"] for spec, _ in additions]
    if not prices:
        raise invalid("A subscription must have at least one active item.", param=prefix)
    if len(prices) != len(set(prices)):
        raise invalid("Cannot add multiple subscription items with the same price.", param=prefix)
    return removals, updates, additions


def items_after(req: Request, sub: dict, specs, prefix: str) -> list[dict]:
    """What the subscription's items would be after ``specs`` (validated as an update's
    ``items[]``), without changing anything: copies of the kept items with their new price
    and quantity, and new items (``id`` None). For previews."""
    removals, updates, additions = plan_item_changes(req, sub, specs, prefix)
    removed = {item["id"] for item in removals}
    changes = {item["id"]: spec for item, spec, _ in updates}
    after = []
    for item_id in sub["_items"]:
        if item_id in removed:
            continue
        item = dict(req.store.get("subscription_item", item_id))
        spec = changes.get(item_id, {})
        if spec.get("price"):
            item["price"] = spec["price"]
        metered = req.store.get("price", item["price"])["recurring"]["usage_type"] == "metered"
        if metered:
            item["quantity"] = None
        elif spec.get("quantity") not in (None, ""):
            item["quantity"] = int(spec["quantity"])
        elif item["quantity"] is None:
            item["quantity"] = 1
        after.append(item)
    for spec, _ in additions:
        price = req.store.get("price", spec["price"])
        metered = price["recurring"]["usage_type"] == "metered"
        after.append(
            {
                "id": None,
                "price": price["id"],
                "quantity": None
                if metered
                else int(spec["quantity"])
                if spec.get("quantity") not in (None, "")
                else 1,
                "metadata": dict(spec.get("metadata") or {}),
            }
        )
    return after


def remove_item(req: Request, sub: dict, item: dict) -> None:
    if len(sub["_items"]) == 1:
        raise invalid("A subscription must have at least one active item.")
    sub["_items"].remove(item["id"])
    req.store.delete("subscription_item", item["id"])


def _item_event(req: Request, sub: dict, before: dict) -> None:
    after = snapshot(req, sub)
    req.emit("customer.subscription.updated", after, changed(before, after))


def _proration(req: Request, sub: dict):
    from .subscriptions import Proration  # (subscriptions imports this module)

    return Proration(req, sub)


@route("POST", "/v1/subscription_items")
def create_item(req: Request):
    sub = get_or_404(req, "subscription", require(req.params, "subscription"), param="subscription")
    proration = _proration(req, sub)
    before = snapshot(req, sub)
    item = add_item(req, sub, req.params, "")
    _item_event(req, sub, before)
    proration.finish()
    return show(req, item)


@route("GET", "/v1/subscription_items/{id}")
def retrieve_item(req: Request):
    return show(req, get_or_404(req, "subscription_item", req.args["id"]))


@route("POST", "/v1/subscription_items/{id}")
def update_item(req: Request):
    item = get_or_404(req, "subscription_item", req.args["id"])
    sub = req.store.get("subscription", item["subscription"])
    proration = _proration(req, sub)
    before = snapshot(req, sub)
    change_item(req, item, req.params, "")
    _item_event(req, sub, before)
    proration.finish()
    return show(req, item)


@route("DELETE", "/v1/subscription_items/{id}")
def delete_item(req: Request):
    item = get_or_404(req, "subscription_item", req.args["id"])
    sub = req.store.get("subscription", item["subscription"])
    proration = _proration(req, sub)
    before = snapshot(req, sub)
    remove_item(req, sub, item)
    _item_event(req, sub, before)
    proration.finish()
    return deleted(item)


@route("GET", "/v1/subscription_items")
def list_items(req: Request):
    sub = get_or_404(req, "subscription", require(req.params, "subscription"), param="subscription")
    items = [req.store.get("subscription_item", i) for i in sub["_items"]]
    return paginate(
        req.store, items, req.params, f"/v1/subscription_items?subscription={sub['id']}"
    )
