"""Prices (per_unit, transform_quantity, tiered graduated/volume, recurring with meter)
and the legacy ``plan`` view of recurring prices (read-only, for dj-stripe)."""

from __future__ import annotations

from ..errors import invalid, missing_param
from ..forms import (
    as_bool,
    as_decimal,
    as_dict,
    as_int,
    as_list,
    decimal_str,
    merge_metadata,
    one_of,
)
from ..lists import expand_paths, paginate, present
from ..routing import Request, route
from ..store import Store
from .common import changed, get_or_404, show, snapshot

INTERVALS = ("day", "week", "month", "year")


def _amount_pair(src: dict, int_key: str, dec_key: str, param: str, required: bool):
    """(``unit_amount``, ``unit_amount_decimal``) from either form, Stripe-style."""
    has_int = src.get(int_key) not in (None, "")
    has_dec = src.get(dec_key) not in (None, "")
    if has_int and has_dec:
        raise invalid(f"You may only specify one of {int_key} and {dec_key}.", param=param)
    if has_int:
        value = as_int(src[int_key], f"{param}{int_key}", minimum=0)
        return value, str(value)
    if has_dec:
        value = as_decimal(src[dec_key], f"{param}{dec_key}")
        if value < 0 or value.as_tuple().exponent < -12:
            raise invalid(
                f"Invalid {dec_key}: at most 12 decimal places, not negative.",
                param=f"{param}{dec_key}",
            )
        text = decimal_str(value)
        return (int(value) if value == value.to_integral_value() else None), text
    if required:
        raise missing_param(f"{param}{int_key}")
    return None, None


def _tiers(raw) -> list[dict]:
    tiers = []
    previous = 0
    items = as_list(raw, "tiers")
    if not items:
        raise missing_param("tiers")
    for i, tier in enumerate(items):
        tier = as_dict(tier, f"tiers[{i}]")
        up_to_raw = tier.get("up_to")
        if up_to_raw in (None, ""):
            raise missing_param(f"tiers[{i}][up_to]")
        up_to = None if up_to_raw == "inf" else as_int(up_to_raw, f"tiers[{i}][up_to]", minimum=1)
        if up_to is not None and up_to <= previous:
            raise invalid("Tiers must be in ascending order of up_to.", param=f"tiers[{i}][up_to]")
        if up_to is None and i != len(items) - 1:
            raise invalid("Only the last tier may have up_to: inf.", param=f"tiers[{i}][up_to]")
        unit, unit_dec = _amount_pair(
            tier, "unit_amount", "unit_amount_decimal", f"tiers[{i}]", False
        )
        flat, flat_dec = _amount_pair(
            tier, "flat_amount", "flat_amount_decimal", f"tiers[{i}]", False
        )
        tiers.append(
            {
                "flat_amount": flat,
                "flat_amount_decimal": flat_dec,
                "unit_amount": unit,
                "unit_amount_decimal": unit_dec,
                "up_to": up_to,
            }
        )
        previous = up_to or previous
    if tiers[-1]["up_to"] is not None:
        raise invalid("The last tier must have up_to: inf.", param=f"tiers[{len(tiers) - 1}]")
    return tiers


def _recurring(req: Request, raw) -> dict:
    recurring = as_dict(raw, "recurring")
    interval = one_of(recurring.get("interval"), "recurring[interval]", INTERVALS)
    usage_type = one_of(
        recurring.get("usage_type", "licensed"), "recurring[usage_type]", ("licensed", "metered")
    )
    meter = recurring.get("meter") or None
    if usage_type == "metered" and not meter:
        raise invalid("A metered price requires recurring[meter].", param="recurring[meter]")
    if meter:
        if usage_type != "metered":
            raise invalid("recurring[meter] requires usage_type=metered.", param="recurring[meter]")
        get_or_404(req, "billing.meter", meter, label="billing meter", param="recurring[meter]")
    return {
        "interval": interval,
        "interval_count": as_int(
            recurring.get("interval_count", 1), "recurring[interval_count]", minimum=1
        ),
        "meter": meter,
        "usage_type": usage_type,
        "trial_period_days": None,
    }


def _check_lookup_key(store: Store, lookup_key, transfer: bool, keep: str | None = None):
    if not lookup_key:
        return
    for other in store.all("price"):
        if other["lookup_key"] == lookup_key and other["id"] != keep:
            if not transfer:
                raise invalid(
                    f"A price (`{other['id']}`) already uses that lookup key.",
                    param="lookup_key",
                )
            other["lookup_key"] = None


