"""Subscriptions (dahlia: ``current_period_start/end`` on items; items in
:mod:`.subscription_items`).

An update that changes licensed items prorates them (:mod:`stripe_emulator.prorations`)
by ``proration_behavior`` (https://docs.stripe.com/api/subscriptions/update):
``create_prorations`` (the default) leaves the proration invoice items pending for the
next invoice, ``always_invoice`` "create[s] prorations, automatically invoice[s] the
customer for those proration adjustments, and attempt[s] to collect payment", ``none``
makes none. The period and billing date stay as they are. Metered items are not prorated:
the period's usage is billed in arrears by the items the subscription has at its end."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import invoice_lines, invoice_payment, invoicing, prorations
from ..errors import invalid, missing_param
from ..forms import as_bool, as_dict, as_int, as_list, merge_metadata, one_of
from ..lists import paginate, present, presenter
from ..routing import Request, route
from ..store import Store
from .common import changed, get_or_404, require, show, snapshot
from .payment_methods import resolve_for_customer
from .subscription_items import add_item, change_item, check_price, plan_item_changes

if TYPE_CHECKING:
    from ..app import Emulator


@presenter("subscription")
def _present_subscription(store: Store, sub: dict) -> dict:
    raw = store.get("subscription", sub["id"])
    items = [present(store, store.get("subscription_item", i)) for i in raw["_items"]]
    sub["items"] = {
        "object": "list",
        "data": items,
        "has_more": False,
        "total_count": len(items),
        "url": f"/v1/subscription_items?subscription={sub['id']}",
    }
    return sub


def _apply(req: Request, sub: dict) -> None:
    params = req.params
    customer = req.store.get("customer", sub["customer"])
    if "metadata" in params:
        sub["metadata"] = merge_metadata(sub["metadata"], params["metadata"])
    if "description" in params:
        sub["description"] = params["description"] or None
    if "cancel_at_period_end" in params:
        sub["cancel_at_period_end"] = as_bool(
            params["cancel_at_period_end"], "cancel_at_period_end"
        )
        sub["canceled_at"] = (
            req.store.customer_now(sub["customer"]) if sub["cancel_at_period_end"] else None
        )
    if "cancel_at" in params:
        sub["cancel_at"] = as_int(params["cancel_at"], "cancel_at") if params["cancel_at"] else None
    if "collection_method" in params:
        sub["collection_method"] = one_of(
            params["collection_method"],
            "collection_method",
            ("charge_automatically", "send_invoice"),
        )
    if "days_until_due" in params:
        sub["days_until_due"] = as_int(params["days_until_due"], "days_until_due", minimum=0)
    if "default_payment_method" in params:
        ref = params["default_payment_method"]
        sub["default_payment_method"] = (
            resolve_for_customer(req, ref, customer, "default_payment_method")["id"]
            if ref
            else None
        )


def _billing_mode(raw, now: int) -> dict:
    """Since 2025-09-30.clover a subscription created through the API is ``flexible``
    unless ``billing_mode[type]=classic`` is passed (changelog: "Makes flexible billing
    mode the default for new subscriptions")."""
    requested = as_dict(raw, "billing_mode")
    mode = requested.get("type") or "flexible"
    flexible = as_dict(requested.get("flexible"), "billing_mode[flexible]")
    return {
        "type": mode,
        "flexible": (
            {"proration_discounts": flexible.get("proration_discounts") or "included"}
            if mode == "flexible"
            else None
        ),
        "updated_at": now,
    }


# Live subscriptions hold a customer to their currency; canceled and expired ones do not.
ENDED_STATUSES = ("canceled", "incomplete_expired")


def _currency(req: Request, customer: dict, specs: list[dict], *, default: str) -> str:
    """The subscription's currency: ``currency`` when given ("use the `currency` parameter
    to tell the subscription which currency to use for the price. (If you omit the
    `currency` parameter, then the Subscription uses the default currency for the
    price.)", https://docs.stripe.com/products-prices/manage-prices), else the first
    price's. Emulated prices have one currency (no ``currency_options``), so every item's
    price must be in it. A customer cannot mix currencies: "You can't have two active
    subscriptions with different currencies."
    (https://docs.stripe.com/invoicing/multi-currency-customers)"""
    raw = req.params.get("currency")
    if raw in (None, ""):
        currency = default
    else:
        currency = str(raw).lower()
        if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
            raise invalid(f"Invalid currency: {raw}", param="currency")
        for i, spec in enumerate(specs):
            price = req.store.get("price", spec.get("price") or "")
            if price is not None and price["currency"] != currency:
                raise invalid(
                    f"The price specified in items[{i}][price] ({price['id']}) is in "
                    f"`{price['currency']}`, not in the subscription's currency "
                    f"`{currency}`.",
                    param="currency",
                )
    for other in req.store.all("subscription"):
        if (
            other["customer"] == customer["id"]
            and other["status"] not in ENDED_STATUSES
            and other["currency"] != currency
        ):
            raise invalid(
                "You cannot combine currencies on a single customer. This customer has an "
                f"active subscription with currency {other['currency']}.",
                param="currency",
            )
    return currency


@route("POST", "/v1/subscriptions")
def create(req: Request):
    store, params = req.store, req.params
    customer = get_or_404(req, "customer", require(params, "customer"), param="customer")
    specs = [as_dict(s, f"items[{i}]") for i, s in enumerate(as_list(params.get("items"), "items"))]
    if not specs:
        raise missing_param("items")
    first = check_price(req, specs[0].get("price"), "items[0][price]", None)
    currency = _currency(req, customer, specs, default=first["currency"])
    now = store.customer_now(customer["id"])
    sub = {
        "id": store.new_id("subscription", 24),
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"enabled": False, "liability": None, "disabled_reason": None},
        "billing_cycle_anchor": now,
        "billing_cycle_anchor_config": None,
        "billing_mode": _billing_mode(params.get("billing_mode"), now),
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": now,
        "currency": currency,
        "customer": customer["id"],
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": now,
        "status": "incomplete",
        "test_clock": customer["test_clock"],
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
        "_items": [],
        "_cycles": 0,
        "_interval": [first["recurring"]["interval"], first["recurring"]["interval_count"]],
    }
    for i, spec in enumerate(specs):
        add_item(req, sub, spec, f"items[{i}]")
    _apply(req, sub)
    if customer["currency"] is None:
        customer["currency"] = sub["currency"]
    store.add("subscription", sub)
    req.emit("customer.subscription.created", snapshot(req, sub))
    start, end = invoicing.current_period(req.app, sub)
    lines = invoice_lines.licensed_lines(req.app, sub, start, end)
    # Metered items bill in arrears, so the first invoice charges nothing for them:
    # "For subscriptions with billing_mode=flexible, Stripe excludes metered line items
    # from the first invoice"; with classic, Stripe generates "a zero monetary value
    # invoice line item for each metered subscription item"
    # (https://docs.stripe.com/billing/subscriptions/usage-based/use-cases/credits-based-pricing-model).
    # Zero, not the price rated at quantity 0: a graduated first tier's flat fee is not
    # charged in advance.
    if sub["billing_mode"]["type"] == "classic":
        for item in invoice_lines.sub_items(req.app, sub):
            if invoice_lines.usage_type(req.app, item) == "metered":
                line = invoice_lines.make_line(req.app, sub, item, 0, start, end)
                line["amount"] = line["subtotal"] = 0
                lines.append(line)
    invoice = invoicing.new_invoice(
        req.app,
        customer,
        lines,
        now=now,
        currency=sub["currency"],
        sub=sub,
        billing_reason="subscription_create",
    )
    sub["latest_invoice"] = invoice["id"]
    invoice_payment.finalize_and_pay(req.app, invoice, now)
    return show(req, sub)


