"""Webhook endpoints (create returns the ``secret``) and events (list, retrieve)."""

from __future__ import annotations

from ..errors import invalid
from ..forms import as_bool, as_list, merge_metadata
from ..lists import paginate
from ..routing import Request, route
from ..store import random_token
from .common import deleted, get_or_404, require, show


def _enabled_events(raw) -> list[str]:
    events = [str(e) for e in as_list(raw, "enabled_events")]
    if not events:
        raise invalid("Missing required param: enabled_events.", param="enabled_events")
    return events


@route("POST", "/v1/webhook_endpoints")
def create(req: Request):
    params, store = req.params, req.store
    url = require(params, "url")
    if not url.startswith(("http://", "https://")):
        raise invalid("Invalid URL: must be http(s).", param="url")
    secret = "whsec_" + random_token(32)
    endpoint = {
        "id": store.new_id("webhook_endpoint", 24),
        "object": "webhook_endpoint",
        "api_version": params.get("api_version") or None,
        "application": None,
        "created": store.real_now(),
        "description": params.get("description") or None,
        "enabled_events": _enabled_events(params.get("enabled_events")),
        "livemode": False,
        "metadata": merge_metadata({}, params.get("metadata", {})),
        "secret": secret,
        "status": "enabled",
        "url": url,
        "_secret": secret,
    }
    store.add("webhook_endpoint", endpoint)
    return show(req, endpoint)


def _public(endpoint: dict) -> dict:
    """Stripe shows the secret only in the create response."""
    return {k: v for k, v in endpoint.items() if k != "secret"}


@route("GET", "/v1/webhook_endpoints/{id}")
def retrieve(req: Request):
    return _public(show(req, get_or_404(req, "webhook_endpoint", req.args["id"])))


@route("POST", "/v1/webhook_endpoints/{id}")
def update(req: Request):
    endpoint = get_or_404(req, "webhook_endpoint", req.args["id"])
    params = req.params
    for key in ("url", "description"):
        if key in params:
            endpoint[key] = params[key] or None
    if "enabled_events" in params:
        endpoint["enabled_events"] = _enabled_events(params["enabled_events"])
    if "disabled" in params:
        endpoint["status"] = "disabled" if as_bool(params["disabled"], "disabled") else "enabled"
    if "metadata" in params:
        endpoint["metadata"] = merge_metadata(endpoint["metadata"], params["metadata"])
    return _public(show(req, endpoint))


@route("DELETE", "/v1/webhook_endpoints/{id}")
def delete(req: Request):
    endpoint = get_or_404(req, "webhook_endpoint", req.args["id"])
    req.store.delete("webhook_endpoint", endpoint["id"])
    return deleted(endpoint)


@route("GET", "/v1/webhook_endpoints")
def list_(req: Request):
    page = paginate(
        req.store, req.store.all("webhook_endpoint"), req.params, "/v1/webhook_endpoints"
    )
    page["data"] = [_public(e) for e in page["data"]]
    return page


@route("GET", "/v1/events/{id}")
def retrieve_event(req: Request):
    return show(req, get_or_404(req, "event", req.args["id"]))


@route("GET", "/v1/events")
def list_events(req: Request):
    params = req.params
    objs = req.store.all("event")
    types = [str(t) for t in as_list(params.get("types"), "types")]
    if params.get("type"):
        wanted = params["type"]
        if wanted.endswith("*"):
            objs = [e for e in objs if e["type"].startswith(wanted[:-1])]
        else:
            objs = [e for e in objs if e["type"] == wanted]
    if types:
        objs = [e for e in objs if e["type"] in types]
    if params.get("delivery_success") is not None and params.get("delivery_success") != "":
        success = as_bool(params["delivery_success"], "delivery_success")
        objs = [e for e in objs if (e["pending_webhooks"] == 0) == success]
    return paginate(req.store, objs, params, "/v1/events")
