"""v2 event destinations (create, list, retrieve, delete, enable, disable) and v2 events
(retrieve, list): where thin events such as ``v1.billing.meter.error_report_triggered``
are delivered, and where the receiver fetches the whole event.

Shapes from stripe-python 15 (``stripe/v2/core/_event_destination.py``,
``stripe/params/v2/core/_event_destination_create_params.py``): ``type`` is
``webhook_endpoint`` here (EventBridge and Event Grid are not emulated), ``event_payload``
``thin`` or ``snapshot``; ``webhook_endpoint.url`` is "includable" and
``webhook_endpoint.signing_secret`` "only includable on creation", both through
``include``. The signing secret signs deliveries like a v1 endpoint's ``secret``.
"""

from __future__ import annotations

from ..errors import invalid, no_such
from ..forms import merge_metadata
from ..meter_event_validation import iso
from ..routing import Request, route
from ..store import random_token
from .common import require

KIND = "v2.core.event_destination"


def _as_list(raw) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, dict):  # form-encoded include[0]=...
        return [str(v) for _, v in sorted(raw.items())]
    if isinstance(raw, str):
        return [raw]
    return [str(v) for v in raw]


def _shown(destination: dict, include: list[str]) -> dict:
    out = {k: v for k, v in destination.items() if not k.startswith("_")}
    if destination["type"] == "webhook_endpoint":
        endpoint = {"signing_secret": None, "url": None}
        if "webhook_endpoint.url" in include:
            endpoint["url"] = destination["_url"]
        if "webhook_endpoint.signing_secret" in include:
            endpoint["signing_secret"] = destination["_secret"]
        out["webhook_endpoint"] = endpoint
    return out


def _destination(req: Request) -> dict:
    found = req.store.get(KIND, req.args["id"])
    if found is None:
        raise no_such("event destination", req.args["id"])
    return found


@route("POST", "/v2/core/event_destinations")
def create(req: Request):
    params, store = req.params, req.store
    name = require(params, "name")
    kind = require(params, "type")
    payload = require(params, "event_payload")
    if kind != "webhook_endpoint":
        raise invalid("Only type=webhook_endpoint is emulated.", param="type")
    if payload not in ("thin", "snapshot"):
        raise invalid("event_payload must be one of thin, snapshot.", param="event_payload")
    enabled = _as_list(params.get("enabled_events"))
    if not enabled:
        raise invalid("Missing required param: enabled_events.", param="enabled_events")
    url = (params.get("webhook_endpoint") or {}).get("url") or ""
    if not url.startswith(("http://", "https://")):
        raise invalid("Invalid URL: must be http(s).", param="webhook_endpoint.url")
    now = iso(store.real_now())
    destination = {
        "id": store.new_id(KIND, 24),
        "object": KIND,
        "created": now,
        "description": params.get("description") or "",
        "enabled_events": enabled,
        "event_payload": payload,
        "events_from": _as_list(params.get("events_from")) or ["@self"],
        "livemode": False,
        "metadata": merge_metadata({}, params.get("metadata") or {}),
        "name": name,
        "snapshot_api_version": (
            params.get("snapshot_api_version") if payload == "snapshot" else None
        ),
        "status": "enabled",
        "status_details": None,
        "type": kind,
        "updated": now,
        "_url": url,
        "_secret": "whsec_" + random_token(32),
    }
    store.add(KIND, destination)
    return _shown(destination, _as_list(params.get("include")))


@route("GET", "/v2/core/event_destinations")
def list_(req: Request):
    include = [i for i in _as_list(req.params.get("include")) if i == "webhook_endpoint.url"]
    return {
        "data": [_shown(d, include) for d in req.store.all(KIND)],
        "next_page_url": None,
        "previous_page_url": None,
    }


@route("GET", "/v2/core/event_destinations/{id}")
def retrieve(req: Request):
    include = [i for i in _as_list(req.params.get("include")) if i == "webhook_endpoint.url"]
    return _shown(_destination(req), include)


@route("DELETE", "/v2/core/event_destinations/{id}")
def delete(req: Request):
    destination = _destination(req)
    req.store.delete(KIND, destination["id"])
    return {"id": destination["id"], "object": KIND, "deleted": True}


def _set_status(req: Request, status: str) -> dict:
    destination = _destination(req)
    destination["status"] = status
    destination["updated"] = iso(req.store.real_now())
    return _shown(destination, [])


@route("POST", "/v2/core/event_destinations/{id}/disable")
def disable(req: Request):
    return _set_status(req, "disabled")


@route("POST", "/v2/core/event_destinations/{id}/enable")
def enable(req: Request):
    return _set_status(req, "enabled")


@route("GET", "/v2/core/events/{id}")
def event_retrieve(req: Request):
    event = req.store.get("v2.core.event", req.args["id"])
    if event is None:
        raise no_such("event", req.args["id"])
    return {k: v for k, v in event.items() if not k.startswith("_")}


@route("GET", "/v2/core/events")
def event_list(req: Request):
    object_id = req.params.get("object_id")
    types = set(_as_list(req.params.get("types")))
    events = [
        {k: v for k, v in e.items() if not k.startswith("_")}
        for e in req.store.all("v2.core.event")
        if (not object_id or e["related_object"]["id"] == object_id)
        and (not types or e["type"] in types)
    ]
    return {"data": events, "next_page_url": None, "previous_page_url": None}
