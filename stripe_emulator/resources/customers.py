"""Customers (with ``test_clock``, ``payment_method`` and
``invoice_settings.default_payment_method``)."""

from __future__ import annotations

import copy

from ..forms import as_dict, merge_metadata
from ..lists import paginate
from ..routing import Request, route
from ..store import random_token
from .common import changed, deleted, get_or_404, show, snapshot
from .payment_methods import resolve_for_customer

_SIMPLE = ("email", "name", "description", "phone")


def _apply(req: Request, customer: dict) -> None:
    params = req.params
    for key in _SIMPLE:
        if key in params:
            customer[key] = params[key] or None
    if "address" in params:
        customer["address"] = as_dict(params["address"], "address") or None
    if "shipping" in params:
        customer["shipping"] = as_dict(params["shipping"], "shipping") or None
    if "preferred_locales" in params:
        customer["preferred_locales"] = list(params["preferred_locales"] or [])
    if "metadata" in params:
        customer["metadata"] = merge_metadata(customer["metadata"], params["metadata"])
    if params.get("payment_method"):
        resolve_for_customer(req, params["payment_method"], customer, "payment_method")
    settings = as_dict(params.get("invoice_settings"), "invoice_settings")
    if "default_payment_method" in settings:
        ref = settings["default_payment_method"]
        pm = (
            resolve_for_customer(req, ref, customer, "invoice_settings[default_payment_method]")
            if ref
            else None
        )
        customer["invoice_settings"]["default_payment_method"] = pm["id"] if pm else None
    for key in ("footer", "custom_fields"):
        if key in settings:
            customer["invoice_settings"][key] = settings[key] or None


@route("POST", "/v1/customers")
def create(req: Request):
    store = req.store
    clock_id = req.params.get("test_clock") or None
    if clock_id:
        get_or_404(req, "test_helpers.test_clock", clock_id, label="test clock", param="test_clock")
    customer = {
        "id": store.new_id("customer"),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": store.clock_now(clock_id),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_prefix": random_token(8).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": clock_id,
        "customer_account": None,
    }
    store.add("customer", customer)
    _apply(req, customer)
    req.emit("customer.created", snapshot(req, customer))
    return show(req, customer)


@route("GET", "/v1/customers/{id}")
def retrieve(req: Request):
    customer = req.store.get("customer", req.args["id"])
    if customer is None and req.store.get("_deleted_customer", req.args["id"]):
        return {"id": req.args["id"], "object": "customer", "deleted": True}
    return show(req, get_or_404(req, "customer", req.args["id"]))


@route("POST", "/v1/customers/{id}")
def update(req: Request):
    customer = get_or_404(req, "customer", req.args["id"])
    before = snapshot(req, customer)
    _apply(req, customer)
    after = snapshot(req, customer)
    if after != before:
        req.emit("customer.updated", after, changed(before, after))
    return show(req, customer)


@route("DELETE", "/v1/customers/{id}")
def delete(req: Request):
    from .subscriptions import cancel_subscription

    customer = get_or_404(req, "customer", req.args["id"])
    for sub in req.store.all("subscription"):
        if sub["customer"] == customer["id"] and sub["status"] not in (
            "canceled",
            "incomplete_expired",
        ):
            cancel_subscription(req.app, sub, now=req.store.customer_now(customer["id"]))
    final = snapshot(req, customer)
    req.store.delete("customer", customer["id"])
    req.store.add("_deleted_customer", copy.deepcopy(deleted(customer)))
    req.emit("customer.deleted", final)
    return deleted(customer)


@route("GET", "/v1/customers")
def list_(req: Request):
    objs = req.store.all("customer")
    if req.params.get("email"):
        objs = [c for c in objs if c["email"] == req.params["email"]]
    # Stripe: "The response will not include customers with test clocks if this
    # parameter is not set." (CustomerListParams.test_clock)
    objs = [c for c in objs if c["test_clock"] == (req.params.get("test_clock") or None)]
    return paginate(req.store, objs, req.params, "/v1/customers")


@route("GET", "/v1/customers/{id}/sources")
def list_sources(req: Request):
    """Legacy sources (cards, bank accounts) are not emulated: an empty list."""
    customer = get_or_404(req, "customer", req.args["id"])
    return paginate(req.store, [], req.params, f"/v1/customers/{customer['id']}/sources")


@route("GET", "/v1/customers/{id}/tax_ids")
def list_tax_ids(req: Request):
    customer = get_or_404(req, "customer", req.args["id"])
    return paginate(req.store, [], req.params, f"/v1/customers/{customer['id']}/tax_ids")


@route("GET", "/v1/customers/{id}/balance_transactions")
def list_balance_transactions(req: Request):
    """The customer's balance transactions, newest first
    (https://docs.stripe.com/api/customer_balance_transactions/list); the emulator makes
    ``applied_to_invoice`` ones (stripe_emulator.customer_balance)."""
    from ..customer_balance import transactions_for

    customer = get_or_404(req, "customer", req.args["id"])
    objs = transactions_for(req.app, customer["id"])
    url = f"/v1/customers/{customer['id']}/balance_transactions"
    return paginate(req.store, objs, req.params, url)
