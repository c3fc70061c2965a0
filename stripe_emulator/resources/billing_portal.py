"""Customer portal: configurations and sessions (the session ``url`` is a page the
emulator serves, see :mod:`stripe_emulator.pages`).

As in Stripe's test mode, no configuration exists until one is created (Stripe: saved in
the Dashboard or created with ``POST /v1/billing_portal/configurations``), and a session
created without one is a 400 (:data:`NO_CONFIGURATION`). The first configuration created
becomes the default (``is_default``), later ones do not; whether real Stripe ever makes an
API-created configuration the default is not verified (README, "Known differences"), so
Meterdesk passes ``configuration`` explicitly."""

from __future__ import annotations

from ..errors import StripeError
from ..forms import as_bool, as_dict, merge_metadata
from ..lists import paginate
from ..routing import Request, route
from ..store import random_token
from .common import changed, get_or_404, require, show, snapshot

_DEFAULT_FEATURES = {
    "customer_update": {"allowed_updates": ["email", "address"], "enabled": True},
    "invoice_history": {"enabled": True},
    "payment_method_update": {"enabled": True, "payment_method_configuration": None},
    "subscription_cancel": {
        "cancellation_reason": {"enabled": False, "options": []},
        "enabled": True,
        "mode": "at_period_end",
        "proration_behavior": "none",
    },
    "subscription_update": {
        "default_allowed_updates": [],
        "enabled": False,
        "proration_behavior": "none",
        "schedule_at_period_end": {"conditions": []},
        "trial_update_behavior": "end_trial",
        "billing_cycle_anchor": None,
    },
}


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(out.get(key), bool):
            out[key] = as_bool(value, key)
        else:
            out[key] = value
    return out


def _apply(req: Request, config: dict) -> None:
    params = req.params
    if "business_profile" in params:
        config["business_profile"] = _merge(
            config["business_profile"], as_dict(params["business_profile"], "business_profile")
        )
    if "features" in params:
        config["features"] = _merge(config["features"], as_dict(params["features"], "features"))
    if "default_return_url" in params:
        config["default_return_url"] = params["default_return_url"] or None
    if "name" in params:
        config["name"] = params["name"] or None
    if "active" in params:
        config["active"] = as_bool(params["active"], "active")
    if "metadata" in params:
        config["metadata"] = merge_metadata(config["metadata"] or {}, params["metadata"])


def _new_configuration(req: Request, is_default: bool) -> dict:
    store = req.store
    now = store.real_now()
    config = {
        "id": store.new_id("billing_portal.configuration", 24),
        "object": "billing_portal.configuration",
        "active": True,
        "application": None,
        "business_profile": {
            "headline": None,
            "privacy_policy_url": None,
            "terms_of_service_url": None,
        },
        "created": now,
        "default_return_url": None,
        "features": _merge(_DEFAULT_FEATURES, {}),
        "is_default": is_default,
        "livemode": False,
        "login_page": {"enabled": False, "url": None},
        "metadata": {},
        "name": None,
        "updated": now,
    }
    return store.add("billing_portal.configuration", config)


# Stripe's answer, in test mode, to a session created before any portal configuration
# was saved (word for word, typographic apostrophe included, as reported by Stripe's
# client libraries: mozilla/fxa#13245, "Error: You can’t create a portal session in test
# mode until you save your customer portal settings [...]", StripeInvalidRequestError).
# The emulator only has test mode (it accepts sk_test_ keys only).
NO_CONFIGURATION = (
    "You can’t create a portal session in test mode until you save your customer portal "
    "settings in test mode at https://dashboard.stripe.com/test/settings/billing/portal."
)


def default_configuration(req: Request) -> dict:
    """The default configuration; Stripe never makes one by itself: until a configuration
    is saved (created), a session without ``configuration`` is a 400."""
    for config in req.store.all("billing_portal.configuration"):
        if config["is_default"]:
            return config
    raise StripeError(400, NO_CONFIGURATION)


@route("POST", "/v1/billing_portal/configurations")
def create_configuration(req: Request):
    has_default = any(c["is_default"] for c in req.store.all("billing_portal.configuration"))
    config = _new_configuration(req, not has_default)
    _apply(req, config)
    req.emit("billing_portal.configuration.created", snapshot(req, config))
    return show(req, config)


@route("GET", "/v1/billing_portal/configurations/{id}")
def retrieve_configuration(req: Request):
    return show(
        req, get_or_404(req, "billing_portal.configuration", req.args["id"], label="configuration")
    )


@route("POST", "/v1/billing_portal/configurations/{id}")
def update_configuration(req: Request):
    config = get_or_404(req, "billing_portal.configuration", req.args["id"], label="configuration")
    before = snapshot(req, config)
    _apply(req, config)
    config["updated"] = req.store.real_now()
    after = snapshot(req, config)
    req.emit("billing_portal.configuration.updated", after, changed(before, after))
    return show(req, config)


@route("GET", "/v1/billing_portal/configurations")
def list_configurations(req: Request):
    objs = req.store.all("billing_portal.configuration")
    for key in ("active", "is_default"):
        if key in req.params:
            wanted = as_bool(req.params[key], key)
            objs = [c for c in objs if c[key] == wanted]
    return paginate(req.store, objs, req.params, "/v1/billing_portal/configurations")


@route("POST", "/v1/billing_portal/sessions")
def create_session(req: Request):
    store, params = req.store, req.params
    customer = get_or_404(req, "customer", require(params, "customer"), param="customer")
    if params.get("configuration"):
        config = get_or_404(
            req,
            "billing_portal.configuration",
            params["configuration"],
            label="configuration",
            param="configuration",
        )
    else:
        config = default_configuration(req)
    return_url = params.get("return_url") or config["default_return_url"]
    session_id = store.new_id("billing_portal.session", 24)
    session = {
        "id": session_id,
        "object": "billing_portal.session",
        "configuration": config["id"],
        "created": store.real_now(),
        "customer": customer["id"],
        "customer_account": None,
        "flow": None,
        "livemode": False,
        "locale": params.get("locale") or None,
        "on_behalf_of": None,
        "return_url": return_url,
        "url": f"{store.base_url}/p/session/{session_id}_{random_token(16)}",
    }
    store.add("billing_portal.session", session)
    req.emit("billing_portal.session.created", snapshot(req, session))
    return show(req, session)
