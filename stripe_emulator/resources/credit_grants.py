"""Billing credits: credit grants (create, list, retrieve, update, expire, void), the credit
balance summary and credit balance transactions.

As Stripe documents them (quotes in /work/notes/stripe_credits.md):

- Create, https://docs.stripe.com/api/billing/credit-grant/create and stripe-python 15's
  ``CreditGrantCreateParams``: ``amount.type`` "We currently only support ``monetary``";
  ``amount.monetary.value`` "A positive integer"; ``applicability_config.scope`` is
  ``price_type=metered`` or ``prices[][id]`` ("Cannot be used in combination", "Limit 20
  prices", "We currently only support ``metered`` prices that have a Billing Meter
  attached to them"); ``category`` "defaults to ``paid``"; ``priority`` "default value of
  50. The highest priority is 0 and the lowest is 100"; ``effective_at`` "defaults to the
  current timestamp" (the customer's test clock time when it has one); ``expires_at``
  "If not specified, the billing credits don't expire".
- https://docs.stripe.com/billing/subscriptions/usage-based/billing-credits: "Customers can
  have up to 100 unused credit grants at a time"; void: "You can only void credit grants
  that you haven't applied to an invoice, either partially or completely".
- Update (``CreditGrantUpdateParams``): only ``expires_at`` ("If set to empty, the billing
  credits never expire") and ``metadata``.
- Events: ``billing.credit_grant.created`` / ``.updated`` and
  ``billing.credit_balance_transaction.created`` (stripe-python 15 ``Event.type``).

Not emulated (refused naming the param): ``customer_account`` (Accounts v2).
"""

from __future__ import annotations

import re

from .. import credit_application as credits
from ..errors import invalid, missing_param
from ..forms import as_dict, as_int, as_list, merge_metadata
from ..lists import paginate
from ..routing import Request, route
from .common import get_or_404, require, show, snapshot

GRANT, TXN = credits.GRANT, credits.TXN
MAX_UNUSED = 100
MAX_PRICES = 20
_CURRENCY = re.compile(r"^[a-z]{3}$")


def _no_accounts(params: dict) -> None:
    if params.get("customer_account"):
        raise invalid(
            "customer_account (Accounts v2) is not emulated: pass customer.",
            param="customer_account",
        )


def _customer(req: Request, params: dict, *, required: bool) -> dict | None:
    _no_accounts(params)
    if not params.get("customer"):
        if required:
            require(params, "customer")
        return None
    return get_or_404(req, "customer", params["customer"], param="customer")


def _need(params: dict, key: str, param: str):
    value = params.get(key)
    if value is None or value == "":
        raise missing_param(param)
    return value


def _scope(req: Request, raw, param: str, *, check_prices: bool) -> dict:
    """``{price_type: metered}`` or ``{prices: [{id}]}``, exactly one of them."""
    scope = as_dict(raw, param)
    has_type, has_prices = "price_type" in scope, "prices" in scope
    if has_type == has_prices:
        raise invalid(
            f"{param} takes exactly one of price_type or prices.",
            param=f"{param}[prices]" if has_type else param,
        )
    if has_type:
        return {"price_type": "metered"}  # the only value the param rules let through
    prices = as_list(scope["prices"], f"{param}[prices]")
    if not prices:
        raise invalid("At least one price is required.", param=f"{param}[prices]")
    if len(prices) > MAX_PRICES:
        raise invalid(
            f"A credit grant can apply to at most {MAX_PRICES} prices.", param=f"{param}[prices]"
        )
    out = []
    for i, entry in enumerate(prices):
        name = f"{param}[prices][{i}][id]"
        price_id = _need(as_dict(entry, f"{param}[prices][{i}]"), "id", name)
        if check_prices:
            price = get_or_404(req, "price", price_id, param=name)
            recurring = price.get("recurring") or {}
            if recurring.get("usage_type") != "metered" or not recurring.get("meter"):
                raise invalid(
                    f"Price {price_id} is not a metered price with a billing meter: credit "
                    "grants only apply to metered prices that have a Billing Meter attached.",
                    param=name,
                )
        out.append({"id": price_id})
    return {"prices": out}