@route("GET", "/v1/subscriptions/{id}")
def retrieve(req: Request):
    return show(req, get_or_404(req, "subscription", req.args["id"]))


def proration_date(raw, param: str, *, start: int, end: int, now: int) -> int:
    """``proration_date`` (default now), within the current period."""
    if raw in (None, ""):
        return now
    at = as_int(raw, param)
    if not start <= at <= end:
        raise invalid(
            "The proration date must be within the subscription's current billing period.",
            param=param,
        )
    return at


def _pending_prorations(req: Request, sub: dict, lines: list[dict], now: int) -> None:
    """``create_prorations``: the lines become pending invoice items (``proration:
    true``) billed with the subscription's next invoice ("a downgrade generates a credit
    that is applied to the next invoice", https://docs.stripe.com/api/subscriptions/update)."""
    store = req.store
    for line in lines:
        details = line["parent"]["subscription_item_details"]
        item = {
            "id": store.new_id("invoiceitem", 24),
            "object": "invoiceitem",
            "amount": line["amount"],
            "currency": line["currency"],
            "customer": sub["customer"],
            "customer_account": None,
            "date": now,
            "description": line["description"],
            "discountable": False,
            "discounts": [],
            "invoice": None,
            "livemode": False,
            "metadata": {},
            "net_amount": line["amount"],
            "parent": {
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": sub["id"],
                    "subscription_item": details["subscription_item"],
                },
            },
            "period": dict(line["period"]),
            "pricing": dict(line["pricing"]),
            "proration": True,
            "proration_details": {"credited_items": None, "discount_amounts": []},
            "quantity": line["quantity"],
            "quantity_decimal": line["quantity_decimal"],
            "tax_rates": [],
            "test_clock": sub["test_clock"],
        }
        store.add("invoiceitem", item)
        req.emit("invoiceitem.created", snapshot(req, item))


