"""Billing meters: create, retrieve, list, update ``display_name``, deactivate, reactivate."""

from __future__ import annotations

from ..errors import invalid
from ..forms import as_dict, one_of
from ..lists import paginate
from ..routing import Request, route
from .common import changed, get_or_404, require, show, snapshot

FORMULAS = ("sum", "count", "last")


@route("POST", "/v1/billing/meters")
def create(req: Request):
    params, store = req.params, req.store
    display_name = require(params, "display_name")
    event_name = require(params, "event_name")
    if len(event_name) > 100:
        raise invalid("event_name must be at most 100 characters.", param="event_name")
    if any(m["event_name"] == event_name for m in store.all("billing.meter")):
        raise invalid(
            f"A meter with event_name '{event_name}' already exists.",
            param="event_name",
            code="resource_already_exists",
        )
    aggregation = as_dict(params.get("default_aggregation"), "default_aggregation")
    formula = one_of(aggregation.get("formula"), "default_aggregation[formula]", FORMULAS)
    mapping = as_dict(params.get("customer_mapping"), "customer_mapping")
    value_settings = as_dict(params.get("value_settings"), "value_settings")
    now = store.real_now()
    meter = {
        "id": store.new_id("billing.meter", 24),
        "object": "billing.meter",
        "created": now,
        "customer_mapping": {
            "event_payload_key": mapping.get("event_payload_key") or "stripe_customer_id",
            "type": one_of(mapping.get("type", "by_id"), "customer_mapping[type]", ("by_id",)),
        },
        "default_aggregation": {"formula": formula},
        "display_name": display_name,
        "event_name": event_name,
        "event_time_window": params.get("event_time_window") or None,
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": now,
        "value_settings": {"event_payload_key": value_settings.get("event_payload_key") or "value"},
    }
    store.add("billing.meter", meter)
    req.emit("billing.meter.created", snapshot(req, meter))
    return show(req, meter)


@route("GET", "/v1/billing/meters/{id}")
def retrieve(req: Request):
    return show(req, get_or_404(req, "billing.meter", req.args["id"], label="billing meter"))


@route("POST", "/v1/billing/meters/{id}")
def update(req: Request):
    meter = get_or_404(req, "billing.meter", req.args["id"], label="billing meter")
    unknown = set(req.params) - {"display_name", "expand"}
    if unknown:
        name = sorted(unknown)[0]
        raise invalid(f"Received unknown parameter: {name}", param=name)
    if "display_name" in req.params:
        before = snapshot(req, meter)
        meter["display_name"] = require(req.params, "display_name")
        meter["updated"] = req.store.real_now()
        after = snapshot(req, meter)
        req.emit("billing.meter.updated", after, changed(before, after))
    return show(req, meter)


def _set_status(req: Request, status: str, event_type: str):
    meter = get_or_404(req, "billing.meter", req.args["id"], label="billing meter")
    if meter["status"] == status:
        raise invalid(f"This meter is already {status}.")
    before = snapshot(req, meter)
    now = req.store.real_now()
    meter["status"] = status
    meter["status_transitions"]["deactivated_at"] = now if status == "inactive" else None
    meter["updated"] = now
    after = snapshot(req, meter)
    req.emit(event_type, after, changed(before, after))
    return show(req, meter)


@route("POST", "/v1/billing/meters/{id}/deactivate")
def deactivate(req: Request):
    return _set_status(req, "inactive", "billing.meter.deactivated")


@route("POST", "/v1/billing/meters/{id}/reactivate")
def reactivate(req: Request):
    return _set_status(req, "active", "billing.meter.reactivated")


@route("GET", "/v1/billing/meters")
def list_(req: Request):
    objs = req.store.all("billing.meter")
    if req.params.get("status"):
        objs = [m for m in objs if m["status"] == req.params["status"]]
    return paginate(req.store, objs, req.params, "/v1/billing/meters")