# -- credit grants ------------------------------------------------------------------------
@route("POST", "/v1/billing/credit_grants")
def create(req: Request):
    params, store = req.params, req.store
    customer = _customer(req, params, required=True)
    amount = as_dict(params["amount"], "amount")
    if amount.get("type") != "monetary":
        raise invalid("We currently only support monetary billing credits.", param="amount[type]")
    money = as_dict(_need(amount, "monetary", "amount[monetary]"), "amount[monetary]")
    currency = str(_need(money, "currency", "amount[monetary][currency]")).lower()
    if not _CURRENCY.match(currency):
        raise invalid(f"Invalid currency: {money['currency']}", param="amount[monetary][currency]")
    value = as_int(money.get("value"), "amount[monetary][value]")
    if value <= 0:
        raise invalid(
            "The amount of a credit grant must be a positive integer.",
            param="amount[monetary][value]",
        )
    config = as_dict(params["applicability_config"], "applicability_config")
    scope = _scope(
        req,
        _need(config, "scope", "applicability_config[scope]"),
        "applicability_config[scope]",
        check_prices=True,
    )
    category = params.get("category") or "paid"
    priority = as_int(params.get("priority", 50), "priority")
    if not 0 <= priority <= 100:
        raise invalid("priority must be between 0 and 100.", param="priority")
    now = store.customer_now(customer["id"])
    effective_at = (
        as_int(params["effective_at"], "effective_at") if "effective_at" in params else now
    )
    expires_at = None
    if params.get("expires_at") not in (None, ""):
        expires_at = as_int(params["expires_at"], "expires_at")
        if expires_at <= effective_at:
            raise invalid("expires_at must be after effective_at.", param="expires_at")
    credits.settle(req.app, customer["id"])
    unused = [
        g
        for g in store.objects.get(GRANT, {}).values()
        if g["customer"] == customer["id"] and credits.is_unused(store, g, now)
    ]
    if len(unused) >= MAX_UNUSED:
        raise invalid(
            f"This customer already has the maximum of {MAX_UNUSED} unused credit grants. "
            "Void or expire some before creating another."
        )
    grant = {
        "id": store.new_id(GRANT, 24),
        "object": GRANT,
        "amount": credits.monetary(currency, value),
        "applicability_config": {"scope": scope},
        "category": category,
        "created": now,
        "customer": customer["id"],
        "customer_account": None,
        "effective_at": effective_at,
        "expires_at": expires_at,
        "livemode": False,
        "metadata": merge_metadata({}, params.get("metadata", {})),
        "name": params.get("name") or None,
        "priority": priority,
        "test_clock": customer.get("test_clock"),
        "updated": now,
        "voided_at": None,
        "_txns": [],
    }
    store.add(GRANT, grant)
    req.emit("billing.credit_grant.created", snapshot(req, grant))
    credits.record(
        req.app, grant, "credit", "credits_granted", value, effective_at=effective_at, created=now
    )
    credits.refresh_drafts(req.app, customer["id"])
    return show(req, grant)


def _grant(req: Request) -> dict:
    grant = get_or_404(req, GRANT, req.args["id"], label="credit grant")
    credits.settle(req.app, grant["customer"])
    return grant


@route("GET", "/v1/billing/credit_grants")
def list_(req: Request):
    customer = _customer(req, req.params, required=False)
    credits.settle(req.app, customer["id"] if customer else None)
    grants = req.store.all(GRANT)
    if customer:
        grants = [g for g in grants if g["customer"] == customer["id"]]
    return paginate(req.store, grants, req.params, "/v1/billing/credit_grants")


@route("GET", "/v1/billing/credit_grants/{id}")
def retrieve(req: Request):
    return show(req, _grant(req))


def _updated(req: Request, grant: dict, before: dict, now: int) -> None:
    grant["updated"] = now
    after = snapshot(req, grant)
    previous = {k: before[k] for k in after if before.get(k) != after[k]}
    req.emit("billing.credit_grant.updated", after, previous)


@route("POST", "/v1/billing/credit_grants/{id}")
def update(req: Request):
    grant = _grant(req)
    params, store = req.params, req.store
    now = store.customer_now(grant["customer"])
    before = snapshot(req, grant)
    if "expires_at" in params:
        if grant["voided_at"] is not None or credits.is_expired(grant, now):
            raise invalid(
                "This credit grant has already been voided or has expired: its expiry "
                "cannot change.",
                param="expires_at",
            )
        if params["expires_at"] == "":
            grant["expires_at"] = None  # "If set to empty, the billing credits never expire"
        else:
            expires_at = as_int(params["expires_at"], "expires_at")
            if expires_at <= (grant["effective_at"] or 0):
                raise invalid("expires_at must be after effective_at.", param="expires_at")
            grant["expires_at"] = expires_at
    if "metadata" in params:
        grant["metadata"] = merge_metadata(grant["metadata"], params["metadata"])
    _updated(req, grant, before, now)
    credits.settle(req.app, grant["customer"])  # an expires_at already passed: expires now
    credits.refresh_drafts(req.app, grant["customer"])
    return show(req, grant)


@route("POST", "/v1/billing/credit_grants/{id}/expire")
def expire(req: Request):
    """ "Expires a credit grant": ``expires_at`` becomes now and what is left is debited
    (``credits_expired``). https://docs.stripe.com/api/billing/credit-grant/expire"""
    grant = _grant(req)
    now = req.store.customer_now(grant["customer"])
    if credits.is_expired(grant, now):
        raise invalid("This credit grant has already expired.", param="id")
    before = snapshot(req, grant)
    grant["expires_at"] = now
    grant["_expired"] = True
    credits.close_out(req.app, grant, "credits_expired", now)
    _updated(req, grant, before, now)
    credits.refresh_drafts(req.app, grant["customer"])
    return show(req, grant)


