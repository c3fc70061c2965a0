import pytest
from django.test import Client

from billing.models import Account
from billing.services.accounts import account_ensure_stripe_customer
from usage.services.keys import ingest_key_create

EVENTS_URL = "/api/v1/usage/events"
SUMMARY_URL = "/api/v1/usage/summary"


@pytest.fixture
def ingest_key(db) -> str:
    _, raw_key = ingest_key_create(name="tests")
    return raw_key


class Api:
    def __init__(self, key: str):
        self.client = Client()
        self.key = key

    def post(self, body, *, key: str | None = None, content_type="application/json", raw=None):
        headers = {"Authorization": f"Bearer {key or self.key}"} if (key or self.key) else {}
        import json

        data = raw if raw is not None else json.dumps(body)
        return self.client.post(EVENTS_URL, data=data, content_type=content_type, headers=headers)

    def summary(self, **params):
        return self.client.get(SUMMARY_URL, params, headers={"Authorization": f"Bearer {self.key}"})


@pytest.fixture
def api(ingest_key) -> Api:
    return Api(ingest_key)


@pytest.fixture
def make_customers(demo_catalog):
    """Accounts with Stripe customers in the emulator: returns their ``cus_`` ids."""

    def make(n: int, prefix: str = "Org") -> list[str]:
        ids = []
        for i in range(n):
            account = Account.objects.create(name=f"{prefix} {i}", billing_email=f"o{i}@x.test")
            ids.append(account_ensure_stripe_customer(account=account, payment_method=None).id)
        return ids

    return make


@pytest.fixture
def customer(make_customers) -> str:
    return make_customers(1)[0]


@pytest.fixture
def subscribe(demo_catalog):
    """Subscribe the account of a ``cus_`` id to a demo plan (default: pro)."""
    from billing.services.subscriptions import subscription_create

    def do(customer_id: str, plan: str = "pro"):
        account = Account.objects.get(djstripe_customers__id=customer_id)
        return subscription_create(account=account, plan=demo_catalog[plan], payment_method=None)

    return do


def stripe_total(client, *, event_name: str, customer: str, start, end) -> int:
    """What Stripe (the emulator) aggregated for the customer over the minute-aligned
    window covering [start, end): Stripe refuses bounds off minute boundaries, and these
    tests have no reports of neighbouring periods in the edge minutes."""
    from decimal import Decimal

    from billing.models import Meter
    from usage.services.reconciliation_window import covering_window

    meter = Meter.objects.get(event_name=event_name)
    start, end = covering_window(start=start, end=end)
    page = client.v1.billing.meters.event_summaries.list(
        meter.stripe_id,
        {
            "customer": customer,
            "start_time": int(start.timestamp()),
            "end_time": int(end.timestamp()),
        },
    )
    total = sum((Decimal(str(s.aggregated_value)) for s in page.auto_paging_iter()), Decimal(0))
    assert total == total.to_integral_value()
    return int(total)
