"""Subscriptions: subscribe, change plan, cancel at period end. Stripe first, then mirror.

An account bills in one currency (``Account.currency``): its subscription uses the plan's
prices in that currency, and ``currency`` is passed to Stripe explicitly ("use the
`currency` parameter to tell the subscription which currency to use for the price",
https://docs.stripe.com/products-prices/manage-prices). A customer cannot hold two
active subscriptions in different currencies
(https://docs.stripe.com/invoicing/multi-currency-customers), and "The currency cannot be
updated on an ongoing subscription" (https://support.stripe.com/questions/setting-a-
customers-default-currency): a plan change stays in the account's currency.
"""

from django.db.models import QuerySet
from djstripe.models import Subscription

from billing.mirror.subscriptions import LIVE_STATUSES
from billing.models import Account, Plan
from billing.services.accounts import account_ensure_stripe_customer
from billing.stripe_api import api_key, stripe_client


class SubscriptionError(ValueError):
    pass


def plans_priced_in(currency: str) -> QuerySet[Plan]:
    """The active plans that can be offered to an account billed in ``currency``: those
    with prices in it (the catalog gives every price of a plan the same currencies)."""
    return (
        Plan.objects.filter(active=True, prices__currency=currency.lower())
        .exclude(stripe_product_id="")
        .distinct()
    )


def plans_for_account(*, account: Account) -> QuerySet[Plan]:
    """The plan picker's choices for ``account``: only plans priced in its currency."""
    return plans_priced_in(account.currency)


def _items_for(plan: Plan, currency: str) -> list[dict]:
    prices = list(plan.prices.filter(currency=currency))
    if not prices:
        priced_in = sorted(set(plan.prices.values_list("currency", flat=True)))
        raise SubscriptionError(
            f"plan {plan.key} has no prices in {currency.upper()} "
            f"(it is priced in {', '.join(c.upper() for c in priced_in) or 'nothing'})"
        )
    items = []
    for plan_price in prices:
        if not plan_price.stripe_price_id:
            raise SubscriptionError(f"plan {plan.key}: price {plan_price.lookup_key} not in Stripe")
        item = {"price": plan_price.stripe_price_id}
        if not plan_price.is_metered:
            item["quantity"] = 1
        items.append(item)
    return items


def account_current_subscription(*, account: Account) -> Subscription | None:
    return (
        Subscription.objects.filter(
            customer__subscriber=account, stripe_data__status__in=LIVE_STATUSES
        )
        .order_by("-created")
        .first()
    )


def _mirror(remote) -> Subscription:
    return Subscription.sync_from_stripe_data(remote, api_key=api_key())


def subscription_create(
    *,
    account: Account,
    plan: Plan,
    payment_method: str | None = "pm_card_visa",
    test_clock: str | None = None,
) -> Subscription:
    """Subscribe the account to the plan, creating its Stripe customer when needed."""
    if account_current_subscription(account=account) is not None:
        raise SubscriptionError(f"{account} already has a subscription; change its plan instead")
    items = _items_for(plan, account.currency)  # before anything is created in Stripe
    customer = account_ensure_stripe_customer(
        account=account, payment_method=payment_method, test_clock=test_clock
    )
    client = stripe_client()
    existing = client.v1.subscriptions.list({"customer": customer.id, "status": "active"}).data
    if existing:  # created in Stripe by an earlier attempt that failed before mirroring
        return _mirror(existing[0])
    key_tail = f"{account.currency}-{customer.id}"
    remote = client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": items,
            "currency": account.currency,
            "metadata": {"meterdesk_plan": plan.key, "meterdesk_account": str(account.pk)},
        },
        {"idempotency_key": f"meterdesk-subscribe-{account.pk}-{plan.key}-{key_tail}"},
    )
    return _mirror(remote)


def subscription_change_plan(*, account: Account, plan: Plan) -> Subscription:
    """Replace every item with the new plan's prices, from now, without proration."""
    current = account_current_subscription(account=account)
    if current is None:
        raise SubscriptionError(f"{account} has no subscription to change")
    new_items = _items_for(plan, account.currency)
    billed_in = (current.stripe_data or {}).get("currency")
    if billed_in and billed_in != account.currency:
        raise SubscriptionError(
            f"{account}'s subscription bills in {billed_in.upper()}, the account in "
            f"{account.currency.upper()}: Stripe cannot change a subscription's currency; "
            "cancel it and subscribe again"
        )
    client = stripe_client()
    remote = client.v1.subscriptions.retrieve(current.id)
    items = [{"id": item.id, "deleted": True} for item in remote["items"].data]
    remote = client.v1.subscriptions.update(
        current.id,
        {
            "items": items + new_items,
            "proration_behavior": "none",
            "metadata": {"meterdesk_plan": plan.key},
        },
    )
    return _mirror(remote)


def subscription_cancel_at_period_end(*, account: Account) -> Subscription:
    current = account_current_subscription(account=account)
    if current is None:
        raise SubscriptionError(f"{account} has no subscription to cancel")
    remote = stripe_client().v1.subscriptions.update(current.id, {"cancel_at_period_end": True})
    return _mirror(remote)