@route("POST", "/v1/billing/credit_grants/{id}/void")
def void(req: Request):
    """ "Voids a credit grant": ``voided_at`` is set and what is left is debited
    (``credits_voided``); refused once any of it was applied to an invoice ([BC] "You can
    only void credit grants that you haven't applied to an invoice, either partially or
    completely"; credits reinstated by voiding that invoice no longer count as applied --
    an assumption, Stripe does not say). https://docs.stripe.com/api/billing/credit-grant/void"""
    grant = _grant(req)
    now = req.store.customer_now(grant["customer"])
    if grant["voided_at"] is not None:
        raise invalid("This credit grant has already been voided.", param="id")
    if credits.net_applied(req.store, grant) > 0:
        raise invalid(
            "You can only void credit grants that you haven't applied to an invoice, either "
            "partially or completely.",
            param="id",
        )
    before = snapshot(req, grant)
    grant["voided_at"] = now
    credits.close_out(req.app, grant, "credits_voided", now)
    _updated(req, grant, before, now)
    credits.refresh_drafts(req.app, grant["customer"])
    return show(req, grant)


# -- balance summary ----------------------------------------------------------------------
def _matches(req: Request, grant: dict, filt: dict) -> bool:
    """Whether a grant counts towards the summary's filter. For ``applicability_scope`` a
    grant counts when it could apply to what the filter names: ``price_type=metered``
    takes every grant (all grants apply to metered prices only); ``prices`` takes grants
    scoped to all metered prices and grants listing one of those prices. (Assumption:
    Stripe does not say whether the filter matches the scope exactly.)"""
    if filt["type"] == "credit_grant":
        return grant["id"] == filt["credit_grant"]
    scope = grant["applicability_config"]["scope"]
    if "price_type" in filt["scope"] or scope.get("price_type"):
        return True
    wanted = {p["id"] for p in filt["scope"]["prices"]}
    return any(p["id"] in wanted for p in scope.get("prices") or [])


@route("GET", "/v1/billing/credit_balance_summary")
def balance_summary(req: Request):
    """https://docs.stripe.com/api/billing/credit-balance-summary: one entry per credit
    grant currency, each with ``available_balance`` and ``ledger_balance``."""
    store = req.store
    customer = _customer(req, req.params, required=True)
    raw = as_dict(req.params["filter"], "filter")
    kind = raw["type"]
    if kind == "credit_grant":
        grant_id = raw.get("credit_grant")
        if not grant_id:
            raise invalid(
                "filter[credit_grant] is required when filter[type] is credit_grant.",
                param="filter[credit_grant]",
            )
        grant = get_or_404(req, GRANT, grant_id, label="credit grant", param="filter[credit_grant]")
        if grant["customer"] != customer["id"]:
            raise invalid(
                f"Credit grant {grant_id} does not belong to customer {customer['id']}.",
                param="filter[credit_grant]",
            )
        filt = {"type": kind, "credit_grant": grant_id}
    elif kind == "applicability_scope":
        if not raw.get("applicability_scope"):
            raise invalid(
                "filter[applicability_scope] is required when filter[type] is applicability_scope.",
                param="filter[applicability_scope]",
            )
        scope = _scope(
            req, raw["applicability_scope"], "filter[applicability_scope]", check_prices=False
        )
        filt = {"type": kind, "scope": scope}
    else:
        raise invalid(
            "Invalid filter[type]: must be one of applicability_scope or credit_grant",
            param="filter[type]",
        )
    credits.settle(req.app, customer["id"])
    now = store.customer_now(customer["id"])
    totals: dict[str, list[int]] = {}
    for grant in sorted(store.objects.get(GRANT, {}).values(), key=lambda g: g["_seq"]):
        if grant["customer"] != customer["id"] or not _matches(req, grant, filt):
            continue
        entry = totals.setdefault(credits.grant_currency(grant), [0, 0])
        entry[0] += credits.available_balance(store, grant, now)
        entry[1] += credits.ledger_balance(store, grant, now)
    return {
        "object": "billing.credit_balance_summary",
        "balances": [
            {
                "available_balance": credits.monetary(currency, available),
                "ledger_balance": credits.monetary(currency, ledger),
            }
            for currency, (available, ledger) in totals.items()
        ],
        "customer": customer["id"],
        "customer_account": None,
        "livemode": False,
    }


# -- credit balance transactions ----------------------------------------------------------
@route("GET", "/v1/billing/credit_balance_transactions")
def list_transactions(req: Request):
    params = req.params
    customer = _customer(req, params, required=False)
    grant = None
    if params.get("credit_grant"):
        grant = get_or_404(
            req, GRANT, params["credit_grant"], label="credit grant", param="credit_grant"
        )
    if customer is None and grant is None:
        raise invalid("Either customer or credit_grant is required.", param="customer")
    credits.settle(req.app, (customer or {}).get("id") or grant["customer"])
    found = req.store.all(TXN)
    if customer:
        found = [t for t in found if t["_customer"] == customer["id"]]
    if grant:
        found = [t for t in found if t["credit_grant"] == grant["id"]]
    return paginate(req.store, found, params, "/v1/billing/credit_balance_transactions")


@route("GET", "/v1/billing/credit_balance_transactions/{id}")
def retrieve_transaction(req: Request):
    txn = get_or_404(req, TXN, req.args["id"], label="credit balance transaction")
    return show(req, txn)
