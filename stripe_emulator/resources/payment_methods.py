"""Payment methods, including Stripe's test tokens.

``pm_card_visa`` (and ``pm_card_mastercard``, ``pm_card_amex``, ``tok_visa``) attach and
pay; ``pm_card_chargeCustomerFail`` attaches but every charge fails;
``pm_card_chargeDeclined`` fails at attach with a 402 ``card_declined``.
"""

from __future__ import annotations

import hashlib

from ..errors import StripeError, invalid
from ..forms import merge_metadata
from ..lists import paginate
from ..routing import Request, route
from ..store import Store
from .common import get_or_404, require, show, snapshot

# token -> (brand, last4, behaviour)
TEST_TOKENS = {
    "pm_card_visa": ("visa", "4242", "pays"),
    "pm_card_mastercard": ("mastercard", "4444", "pays"),
    "pm_card_amex": ("amex", "8431", "pays"),
    "pm_card_chargeCustomerFail": ("visa", "0341", "fails"),
    "pm_card_chargeDeclined": ("visa", "0002", "declined"),
    "tok_visa": ("visa", "4242", "pays"),
    "tok_chargeCustomerFail": ("visa", "0341", "fails"),
    "tok_chargeDeclined": ("visa", "0002", "declined"),
}


def new_payment_method(store: Store, token: str, now: int) -> dict:
    if token not in TEST_TOKENS:
        raise invalid(f"No such PaymentMethod: '{token}'", param="payment_method")
    brand, last4, behaviour = TEST_TOKENS[token]
    pm = {
        "id": store.new_id("payment_method", 24),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                k: None for k in ("city", "country", "line1", "line2", "postal_code", "state")
            },
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": "US",
            "display_brand": brand,
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": hashlib.sha1(token.encode()).hexdigest()[:16],
            "funding": "credit",
            "generated_from": None,
            "last4": last4,
            "networks": {"available": [brand], "preferred": None},
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
            "regulated_status": "unregulated",
        },
        "created": now,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
        "_behaviour": behaviour,
        "_token": token,
    }
    return store.add("payment_method", pm)


def attach(req: Request, ref: str, customer: dict, param="payment_method") -> dict:
    """Attach an existing payment method, or a new one made from a test token."""
    store = req.store
    if ref in TEST_TOKENS:
        pm = new_payment_method(store, ref, store.customer_now(customer["id"]))
    else:
        pm = get_or_404(req, "payment_method", ref, label="PaymentMethod", param=param)
        if pm["customer"] and pm["customer"] != customer["id"]:
            raise invalid("This PaymentMethod is attached to another customer.", param=param)
        if pm["customer"] == customer["id"]:
            return pm
    if pm["_behaviour"] == "declined":
        raise StripeError(
            402,
            "Your card was declined.",
            type="card_error",
            code="card_declined",
            param=param,
            extra={"decline_code": "generic_decline"},
        )
    pm["customer"] = customer["id"]
    customer.setdefault("_tokens", {})[pm.get("_token", "")] = pm["id"]
    req.emit("payment_method.attached", snapshot(req, pm))
    return pm


def resolve_for_customer(req: Request, ref: str, customer: dict, param: str) -> dict:
    """A payment method reference given for ``customer``: a token already attached to it
    (``pm_card_visa`` passed twice in one create), an attached pm, or attach it now."""
    token_pm = customer.get("_tokens", {}).get(ref)
    if ref in TEST_TOKENS and token_pm:
        return req.store.get("payment_method", token_pm)
    return attach(req, ref, customer, param)


@route("POST", "/v1/payment_methods")
def create(req: Request):
    params = req.params
    if params.get("type", "card") != "card":
        raise invalid("Only type=card is supported by the emulator.", param="type")
    card = params.get("card") or {}
    token = card.get("token") if isinstance(card, dict) else None
    pm = new_payment_method(req.store, token or "pm_card_visa", req.store.real_now())
    pm["metadata"] = merge_metadata({}, params.get("metadata", {}))
    return show(req, pm)


@route("GET", "/v1/payment_methods/{id}")
def retrieve(req: Request):
    ref = req.args["id"]
    if ref in TEST_TOKENS:
        return show(req, new_payment_method(req.store, ref, req.store.real_now()))
    return show(req, get_or_404(req, "payment_method", ref, label="PaymentMethod"))


@route("POST", "/v1/payment_methods/{id}")
def update(req: Request):
    pm = get_or_404(req, "payment_method", req.args["id"], label="PaymentMethod")
    pm["metadata"] = merge_metadata(pm["metadata"], req.params.get("metadata", {}))
    req.emit("payment_method.updated", snapshot(req, pm))
    return show(req, pm)


@route("POST", "/v1/payment_methods/{id}/attach")
def attach_route(req: Request):
    customer_id = require(req.params, "customer")
    customer = get_or_404(req, "customer", customer_id, param="customer")
    return show(req, attach(req, req.args["id"], customer, param="payment_method"))


@route("POST", "/v1/payment_methods/{id}/detach")
def detach(req: Request):
    pm = get_or_404(req, "payment_method", req.args["id"], label="PaymentMethod")
    if not pm["customer"]:
        raise invalid("The payment method you provided is not attached to a customer.")
    customer = req.store.get("customer", pm["customer"])
    if customer and customer["invoice_settings"].get("default_payment_method") == pm["id"]:
        customer["invoice_settings"]["default_payment_method"] = None
    pm["customer"] = None
    req.emit("payment_method.detached", snapshot(req, pm))
    return show(req, pm)


def _list(req: Request, customer_id: str | None, url: str):
    objs = req.store.all("payment_method")
    if customer_id:
        objs = [o for o in objs if o["customer"] == customer_id]
    if req.params.get("type"):
        objs = [o for o in objs if o["type"] == req.params["type"]]
    return paginate(req.store, objs, req.params, url)


@route("GET", "/v1/payment_methods")
def list_(req: Request):
    return _list(req, req.params.get("customer"), "/v1/payment_methods")


@route("GET", "/v1/customers/{id}/payment_methods")
def list_for_customer(req: Request):
    get_or_404(req, "customer", req.args["id"])
    return _list(req, req.args["id"], f"/v1/customers/{req.args['id']}/payment_methods")


@route("GET", "/v1/customers/{id}/payment_methods/{pm}")
def retrieve_for_customer(req: Request):
    pm = get_or_404(req, "payment_method", req.args["pm"], label="PaymentMethod")
    if pm["customer"] != req.args["id"]:
        raise invalid("This PaymentMethod is not attached to this customer.")
    return show(req, pm)