def invoice_prorations(app: Emulator, sub: dict, lines: list[dict], now: int, *, store_it=True):
    """``always_invoice``: one invoice now with the prorations and the subscription's
    pending invoice items (stored, finalized and charged; or a preview)."""
    customer = app.store.get("customer", sub["customer"])
    items, item_lines = invoicing._pending_items(app, sub)
    invoice = invoicing.new_invoice(
        app,
        customer,
        lines + item_lines,
        now=now,
        currency=sub["currency"],
        sub=sub,
        billing_reason="subscription_update",
        period=(now, now),
        store_it=store_it,
    )
    if not store_it:  # create_preview shows the customer balance on its answer
        return invoice
    for item in items:
        item["invoice"] = invoice["id"]
    sub["latest_invoice"] = invoice["id"]
    # Finalizing re-figures the totals and applies the customer's balance: a negative
    # total (a downgrade) is not charged, its credit goes to the balance for later
    # invoices (stripe_emulator.customer_balance).
    invoice_payment.finalize(app, invoice, now)
    if invoice["amount_due"] == 0:
        invoice_payment.mark_paid(app, invoice, now)
    elif invoice["collection_method"] == "charge_automatically":
        invoice_payment.attempt_payment(app, invoice, now)
    return invoice


class Proration:
    """A change's prorations: the licensed items before it (:meth:`begin`, which also
    validates ``proration_behavior`` and ``proration_date`` of the request), then
    :meth:`finish` after it. Used by the subscription update and the item routes, which
    Stripe prorates alike (``proration_behavior`` "defaults to create_prorations")."""

    def __init__(self, req: Request, sub: dict):
        self.req, self.sub = req, sub
        self.now = req.store.customer_now(sub["customer"])
        self.start, self.end = invoicing.current_period(req.app, sub)
        self.behaviour = req.params.get("proration_behavior") or "create_prorations"
        self.at = proration_date(
            req.params.get("proration_date"),
            "proration_date",
            start=self.start,
            end=self.end,
            now=self.now,
        )
        items = invoice_lines.sub_items(req.app, sub)
        self.before = {
            key: dict(item) for key, item in prorations.licensed_state(req.app, items).items()
        }

    def finish(self) -> None:
        app, sub = self.req.app, self.sub
        lines = []
        if self.behaviour != "none":
            after = prorations.licensed_state(app, invoice_lines.sub_items(app, sub))
            lines = prorations.proration_lines(
                app, sub, self.before, after, start=self.start, end=self.end, at=self.at
            )
        if self.behaviour == "always_invoice" and (lines or invoicing._pending_items(app, sub)[0]):
            invoice_prorations(app, sub, lines, self.now)
        elif lines:
            _pending_prorations(self.req, sub, lines, self.now)