def new_price(req: Request, params: dict) -> dict:
    store = req.store
    currency = params.get("currency")
    if not currency:
        raise missing_param("currency")
    product_id = params.get("product")
    if not product_id:
        product_data = as_dict(params.get("product_data"), "product_data")
        if not product_data.get("name"):
            raise missing_param("product")
        from .products import new_product

        product = new_product(req, product_data["name"])
        req.emit("product.created", snapshot(req, product))
        product_id = product["id"]
    else:
        get_or_404(req, "product", product_id, param="product")
    scheme = one_of(
        params.get("billing_scheme", "per_unit"), "billing_scheme", ("per_unit", "tiered")
    )
    price = {
        "id": store.new_id("price", 24),
        "object": "price",
        "active": as_bool(params.get("active", True), "active"),
        "billing_scheme": scheme,
        "created": store.real_now(),
        "currency": str(currency).lower(),
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": params.get("lookup_key") or None,
        "metadata": merge_metadata({}, params.get("metadata", {})),
        "nickname": params.get("nickname") or None,
        "product": product_id,
        "recurring": _recurring(req, params["recurring"]) if params.get("recurring") else None,
        "tax_behavior": params.get("tax_behavior", "unspecified"),
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if params.get("recurring") else "one_time",
        "unit_amount": None,
        "unit_amount_decimal": None,
    }
    if scheme == "tiered":
        price["tiers_mode"] = one_of(
            params.get("tiers_mode"), "tiers_mode", ("graduated", "volume")
        )
        if params.get("transform_quantity"):
            raise invalid(
                "transform_quantity cannot be combined with tiers.", param="transform_quantity"
            )
        if params.get("unit_amount") or params.get("unit_amount_decimal"):
            raise invalid("A tiered price takes its amounts from tiers.", param="unit_amount")
        price["tiers"] = _tiers(params.get("tiers"))
    else:
        if params.get("tiers"):
            raise invalid("tiers require billing_scheme=tiered.", param="tiers")
        price["unit_amount"], price["unit_amount_decimal"] = _amount_pair(
            params, "unit_amount", "unit_amount_decimal", "", True
        )
        transform = params.get("transform_quantity")
        if transform:
            transform = as_dict(transform, "transform_quantity")
            price["transform_quantity"] = {
                "divide_by": as_int(
                    transform.get("divide_by"), "transform_quantity[divide_by]", minimum=1
                ),
                "round": one_of(
                    transform.get("round"), "transform_quantity[round]", ("up", "down")
                ),
            }
    _check_lookup_key(
        store,
        price["lookup_key"],
        as_bool(params.get("transfer_lookup_key", False), "transfer_lookup_key"),
    )
    store.add("price", price)
    req.emit("price.created", snapshot(req, price))
    return price


def plan_from_price(price: dict, *, tiers: list | None = None) -> dict | None:
    """The legacy ``plan`` shape of a recurring price (as on subscription items); its
    ``tiers`` only when asked for (``expand[]=tiers``), as for prices."""
    recurring = price.get("recurring")
    if not recurring:
        return None
    plan = {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring["interval"],
        "interval_count": recurring["interval_count"],
        "livemode": False,
        "metadata": price["metadata"],
        "meter": recurring["meter"],
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": price["tiers_mode"],
        "transform_usage": price["transform_quantity"],
        "trial_period_days": None,
        "usage_type": recurring["usage_type"],
    }
    if tiers is not None:
        plan["tiers"] = tiers
    return plan


def _with_tiers(store: Store, price: dict, wanted: bool) -> dict | None:
    stored = store.get("price", price["id"]) or {}
    return plan_from_price(price, tiers=stored.get("tiers") if wanted else None)


@route("POST", "/v1/prices")
def create(req: Request):
    return show(req, new_price(req, req.params))


@route("GET", "/v1/prices/{id}")
def retrieve(req: Request):
    return show(req, get_or_404(req, "price", req.args["id"]))


@route("POST", "/v1/prices/{id}")
def update(req: Request):
    price = get_or_404(req, "price", req.args["id"])
    params = req.params
    before = snapshot(req, price)
    if "active" in params:
        price["active"] = as_bool(params["active"], "active")
    if "nickname" in params:
        price["nickname"] = params["nickname"] or None
    if "metadata" in params:
        price["metadata"] = merge_metadata(price["metadata"], params["metadata"])
    if "tax_behavior" in params:
        price["tax_behavior"] = params["tax_behavior"]
    if "lookup_key" in params:
        transfer = as_bool(params.get("transfer_lookup_key", False), "transfer_lookup_key")
        _check_lookup_key(req.store, params["lookup_key"], transfer, keep=price["id"])
        price["lookup_key"] = params["lookup_key"] or None
    after = snapshot(req, price)
    req.emit("price.updated", after, changed(before, after))
    return show(req, price)


def _filtered_prices(req: Request) -> list[dict]:
    params = req.params
    objs = req.store.all("price")
    if "active" in params:
        active = as_bool(params["active"], "active")
        objs = [p for p in objs if p["active"] == active]
    for key in ("product", "currency", "type"):
        if params.get(key):
            objs = [p for p in objs if p[key] == params[key]]
    if params.get("lookup_keys"):
        keys = set(as_list(params["lookup_keys"], "lookup_keys"))
        objs = [p for p in objs if p["lookup_key"] in keys]
    recurring = as_dict(params.get("recurring"), "recurring")
    for key, value in recurring.items():
        objs = [p for p in objs if p["recurring"] and p["recurring"].get(key) == value]
    return objs


@route("GET", "/v1/prices")
def list_(req: Request):
    return paginate(req.store, _filtered_prices(req), req.params, "/v1/prices")


@route("GET", "/v1/plans")
def list_plans(req: Request):
    prices = [p for p in _filtered_prices(req) if p["recurring"]]
    page = paginate(req.store, prices, {**req.params, "expand": []}, "/v1/plans")
    wanted = "data.tiers" in expand_paths(req.params)
    page["data"] = [_with_tiers(req.store, p, wanted) for p in page["data"]]
    return page


@route("GET", "/v1/plans/{id}")
def retrieve_plan(req: Request):
    price = get_or_404(req, "price", req.args["id"], label="plan")
    if not price["recurring"]:
        raise invalid(f"No such plan: '{price['id']}'")
    return _with_tiers(req.store, present(req.store, price), "tiers" in expand_paths(req.params))
