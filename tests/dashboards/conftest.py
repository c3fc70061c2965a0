import pytest
from django.contrib.auth import get_user_model

from billing.models import Membership
from billing.services.accounts import account_create, membership_add
from billing.services.subscriptions import subscription_create
from usage.services.ingest import usage_events_ingest


def make_user(account, username: str, role: str = Membership.Role.OWNER):
    user = get_user_model().objects.create_user(username, password=f"pw-{username}-123")
    membership_add(account=account, user=user, role=role)
    return user


def ingest(customer_id: str, event_name: str, values: list[int], prefix: str) -> None:
    events = [
        {
            "event_name": event_name,
            "customer": customer_id,
            "value": v,
            "identifier": f"{prefix}-{i}",
        }
        for i, v in enumerate(values)
    ]
    for start in range(0, len(events), 1000):
        result = usage_events_ingest(events=events[start : start + 1000])
        assert result.as_dict()["rejected"] == [], result.as_dict()["rejected"][:3]


@pytest.fixture
def pro_account(demo_catalog):
    """Acme on Pro ($99 base, 10,000 API calls included, then 0.2¢; $10 a seat) with
    10,500 API calls and 3 seats this period."""
    account = account_create(name="Acme Analytics", billing_email="billing@acme.example")
    subscription_create(account=account, plan=demo_catalog["pro"])
    customer_id = account.djstripe_customers.get().id
    ingest(customer_id, "api_calls", [1] * 10_500, "acme-call")
    ingest(customer_id, "seats", [2, 3], "acme-seat")
    return account


@pytest.fixture
def other_account(demo_catalog):
    account = account_create(name="Globex", billing_email="billing@globex.example")
    subscription_create(account=account, plan=demo_catalog["starter"])
    return account
