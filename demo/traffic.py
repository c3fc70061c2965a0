"""Live demo traffic through the real ingestion API, at each account's seeded rates, and
the demo's Stripe test clocks kept up with real time.

The seeded history (``demo.seed``) gives each meter a daily rate that grows from
``MeterPlan.per_day`` by ``growth`` a day and follows the weekday pattern
(``demo.accounts.WEEKDAY``) and the hours of the day (``HOURLY``). Live traffic carries
on where the history stops, at the same rates: in a simulated hour a meter receives on
average ``expected_day_total × HOURLY[hour] / Σ HOURLY`` units (a Poisson draw per tick),
so the dashboards' projections, fitted on the history, stay within their ranges.
"""

import math
import random
from datetime import datetime, timedelta

from django.utils import timezone

from billing.mirror.customers import customer_id_for_account
from billing.models import Account
from billing.stripe_api import stripe_client
from demo.accounts import ACCOUNTS, HOURLY, DemoAccount, MeterPlan, expected_day_total
from demo.accounts import history_start as history_start_of

DAY = timedelta(days=1)


def hourly_rate(meter: MeterPlan, *, start: datetime, at: datetime) -> float:
    """Units per hour of ``meter`` at ``at`` for a history begun at ``start``: the
    seeded daily rate of that day (growth, weekday) times the share of its hour."""
    elapsed = at - start
    day_index = max(0, elapsed // DAY)
    hour = int((elapsed - day_index * DAY).total_seconds() // 3600) % 24
    day = start + day_index * DAY
    return expected_day_total(meter, day_index, day) * HOURLY[hour] / sum(HOURLY)


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; a rounded normal for large means)."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def tick_events(
    *,
    spec: DemoAccount,
    customer_id: str,
    start: datetime,
    now: datetime,
    seconds: float,
    rng: random.Random,
) -> list[dict]:
    """The events of one account for ``seconds`` of traffic ending at ``now``."""
    events = []
    for meter in spec.meters:
        if meter.last_values:
            continue  # seats: a level set once a day by the seed, not live traffic
        units = hourly_rate(meter, start=start, at=now) * seconds / 3600
        if meter.events_per_day:  # a sum meter: a few events carrying many units
            day_index = max(0, (now - start) // DAY)
            day_total = expected_day_total(meter, day_index, start + day_index * DAY)
            per_event = max(1.0, day_total / meter.events_per_day)
            values = [
                max(1, round(rng.gauss(per_event, per_event * 0.3)))
                for _ in range(poisson(rng, units / per_event))
            ]
        else:
            values = [1] * poisson(rng, units)
        events += [
            {
                "event_name": meter.event_name,
                "customer": customer_id,
                "value": value,
                "timestamp": int(now.timestamp()),
                "identifier": f"live-{spec.slug}-{rng.getrandbits(64):016x}",
            }
            for value in values
        ]
    return events


def traffic_tick(
    *, rng: random.Random, base_url: str, key: str, session, clocks_to_now: bool, seconds=2.0
):
    """One beat of live traffic: each demo account's events for the last ``seconds``
    through the real API. Returns (HTTP status or None when nothing was due, events)."""
    now = timezone.now()
    events = []
    for spec in ACCOUNTS:
        account = Account.objects.filter(name=spec.name).first()
        customer_id = customer_id_for_account(account=account) if account else None
        if customer_id is None:
            continue
        start = history_start_of(account.created_at)
        events += tick_events(
            spec=spec, customer_id=customer_id, start=start, now=now, seconds=seconds, rng=rng
        )
    if clocks_to_now:
        client = stripe_client()
        for clock in client.v1.test_helpers.test_clocks.list({"limit": 100}).data:
            if clock.status == "ready" and clock.frozen_time < now.timestamp() - 30:
                client.v1.test_helpers.test_clocks.advance(
                    clock.id, {"frozen_time": math.floor(now.timestamp())}
                )
    if not events:
        return None, 0
    response = session.post(
        f"{base_url}/api/v1/usage/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    return response.status_code, len(events)
