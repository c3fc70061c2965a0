"""Live demo traffic: a few events per demo account through the real ingestion API, and
the demo's Stripe test clocks kept up with real time."""

import math
import random

from django.utils import timezone

from billing.mirror.customers import customer_id_for_account
from billing.models import Account
from billing.stripe_api import stripe_client
from demo.accounts import ACCOUNTS


def traffic_tick(*, rng: random.Random, base_url: str, key: str, session, clocks_to_now: bool):
    """One beat of live traffic: a few events for each demo account through the real API."""
    now = timezone.now()
    events = []
    for spec in ACCOUNTS:
        account = Account.objects.filter(name=spec.name).first()
        customer_id = customer_id_for_account(account=account) if account else None
        if customer_id is None:
            continue
        for meter in spec.meters:
            if meter.last_values:
                continue
            rate = meter.per_day / 24 / 60 / 30  # events per 2 s at the start rate
            count = max(1, int(rng.expovariate(1 / max(rate * 3, 0.5))))
            for _ in range(min(count, 50)):
                events.append(
                    {
                        "event_name": meter.event_name,
                        "customer": customer_id,
                        "value": 1 if not meter.events_per_day else max(1, int(rng.gauss(1, 0.5))),
                        "timestamp": int(now.timestamp()),
                        "identifier": f"live-{spec.slug}-{rng.getrandbits(64):016x}",
                    }
                )
    if clocks_to_now:
        client = stripe_client()
        for clock in client.v1.test_helpers.test_clocks.list({"limit": 100}).data:
            if clock.status == "ready" and clock.frozen_time < now.timestamp() - 30:
                client.v1.test_helpers.test_clocks.advance(
                    clock.id, {"frozen_time": math.floor(now.timestamp())}
                )
    response = session.post(
        f"{base_url}/api/v1/usage/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    return response.status_code, len(events)