@route("POST", "/v1/subscriptions/{id}")
def update(req: Request):
    sub = get_or_404(req, "subscription", req.args["id"])
    if sub["status"] == "canceled":
        raise invalid(
            "A canceled subscription can only update its cancellation_details and metadata."
        )
    proration = Proration(req, sub)
    before = snapshot(req, sub)
    removals, updates, additions = plan_item_changes(req, sub)
    for item, spec, param in updates:
        change_item(req, item, spec, param)
    for item in removals:
        sub["_items"].remove(item["id"])
        req.store.delete("subscription_item", item["id"])
    for spec, param in additions:
        add_item(req, sub, spec, param)
    _apply(req, sub)
    after = snapshot(req, sub)
    req.emit("customer.subscription.updated", after, changed(before, after))
    if "items" in req.params:
        proration.finish()
    return show(req, sub)


def cancel_subscription(app: Emulator, sub: dict, *, now: int, invoice_now=False) -> None:
    if invoice_now:
        start, _ = invoicing.current_period(app, sub)
        lines = invoice_lines.metered_lines(app, sub, start, now)
        customer = app.store.get("customer", sub["customer"])
        if lines and customer:
            invoice = invoicing.new_invoice(
                app,
                customer,
                lines,
                now=now,
                currency=sub["currency"],
                sub=sub,
                billing_reason="subscription_cycle",
                period=(start, now),
            )
            sub["latest_invoice"] = invoice["id"]
            invoice_payment.finalize_and_pay(app, invoice, now)
    invoicing.end_subscription(app, sub, now)


@route("DELETE", "/v1/subscriptions/{id}")
def cancel(req: Request):
    sub = get_or_404(req, "subscription", req.args["id"])
    if sub["status"] == "canceled":
        raise invalid("This subscription is already canceled.")
    details = as_dict(req.params.get("cancellation_details"), "cancellation_details")
    for key in ("comment", "feedback"):
        if key in details:
            sub["cancellation_details"][key] = details[key] or None
    sub["cancellation_details"]["reason"] = "cancellation_requested"
    cancel_subscription(
        req.app,
        sub,
        now=req.store.customer_now(sub["customer"]),
        invoice_now=as_bool(req.params.get("invoice_now", False), "invoice_now"),
    )
    return show(req, sub)


@route("GET", "/v1/subscriptions")
def list_(req: Request):
    params = req.params
    objs = req.store.all("subscription")
    status = params.get("status")
    if status and status != "all":
        objs = [s for s in objs if s["status"] == status]
    elif not status:
        objs = [s for s in objs if s["status"] not in ("canceled", "incomplete_expired")]
    for key in ("customer", "test_clock", "collection_method"):
        if params.get(key):
            objs = [s for s in objs if s[key] == params[key]]
    if not params.get("test_clock") and not params.get("customer"):
        # Stripe: "The response will not include subscriptions with test clocks if this
        # and the customer parameter is not set." (SubscriptionListParams.test_clock)
        objs = [s for s in objs if not s["test_clock"]]
    if params.get("price"):
        objs = [
            s
            for s in objs
            if any(
                req.store.get("subscription_item", i)["price"] == params["price"]
                for i in s["_items"]
            )
        ]
    return paginate(req.store, objs, params, "/v1/subscriptions")
