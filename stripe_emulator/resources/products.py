"""Products."""

from __future__ import annotations

from ..errors import invalid
from ..forms import as_bool, as_list, merge_metadata
from ..lists import paginate
from ..routing import Request, route
from .common import changed, deleted, get_or_404, require, show, snapshot

_SIMPLE = ("name", "description", "statement_descriptor", "unit_label", "url", "tax_code")


def _apply(req: Request, product: dict) -> None:
    params = req.params
    for key in _SIMPLE:
        if key in params:
            product[key] = params[key] or None
    if "active" in params:
        product["active"] = as_bool(params["active"], "active")
    if "images" in params:
        product["images"] = [str(i) for i in as_list(params["images"], "images")]
    if "metadata" in params:
        product["metadata"] = merge_metadata(product["metadata"], params["metadata"])
    if "default_price" in params:
        price_id = params["default_price"] or None
        if price_id:
            get_or_404(req, "price", price_id, param="default_price")
        product["default_price"] = price_id


def new_product(req: Request, name: str, product_id: str | None = None) -> dict:
    store = req.store
    if product_id and store.get("product", product_id):
        raise invalid(
            f"Product already exists: {product_id}", param="id", code="resource_already_exists"
        )
    now = store.real_now()
    product = {
        "id": product_id or store.new_id("product"),
        "object": "product",
        "active": True,
        "created": now,
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": now,
        "url": None,
    }
    return store.add("product", product)


@route("POST", "/v1/products")
def create(req: Request):
    product = new_product(req, require(req.params, "name"), req.params.get("id"))
    _apply(req, product)
    req.emit("product.created", snapshot(req, product))
    default_price_data = req.params.get("default_price_data")
    if isinstance(default_price_data, dict):
        from .prices import new_price

        price = new_price(req, {**default_price_data, "product": product["id"]})
        product["default_price"] = price["id"]
    return show(req, product)


@route("GET", "/v1/products/{id}")
def retrieve(req: Request):
    return show(req, get_or_404(req, "product", req.args["id"]))


@route("POST", "/v1/products/{id}")
def update(req: Request):
    product = get_or_404(req, "product", req.args["id"])
    before = snapshot(req, product)
    _apply(req, product)
    product["updated"] = req.store.real_now()
    after = snapshot(req, product)
    req.emit("product.updated", after, changed(before, after))
    return show(req, product)


@route("DELETE", "/v1/products/{id}")
def delete(req: Request):
    product = get_or_404(req, "product", req.args["id"])
    if any(p["product"] == product["id"] for p in req.store.all("price")):
        raise invalid(
            "This product cannot be deleted because it has one or more user-created prices."
        )
    final = snapshot(req, product)
    req.store.delete("product", product["id"])
    req.emit("product.deleted", final)
    return deleted(product)


@route("GET", "/v1/products")
def list_(req: Request):
    objs = req.store.all("product")
    if "active" in req.params:
        active = as_bool(req.params["active"], "active")
        objs = [p for p in objs if p["active"] == active]
    if req.params.get("ids"):
        ids = set(as_list(req.params["ids"], "ids"))
        objs = [p for p in objs if p["id"] in ids]
    return paginate(req.store, objs, req.params, "/v1/products")


@route("GET", "/v1/products/{id}/features")
def list_features(req: Request):
    """Entitlement features are not emulated: always an empty list."""
    product = get_or_404(req, "product", req.args["id"])
    return paginate(req.store, [], req.params, f"/v1/products/{product['id']}/features")
