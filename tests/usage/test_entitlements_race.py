"""Acceptance 2 of issue 16: 8 parallel ingest clients push one customer over a
10,000-unit hard cap through the real HTTP API (the live server). Exactly one ingest
answer names the crossing, every check made after that answer denies, every check
finished before the crossing batch was sent allows, and no event is lost: the ledger
holds all 12,000 (caps are enforced by the operator's backend, never by dropping usage).

Redis: CI's (``REDIS_URL``), else a private redis-server; the exactly-once crossing rests
on its one-script-at-a-time increments. On SQLite the live server's writes queue for
the database lock, on PostgreSQL they run in parallel; both are meaningful here.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests

from billing.models import Account, Meter
from tests.usage.test_entitlements import (  # noqa: F401  (fixtures)
    entitlement_redis_url,
    redis_state,
)
from usage.models import Budget, UsageEvent
from usage.selectors.rollups import rollup_value
from usage.services import entitlement_state
from usage.services.keys import ingest_key_create

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 8
BATCHES = 5  # per client
BATCH = 300  # events per batch: 8 x 5 x 300 = 12,000 API calls, one unit each
CAP = 10_000
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def test_parallel_clients_cross_a_units_cap_once_and_lose_nothing(
    redis_state,  # noqa: F811
    live_server,
    make_customers,
    subscribe,
):
    [customer] = make_customers(1, prefix="Race")
    subscribe(customer, "starter")  # API calls, a count meter: each event is one unit
    account = Account.objects.get(djstripe_customers__id=customer)
    meter = Meter.objects.get(event_name="api_calls")
    Budget.objects.create(account=account, kind="units", meter=meter, limit=CAP, hard_cap=True)
    _, key = ingest_key_create(name="race")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    check_url = f"{live_server.url}/api/v1/entitlements/check"
    params = {"customer": customer, "event_name": "api_calls"}

    def check() -> dict:
        response = session.get(check_url, params=params, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    assert check()["remaining"] == CAP  # warms the state, as the README says
    lock = threading.Lock()
    posts, checks = [], []  # (sent, answered, body) / (started, answered, body)

    def client(n: int) -> None:
        for b in range(BATCHES):
            events = [
                {"event_name": "api_calls", "customer": customer, "identifier": f"r{n}-{b}-{i}"}
                for i in range(BATCH)
            ]
            sent = time.monotonic()
            response = session.post(
                f"{live_server.url}/api/v1/usage/events", json={"events": events}, timeout=60
            )
            answered = time.monotonic()
            assert response.status_code == 202, response.text
            started = time.monotonic()
            body = check()
            with lock:
                posts.append((sent, answered, response.json()))
                checks.append((started, time.monotonic(), body))

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        for future in [pool.submit(client, n) for n in range(CLIENTS)]:
            future.result()

    # No event is lost: every batch accepted whole, the ledger and rollups hold 12,000.
    assert sum(body["accepted"] for _, _, body in posts) == CLIENTS * BATCHES * BATCH
    assert UsageEvent.objects.filter(account=account).count() == 12_000
    assert rollup_value(account_id=account.pk, meter=meter, start=EVER[0], end=EVER[1]) == 12_000

    # Exactly one answer names the crossing, with one of its own events.
    crossing = [(sent, answered, body) for sent, answered, body in posts if body["caps_crossed"]]
    assert len(crossing) == 1
    sent, answered, body = crossing[0]
    [crossed] = body["caps_crossed"]
    assert (crossed["customer"], crossed["event_name"], crossed["budget"], crossed["limit"]) == (
        customer, "api_calls", "units", CAP,
    )  # fmt: skip
    assert crossed["identifier"] in body["identifiers"]

    # The check denies within one batch: every check started after the crossing answer
    # denies (none of them may allow); every check done before that batch was sent
    # allows (usage was below 10,000 then).
    after = [b for started, _, b in checks if started >= answered]
    before = [b for _, done, b in checks if done < sent]
    assert after and all(not b["allowed"] and b["reason"] == "cap_reached" for b in after)
    assert all(b["allowed"] for b in before)
    assert check() == {**check(), "allowed": False, "reason": "cap_reached", "remaining": 0}

    # Redis' count equals the ledger's: no increment lost or doubled under the race.
    raw = entitlement_state.handle().client.hget(
        entitlement_state.key("use", account.pk), f"m:{meter.pk}"
    )
    assert int(raw) == 12_000
