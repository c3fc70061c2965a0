"""Small helpers shared by the resource modules."""

from __future__ import annotations

from ..errors import missing_param, no_such
from ..lists import expand_paths, present
from ..routing import Request


def require(params: dict, name: str):
    value = params.get(name)
    if value is None or value == "":
        raise missing_param(name)
    return value


def get_or_404(req: Request, kind: str, oid: str, *, label: str | None = None, param="id"):
    obj = req.store.get(kind, oid)
    if obj is None:
        raise no_such(label or kind.split(".")[-1].replace("_", " "), oid, param=param)
    return obj


def show(req: Request, obj: dict) -> dict:
    """The object in API shape, honouring the request's ``expand[]``."""
    return present(req.store, obj, expand_paths(req.params))


def snapshot(req: Request, obj: dict) -> dict:
    """The object in API shape, for an event payload."""
    return present(req.store, obj)


def deleted(obj: dict) -> dict:
    return {"id": obj["id"], "object": obj["object"], "deleted": True}


def changed(before: dict, after: dict) -> dict:
    """Stripe's ``previous_attributes``: the old values of the top-level keys that changed."""
    return {k: before.get(k) for k in after if not k.startswith("_") and before.get(k) != after[k]}
