"""Subscriptions: subscribe, change plan, cancel at period end. Stripe first, then mirror."""

from djstripe.models import Subscription

from billing.mirror.subscriptions import LIVE_STATUSES
from billing.models import Account, Plan
from billing.services.accounts import account_ensure_stripe_customer
from billing.stripe_api import api_key, stripe_client


class SubscriptionError(ValueError):
    pass


def _items_for(plan: Plan) -> list[dict]:
    items = []
    for plan_price in plan.prices.all():
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
    customer = account_ensure_stripe_customer(
        account=account, payment_method=payment_method, test_clock=test_clock
    )
    client = stripe_client()
    existing = client.v1.subscriptions.list({"customer": customer.id, "status": "active"}).data
    if existing:  # created in Stripe by an earlier attempt that failed before mirroring
        return _mirror(existing[0])
    remote = client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": _items_for(plan),
            "metadata": {"meterdesk_plan": plan.key, "meterdesk_account": str(account.pk)},
        },
        {"idempotency_key": f"meterdesk-subscribe-{account.pk}-{plan.key}-{customer.id}"},
    )
    return _mirror(remote)


def subscription_change_plan(*, account: Account, plan: Plan) -> Subscription:
    """Replace every item with the new plan's prices, from now, without proration."""
    current = account_current_subscription(account=account)
    if current is None:
        raise SubscriptionError(f"{account} has no subscription to change")
    client = stripe_client()
    remote = client.v1.subscriptions.retrieve(current.id)
    items = [{"id": item.id, "deleted": True} for item in remote["items"].data]
    remote = client.v1.subscriptions.update(
        current.id,
        {
            "items": items + _items_for(plan),
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
