import pytest
from djstripe.models import Customer

from billing.mirror.subscriptions import subscription_state_for_account
from billing.services.accounts import account_create
from billing.services.subscriptions import (
    SubscriptionError,
    account_current_subscription,
    subscription_cancel_at_period_end,
    subscription_change_plan,
    subscription_create,
)

pytestmark = pytest.mark.django_db


def _price_ids(stripe_client, subscription_id: str) -> set[str]:
    remote = stripe_client.v1.subscriptions.retrieve(subscription_id)
    return {item.price.id for item in remote["items"].data}


def test_subscribe_creates_the_customer_once_and_refuses_a_second_subscription(
    stripe_client, demo_catalog
):
    account = account_create(name="Initech", billing_email="ap@initech.example")
    assert not Customer.objects.filter(subscriber=account).exists()
    subscription = subscription_create(account=account, plan=demo_catalog["pro"])
    customer = Customer.objects.get(subscriber=account)
    assert stripe_client.v1.customers.retrieve(customer.id).email == "ap@initech.example"
    expected = set(demo_catalog["pro"].prices.values_list("stripe_price_id", flat=True))
    assert _price_ids(stripe_client, subscription.id) == expected
    with pytest.raises(SubscriptionError, match="already has a subscription"):
        subscription_create(account=account, plan=demo_catalog["starter"])
    assert len(stripe_client.v1.subscriptions.list({"customer": customer.id}).data) == 1


def test_change_plan_replaces_every_item_and_the_mirror_follows(stripe_client, demo_catalog):
    account = account_create(name="Initech", billing_email="ap@initech.example")
    subscription_create(account=account, plan=demo_catalog["pro"])
    changed = subscription_change_plan(account=account, plan=demo_catalog["growth"])
    growth_prices = set(demo_catalog["growth"].prices.values_list("stripe_price_id", flat=True))
    assert _price_ids(stripe_client, changed.id) == growth_prices
    state = subscription_state_for_account(account=account)
    assert state.plan.key == "growth"
    assert [item.meter.event_name for item in state.metered_items] == ["data_transfer_gb"]
    assert state.licensed_items == ()  # Growth has no base fee


def test_cancel_at_period_end_keeps_the_subscription_until_then(stripe_client, demo_catalog):
    account = account_create(name="Initech", billing_email="ap@initech.example")
    subscription_create(account=account, plan=demo_catalog["starter"])
    canceled = subscription_cancel_at_period_end(account=account)
    assert stripe_client.v1.subscriptions.retrieve(canceled.id).cancel_at_period_end is True
    assert account_current_subscription(account=account).id == canceled.id
    assert subscription_state_for_account(account=account).cancel_at_period_end is True


def test_changing_or_canceling_without_a_subscription_is_a_clear_error(stripe_emulator, db):
    account = account_create(name="Nobody", billing_email="n@example.com")
    with pytest.raises(SubscriptionError, match="no subscription to change"):
        subscription_change_plan(account=account, plan=None)
    with pytest.raises(SubscriptionError, match="no subscription to cancel"):
        subscription_cancel_at_period_end(account=account)
