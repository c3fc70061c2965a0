"""Subscriptions and subscription items (dahlia: ``current_period_start/end`` on items).

Changes to items take effect from the next period (no prorations are made)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import invoicing
from ..errors import invalid, missing_param
from ..forms import as_bool, as_dict, as_int, as_list, merge_metadata, one_of
from ..lists import paginate, present, presenter
from ..periods import period_bounds
from ..routing import Request, route
from ..store import Store
from .common import changed, deleted, get_or_404, require, show, snapshot
from .payment_methods import resolve_for_customer
from .prices import plan_from_price

if TYPE_CHECKING:
    from ..app import Emulator


@presenter("subscription_item")
def _present_item(store: Store, item: dict) -> dict:
    price = store.get("price", item["price"])
    item["price"] = present(store, price)
    item["plan"] = plan_from_price(item["price"])
    if price["recurring"]["usage_type"] == "metered":
        item.pop("quantity", None)  # metered items have no quantity
    return item


@presenter("subscription")
def _present_subscription(store: Store, sub: dict) -> dict:
    raw = store.get("subscription", sub["id"])
    items = [present(store, store.get("subscription_item", i)) for i in raw["_items"]]
    sub["items"] = {
        "object": "list",
        "data": items,
        "has_more": False,
        "total_count": len(items),
        "url": f"/v1/subscription_items?subscription={sub['id']}",
    }
    return sub


def _p(prefix: str, name: str) -> str:
    return f"{prefix}[{name}]" if prefix else name


def _check_price(req: Request, price_id, param: str, sub_like: dict | None) -> dict:
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


def _new_item(req: Request, sub: dict, spec: dict, param: str) -> dict:
    store = req.store
    price = _check_price(req, spec.get("price"), _p(param, "price"), sub)
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


def _update_item(req: Request, item: dict, spec: dict, param: str) -> None:
    sub = req.store.get("subscription", item["subscription"])
    if spec.get("price") and spec["price"] != item["price"]:
        _check_price(req, spec["price"], _p(param, "price"), sub)
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


def _plan_item_changes(req: Request, sub: dict):
    """Validate ``items[]`` of a subscription update as a whole before changing anything:
    (items to remove, (item, spec, param) to update, (spec, param) to add)."""
    removals, updates, additions = [], [], []
    for i, spec in enumerate(as_list(req.params.get("items"), "items")):
        param = f"items[{i}]"
        spec = as_dict(spec, param)
        if not spec.get("id"):
            price = _check_price(req, spec.get("price"), f"{param}[price]", sub)
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
                _check_price(req, spec["price"], f"{param}[price]", sub)
            if spec.get("quantity") not in (None, ""):
                as_int(spec["quantity"], f"{param}[quantity]", minimum=0)
            updates.append((item, spec, param))
    kept = [i for i in sub["_items"] if i not in {r["id"] for r in removals}]
    new_price = {item["id"]: spec.get("price") for item, spec, _ in updates if spec.get("price")}
    prices = [new_price.get(i) or req.store.get("subscription_item", i)["price"] for i in kept]
    prices += [spec["price"] for spec, _ in additions]
    if not prices:
        raise invalid("A subscription must have at least one active item.", param="items")
    if len(prices) != len(set(prices)):
        raise invalid("Cannot add multiple subscription items with the same price.", param="items")
    return removals, updates, additions


def _remove_item(req: Request, sub: dict, item: dict) -> None:
    if len(sub["_items"]) == 1:
        raise invalid("A subscription must have at least one active item.")
    sub["_items"].remove(item["id"])
    req.store.delete("subscription_item", item["id"])


def _apply(req: Request, sub: dict) -> None:
    params = req.params
    customer = req.store.get("customer", sub["customer"])
    if "metadata" in params:
        sub["metadata"] = merge_metadata(sub["metadata"], params["metadata"])
    if "description" in params:
        sub["description"] = params["description"] or None
    if "cancel_at_period_end" in params:
        sub["cancel_at_period_end"] = as_bool(
            params["cancel_at_period_end"], "cancel_at_period_end"
        )
        sub["canceled_at"] = (
            req.store.customer_now(sub["customer"]) if sub["cancel_at_period_end"] else None
        )
    if "cancel_at" in params:
        sub["cancel_at"] = as_int(params["cancel_at"], "cancel_at") if params["cancel_at"] else None
    if "collection_method" in params:
        sub["collection_method"] = one_of(
            params["collection_method"],
            "collection_method",
            ("charge_automatically", "send_invoice"),
        )
    if "days_until_due" in params:
        sub["days_until_due"] = as_int(params["days_until_due"], "days_until_due", minimum=0)
    if "default_payment_method" in params:
        ref = params["default_payment_method"]
        sub["default_payment_method"] = (
            resolve_for_customer(req, ref, customer, "default_payment_method")["id"]
            if ref
            else None
        )


@route("POST", "/v1/subscriptions")
def create(req: Request):
    store, params = req.store, req.params
    customer = get_or_404(req, "customer", require(params, "customer"), param="customer")
    specs = [as_dict(s, f"items[{i}]") for i, s in enumerate(as_list(params.get("items"), "items"))]
    if not specs:
        raise missing_param("items")
    first = _check_price(req, specs[0].get("price"), "items[0][price]", None)
    now = store.customer_now(customer["id"])
    sub = {
        "id": store.new_id("subscription", 24),
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"enabled": False, "liability": None, "disabled_reason": None},
        "billing_cycle_anchor": now,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "classic", "flexible": None},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": now,
        "currency": first["currency"],
        "customer": customer["id"],
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": now,
        "status": "incomplete",
        "test_clock": customer["test_clock"],
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
        "_items": [],
        "_cycles": 0,
        "_interval": [first["recurring"]["interval"], first["recurring"]["interval_count"]],
    }
    for i, spec in enumerate(specs):
        _new_item(req, sub, spec, f"items[{i}]")
    _apply(req, sub)
    if customer["currency"] is None:
        customer["currency"] = sub["currency"]
    store.add("subscription", sub)
    req.emit("customer.subscription.created", snapshot(req, sub))
    start, end = invoicing.current_period(req.app, sub)
    lines = invoicing.licensed_lines(req.app, sub, start, end)
    lines += [  # metered items are listed at zero: they bill in arrears
        invoicing.make_line(req.app, sub, item, 0, start, end)
        for item in invoicing.sub_items(req.app, sub)
        if invoicing.usage_type(req.app, item) == "metered"
    ]
    invoice = invoicing.new_invoice(
        req.app,
        customer,
        lines,
        now=now,
        currency=sub["currency"],
        sub=sub,
        billing_reason="subscription_create",
    )
    sub["latest_invoice"] = invoice["id"]
    invoicing.finalize_and_pay(req.app, invoice, now)
    return show(req, sub)


@route("GET", "/v1/subscriptions/{id}")
def retrieve(req: Request):
    return show(req, get_or_404(req, "subscription", req.args["id"]))


@route("POST", "/v1/subscriptions/{id}")
def update(req: Request):
    sub = get_or_404(req, "subscription", req.args["id"])
    if sub["status"] == "canceled":
        raise invalid(
            "A canceled subscription can only update its cancellation_details and metadata."
        )
    before = snapshot(req, sub)
    removals, updates, additions = _plan_item_changes(req, sub)
    for item, spec, param in updates:
        _update_item(req, item, spec, param)
    for item in removals:
        sub["_items"].remove(item["id"])
        req.store.delete("subscription_item", item["id"])
    for spec, param in additions:
        _new_item(req, sub, spec, param)
    _apply(req, sub)
    after = snapshot(req, sub)
    req.emit("customer.subscription.updated", after, changed(before, after))
    return show(req, sub)


def cancel_subscription(app: Emulator, sub: dict, *, now: int, invoice_now=False) -> None:
    if invoice_now:
        start, _ = invoicing.current_period(app, sub)
        lines = invoicing.metered_lines(app, sub, start, now)
        customer = app.store.get("customer", sub["customer"])
        if lines and customer:
            invoice = invoicing.new_invoice(
                app,
                customer,
                lines,
                now=now,
                currency=sub["currency"],
                sub=sub,
                billing_reason="subscription_cycle",
                period=(start, now),
            )
            sub["latest_invoice"] = invoice["id"]
            invoicing.finalize_and_pay(app, invoice, now)
    invoicing.end_subscription(app, sub, now)


@route("DELETE", "/v1/subscriptions/{id}")
def cancel(req: Request):
    sub = get_or_404(req, "subscription", req.args["id"])
    if sub["status"] == "canceled":
        raise invalid("This subscription is already canceled.")
    details = as_dict(req.params.get("cancellation_details"), "cancellation_details")
    for key in ("comment", "feedback"):
        if key in details:
            sub["cancellation_details"][key] = details[key] or None
    sub["cancellation_details"]["reason"] = "cancellation_requested"
    cancel_subscription(
        req.app,
        sub,
        now=req.store.customer_now(sub["customer"]),
        invoice_now=as_bool(req.params.get("invoice_now", False), "invoice_now"),
    )
    return show(req, sub)


@route("GET", "/v1/subscriptions")
def list_(req: Request):
    params = req.params
    objs = req.store.all("subscription")
    status = params.get("status")
    if status and status != "all":
        objs = [s for s in objs if s["status"] == status]
    elif not status:
        objs = [s for s in objs if s["status"] not in ("canceled", "incomplete_expired")]
    for key in ("customer", "test_clock", "collection_method"):
        if params.get(key):
            objs = [s for s in objs if s[key] == params[key]]
    if params.get("price"):
        objs = [
            s
            for s in objs
            if any(
                req.store.get("subscription_item", i)["price"] == params["price"]
                for i in s["_items"]
            )
        ]
    return paginate(req.store, objs, params, "/v1/subscriptions")


# -- subscription items ---------------------------------------------------------------------
def _item_event(req: Request, sub: dict, before: dict) -> None:
    after = snapshot(req, sub)
    req.emit("customer.subscription.updated", after, changed(before, after))


@route("POST", "/v1/subscription_items")
def create_item(req: Request):
    sub = get_or_404(req, "subscription", require(req.params, "subscription"), param="subscription")
    before = snapshot(req, sub)
    item = _new_item(req, sub, req.params, "")
    _item_event(req, sub, before)
    return show(req, item)


@route("GET", "/v1/subscription_items/{id}")
def retrieve_item(req: Request):
    return show(req, get_or_404(req, "subscription_item", req.args["id"]))


@route("POST", "/v1/subscription_items/{id}")
def update_item(req: Request):
    item = get_or_404(req, "subscription_item", req.args["id"])
    sub = req.store.get("subscription", item["subscription"])
    before = snapshot(req, sub)
    _update_item(req, item, req.params, "")
    _item_event(req, sub, before)
    return show(req, item)


@route("DELETE", "/v1/subscription_items/{id}")
def delete_item(req: Request):
    item = get_or_404(req, "subscription_item", req.args["id"])
    sub = req.store.get("subscription", item["subscription"])
    before = snapshot(req, sub)
    _remove_item(req, sub, item)
    _item_event(req, sub, before)
    return deleted(item)


@route("GET", "/v1/subscription_items")
def list_items(req: Request):
    sub = get_or_404(req, "subscription", require(req.params, "subscription"), param="subscription")
    items = [req.store.get("subscription_item", i) for i in sub["_items"]]
    return paginate(
        req.store, items, req.params, f"/v1/subscription_items?subscription={sub['id']}"
    )
