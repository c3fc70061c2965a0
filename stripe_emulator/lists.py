"""Presenting stored objects: per-type presenters, ``expand[]`` and list pagination."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .errors import invalid
from .forms import as_int, as_list
from .store import Store, render

# object name -> function(store, rendered) -> rendered, registered by resource modules
# for fields built at read time (a subscription's items, an invoice's lines...).
PRESENTERS: dict[str, Callable[[Store, dict], dict]] = {}
# Fields Stripe leaves out unless expanded ("This field is not included by default. To
# include it in the response, expand the tiers field." -- the Price object's ``tiers``).
INCLUDABLE: dict[str, tuple[str, ...]] = {"price": ("tiers",)}


def presenter(object_name: str):
    def register(fn):
        PRESENTERS[object_name] = fn
        return fn

    return register


def present(store: Store, obj: dict, expand: Iterable[str] = ()) -> dict:
    """The API shape of a stored object, with ``expand`` paths resolved."""
    out = render(obj)
    fn = PRESENTERS.get(out.get("object", ""))
    if fn:
        out = fn(store, out)
    for key in INCLUDABLE.get(out.get("object", ""), ()):
        out.pop(key, None)
    for path in expand:
        _expand(store, out, path.split("."), depth=0)
    return out


def _expand(store: Store, node, parts: list[str], depth: int) -> None:
    if not parts or not isinstance(node, dict) or depth > 4:
        return
    key, rest = parts[0], parts[1:]
    if key not in node and key in INCLUDABLE.get(node.get("object", ""), ()):
        stored = store.find(node.get("id", ""))
        node[key] = render(stored).get(key) if stored else None
    if key not in node:
        return
    value = node[key]
    if isinstance(value, str):
        target = store.find(value)
        if target is None:
            return
        node[key] = value = present(store, target)
    elif isinstance(value, list) and not rest:
        node[key] = [
            present(store, store.find(v)) if isinstance(v, str) and store.find(v) else v
            for v in value
        ]
        return
    if not rest:
        return
    if isinstance(value, list):
        for item in value:
            _expand(store, item, rest, depth + 1)
    else:
        _expand(store, value, rest, depth + 1)


def expand_paths(params: dict) -> list[str]:
    return [str(p) for p in as_list(params.get("expand"), "expand")]


def list_object(data: list[dict], url: str, has_more: bool = False) -> dict:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def paginate(store: Store, objs: list[dict], params: dict, url: str) -> dict:
    """Stripe list: ``limit`` (1-100, default 10), ``starting_after``, ``ending_before``,
    ``created[gt|gte|lt|lte]`` or ``created=<ts>``; objects are given newest first."""
    limit = as_int(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid("This value must be between 1 and 100.", param="limit")
    objs = filter_created(objs, params.get("created"))
    after, before = params.get("starting_after"), params.get("ending_before")
    ids = [o["id"] for o in objs]
    if after:
        if after not in ids:
            raise invalid(f"No such object: '{after}'", param="starting_after")
        page = objs[ids.index(after) + 1 :]
        has_more = len(page) > limit
        page = page[:limit]
    elif before:
        if before not in ids:
            raise invalid(f"No such object: '{before}'", param="ending_before")
        head = objs[: ids.index(before)]
        page = head[-limit:]
        has_more = len(head) > limit
    else:
        page = objs[:limit]
        has_more = len(objs) > limit
    expand = [p[len("data.") :] for p in expand_paths(params) if p.startswith("data.")]
    return list_object([present(store, o, expand) for o in page], url, has_more)


def filter_created(objs: list[dict], created) -> list[dict]:
    if created is None or created == "":
        return objs
    if not isinstance(created, dict):
        exact = as_int(created, "created")
        return [o for o in objs if o.get("created") == exact]
    checks = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    for op, bound in created.items():
        if op not in checks:
            raise invalid(f"Invalid created[{op}]", param=f"created[{op}]")
        limit = as_int(bound, f"created[{op}]")
        objs = [o for o in objs if checks[op](o.get("created", 0), limit)]
    return objs
