"""The entitlement check API (issue 16): hard caps with hand-worked prices, the access
reasons, bad input, and the same answers from Redis and from the database.

Every test that checks runs twice: against Redis (``REDIS_URL`` in CI, else a private
redis-server) and from the database alone. Subscriptions live on a Stripe test clock
frozen at Sep 1 2026 and every check is made at Sep 5 2026 12:00 UTC (time_machine).
"""

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from django.test import Client

from billing.catalog.spec import load_catalog
from billing.models import Account, Meter, Plan
from billing.services.accounts import (
    account_apply_stripe_event,
    account_create,
    account_ensure_stripe_customer,
)
from billing.services.catalog import catalog_apply
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from tests.conftest import ROOT
from tests.reliability.brokers import REDIS_SERVER, ThrowawayRedis
from usage.entitlement_views import key_cache_clear
from usage.models import Budget, UsageEvent
from usage.services import entitlement_state

pytestmark = pytest.mark.django_db

START = datetime(2026, 9, 1, tzinfo=UTC)  # the test clock: each period starts on the 1st
NOW = datetime(2026, 9, 5, 12, tzinfo=UTC)
RENEWED = datetime(2026, 10, 1, 1, 1, tzinfo=UTC)  # past the period end and the draft hour
CHECK_URL = "/api/v1/entitlements/check"
EVENTS_URL = "/api/v1/usage/events"

# $100 a month, and data transfer on graduated tiers: the first 100 GB at $1, the next
# 900 at 25¢ plus a $5 platform fee once entered, then 1¢ a GB.
CAPPED = """
[plans.capped]
name = "Capped"
description = "A base fee and data transfer on graduated tiers."
interval = "month"
[[plans.capped.prices]]
lookup_key = "capped_base"
nickname = "Capped base fee"
unit_amount = 10000
[[plans.capped.prices]]
lookup_key = "capped_gb"
nickname = "Data transfer"
meter = "data_transfer_gb"
tiers_mode = "graduated"
tiers = [
  { up_to = 100, unit_amount = 100 },
  { up_to = 1000, unit_amount = 25, flat_amount = 500 },
  { up_to = "inf", unit_amount = 1 },
]
"""


# -- state: Redis or the database ------------------------------------------------------------
@pytest.fixture(scope="session")
def entitlement_redis_url(tmp_path_factory):
    """CI's Redis, else one private redis-server for the session."""
    import os

    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed and REDIS_URL is not set")
    server = ThrowawayRedis(tmp_path_factory.mktemp("entitlement-redis"))
    server.start()
    yield server.url
    server.kill()


def use_redis(settings, url: str) -> None:
    settings.REDIS_URL = url
    # A fresh namespace per test: account ids repeat between tests on SQLite.
    settings.ENTITLEMENT_KEY_PREFIX = f"test-{uuid.uuid4().hex}:"


@pytest.fixture(params=["redis", "database"])
def state_mode(request, settings):
    entitlement_state.state_reset()
    key_cache_clear()
    if request.param == "redis":
        use_redis(settings, request.getfixturevalue("entitlement_redis_url"))
    else:
        settings.REDIS_URL = ""
    yield request.param
    entitlement_state.state_reset()
    key_cache_clear()


# -- customers on a test clock -------------------------------------------------------------
@pytest.fixture
def capped_plan(stripe_emulator, tmp_path):
    path = tmp_path / "catalog.toml"
    path.write_text((ROOT / "billing" / "catalog" / "demo.toml").read_text() + CAPPED)
    catalog_apply(catalog=load_catalog(path))
    return {plan.key: plan for plan in Plan.objects.all()}


@pytest.fixture
def on_clock(stripe_client, capped_plan):
    """``on_clock(plan key)`` -> (account, clock id, customer id): subscribed at START."""
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(START.timestamp())}
    )

    def make(plan: str, name: str = "Acme"):
        account = account_create(name=name, billing_email=f"ap@{name.lower()}.example")
        customer = account_ensure_stripe_customer(
            account=account, payment_method="pm_card_visa", test_clock=clock.id
        )
        subscription_create(account=account, plan=capped_plan[plan])
        return account, clock.id, customer.id

    return make


class Backend:
    """The operator's backend: the ingestion and check APIs with an ingest key."""

    def __init__(self, key: str):
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {key}"}

    def check(self, customer: str, event_name: str, quantity=None, status=200) -> dict:
        params = {"customer": customer, "event_name": event_name}
        if quantity is not None:
            params["quantity"] = quantity
        response = self.client.get(CHECK_URL, params, headers=self.headers)
        assert response.status_code == status, response.content
        return response.json()

    def batch(self, checks: list, status=200) -> dict:
        response = self.client.post(
            CHECK_URL, json.dumps({"checks": checks}), "application/json", headers=self.headers
        )
        assert response.status_code == status, response.content
        return response.json()

    def ingest(self, customer: str, event_name: str, values: list[int], prefix: str) -> dict:
        events = [
            {"event_name": event_name, "customer": customer, "value": v,
             "identifier": f"{prefix}-{i}"}
            for i, v in enumerate(values)
        ]  # fmt: skip
        response = self.client.post(
            EVENTS_URL, json.dumps({"events": events}), "application/json", headers=self.headers
        )
        assert response.status_code == 202, response.content
        body = response.json()
        assert body["rejected"] == []
        return body


@pytest.fixture
def backend(ingest_key) -> Backend:
    return Backend(ingest_key)


def answer(allowed, reason, remaining, resets_at="2026-10-01T00:00:00Z") -> dict:
    return {"allowed": allowed, "reason": reason, "remaining": remaining, "resets_at": resets_at}


# -- acceptance 1 --------------------------------------------------------------------------
def test_spend_cap_on_a_graduated_plan_answers_at_499_99_then_denies_then_resets(
    state_mode, on_clock, backend, stripe_client
):
    account, clock, customer = on_clock("capped")
    Budget.objects.create(
        account=account, kind="spend", currency="usd", limit=50_000, hard_cap=True
    )
    gb = "data_transfer_gb"
    with time_machine.travel(NOW, tick=False):
        # Nothing used: 10,000¢ base; room 40,000¢ for data transfer: 100 x 100 = 10,000
        # at 100 GB, + 500 + 900 x 25 = 33,000 at 1,000 GB, + 7,000 x 1 at 8,000 GB.
        assert backend.check(customer, gb) == answer(True, "ok", 8_000)
        # 7,999 GB: 10,000 + 10,000 + (500 + 22,500) + 6,999 x 1 = 49,999¢ = $499.99.
        body = backend.ingest(customer, gb, [4_000, 3_999], "gb")
        assert body["caps_crossed"] == []
        # One more GB makes 50,000¢ = $500.00, not over the limit; the 2nd would be.
        assert backend.check(customer, gb) == answer(True, "ok", 1)
        assert backend.check(customer, gb, quantity=2) == answer(False, "cap_reached", 1)
        # The event that crosses: 2 GB -> 8,001 GB = 50,001¢ > $500.
        body = backend.ingest(customer, gb, [2], "crossing")
        assert body["caps_crossed"] == [
            {"identifier": "crossing-0", "customer": customer, "event_name": gb,
             "budget": "spend", "limit": 50_000}
        ]  # fmt: skip
        assert backend.check(customer, gb) == answer(False, "cap_reached", 0)
        assert backend.check(customer, gb, quantity=0) == answer(True, "ok", 0)
        # Usage is never dropped: the operator's backend enforces the cap.
        body = backend.ingest(customer, gb, [5], "over")
        assert (body["accepted"], body["caps_crossed"]) == (1, [])
    assert UsageEvent.objects.filter(account=account).count() == 4

    # The next period: the clock renews the subscription (Oct 1 - Nov 1), the mirror
    # syncs, and the usage starts from zero: 8,000 GB fit again, as on Sep 5.
    test_clock_advance(client=stripe_client, clock_id=clock, to=RENEWED)
    assert not stripe_sync_everything().errors
    with time_machine.travel(RENEWED, tick=False):
        assert backend.check(customer, gb) == answer(True, "ok", 8_000, "2026-11-01T00:00:00Z")


def test_remaining_is_exact_for_per_unit_volume_and_units_caps(state_mode, on_clock, backend):
    starter, _, starter_cus = on_clock("starter", "Starter")
    growth, _, growth_cus = on_clock("growth", "Growth")
    Budget.objects.create(account=starter, kind="spend", currency="usd", limit=100, hard_cap=True)
    Budget.objects.create(account=growth, kind="spend", currency="usd", limit=10_000, hard_cap=True)
    with time_machine.travel(NOW, tick=False):
        backend.ingest(starter_cus, "api_calls", [1] * 4, "calls")
        backend.ingest(growth_cus, "data_transfer_gb", [50], "gb")
        # Per unit, 0.1¢ a call, the line rounded half up once: 1,004 calls = 100.4¢ ->
        # 100¢ fits a $1 cap, 1,005 = 100.5¢ -> 101¢ does not; 4 used: 1,000 left.
        assert backend.check(starter_cus, "api_calls", 1_000) == answer(True, "ok", 1_000)
        assert backend.check(starter_cus, "api_calls", 1_001)["allowed"] is False
        # Volume: every GB at the rate of the tier the total falls in, plus its flat
        # fee. Up to 1,000 GB at most 1,000 + 8 x 1,000 = 9,000¢; above, 2,000 + 5 x q
        # <= 10,000 up to q = 1,600 GB (the cheaper tier keeps it under the cap).
        # 50 GB used (500 + 50 x 10 = 1,000¢ so far): 1,550 GB left.
        assert backend.check(growth_cus, "data_transfer_gb", 1_550) == answer(True, "ok", 1_550)
        assert backend.check(growth_cus, "data_transfer_gb", 1_551)["reason"] == "cap_reached"
        # A units cap as well: the smaller of the two applies (600 - 4 = 596 calls).
        Budget.objects.create(
            account=starter, kind="units", meter=Meter.objects.get(event_name="api_calls"),
            limit=600, hard_cap=True,
        )  # fmt: skip
        entitlement_state.snapshot_invalidate(starter.pk)  # on_commit does not run here
        assert backend.check(starter_cus, "api_calls") == answer(True, "ok", 596)
        # A budget without hard_cap only alerts: it never limits the answer.
        Budget.objects.filter(account=growth).update(hard_cap=False)
        entitlement_state.snapshot_invalidate(growth.pk)
        assert backend.check(growth_cus, "data_transfer_gb", 10**9) == answer(True, "ok", None)


def test_last_meter_quantity_is_the_level_asked_for(state_mode, on_clock, backend):
    account, _, customer = on_clock("pro", "Pro")
    Budget.objects.create(
        account=account, kind="spend", currency="usd", limit=15_000, hard_cap=True
    )
    with time_machine.travel(NOW, tick=False):
        backend.ingest(customer, "seats", [3], "seats")
        # Pro: $99 base + API calls (none yet: 0) + $10 a seat. With seats at level L
        # the bill is 9,900 + 1,000 x L <= 15,000 up to L = 5, whatever the level now (3).
        assert backend.check(customer, "seats", 5) == answer(True, "ok", 5)
        assert backend.check(customer, "seats", 6) == answer(False, "cap_reached", 5)
        # API calls: 3 seats bill 12,900¢; 10,000 calls are free, then 0.2¢ each, the line
        # rounded half up: 2,100¢ of room holds 10,000 + 10,502 calls (2,100.4 -> 2,100).
        assert backend.check(customer, "api_calls") == answer(True, "ok", 20_502)


# -- access control ------------------------------------------------------------------------
def test_reasons_for_each_account_state(
    state_mode, on_clock, backend, django_capture_on_commit_callbacks, settings
):
    account, _, customer = on_clock("capped")
    plain = account_create(name="No plan", billing_email="np@x.example")
    no_plan = account_ensure_stripe_customer(account=plain, payment_method=None).id
    gb = "data_transfer_gb"
    with time_machine.travel(NOW, tick=False):
        assert backend.check("cus_nobody", gb) == answer(False, "no_subscription", None, None)
        assert backend.check(no_plan, gb) == answer(False, "no_subscription", None, None)
        assert backend.check(customer, "nope") == answer(False, "unknown_meter", None)
        # A meter that exists, but the plan has no price on it.
        assert backend.check(customer, "transactions") == answer(False, "unknown_meter", None)
        assert backend.check(customer, gb) == answer(True, "ok", None)

        # Past due (the status hook invalidates the cached state after the commit).
        with django_capture_on_commit_callbacks(execute=True):
            account_apply_stripe_event(
                account=account, event_type="invoice.payment_failed", event_created=NOW
            )
        assert backend.check(customer, gb) == answer(True, "past_due_grace", None)
        # ... and a cap reached still wins over the grace period.
        with django_capture_on_commit_callbacks(execute=True):
            Budget.objects.create(
                account=account, kind="units", meter=Meter.objects.get(event_name=gb),
                limit=10, hard_cap=True,
            )  # fmt: skip
        assert backend.check(customer, gb, 11) == answer(False, "cap_reached", 10)
        assert backend.check(customer, gb, 10) == answer(True, "past_due_grace", 10)
    # Past the grace period (72 h after the failure) the beat task has not run yet:
    # the check already answers suspended.
    with time_machine.travel(datetime(2026, 9, 8, 12, tzinfo=UTC), tick=False):
        assert backend.check(customer, gb) == answer(False, "suspended", None, None)
    with time_machine.travel(NOW, tick=False):
        for status, reason in (("suspended", "suspended"), ("canceled", "no_subscription")):
            with django_capture_on_commit_callbacks(execute=True):
                fresh = Account.objects.get(pk=account.pk)
                fresh.status = status
                fresh.save()
            assert backend.check(customer, gb) == answer(False, reason, None, None)


# -- input ---------------------------------------------------------------------------------
def test_bad_input_is_400_with_code_and_field(state_mode, on_clock, backend, ingest_key):
    _, _, customer = on_clock("capped")

    def error(response, status, code, field):
        assert response.status_code == status, response.content
        body = response.json()["error"]
        assert (body["code"], body.get("field")) == (code, field)
        if field:
            assert body["message"].startswith(field)

    get = backend.client.get
    headers = backend.headers
    error(get(CHECK_URL, {"event_name": "api_calls"}, headers=headers),
          400, "missing_parameter", "customer")  # fmt: skip
    error(get(CHECK_URL, {"customer": customer}, headers=headers),
          400, "missing_parameter", "event_name")  # fmt: skip
    for bad in ("-1", "1.5", "two", "99999999999999999999"):
        params = {"customer": customer, "event_name": "api_calls", "quantity": bad}
        error(get(CHECK_URL, params, headers=headers), 400, "invalid_parameter", "quantity")
    error(get(CHECK_URL, {"customer": customer, "event_name": "api_calls"}),
          401, "unauthorized", None)  # fmt: skip
    error(backend.client.put(CHECK_URL, headers=headers), 405, "method_not_allowed", None)

    post = backend.client.post
    error(post(CHECK_URL, "{", "application/json", headers=headers), 400, "invalid_json", "checks")
    one = {"customer": customer, "event_name": "data_transfer_gb"}
    error(post(CHECK_URL, json.dumps({"checks": [one] * 101}), "application/json",
               headers=headers), 400, "too_many_checks", "checks")  # fmt: skip
    bad_batch = {"checks": [one, {"customer": customer}]}
    error(post(CHECK_URL, json.dumps(bad_batch), "application/json", headers=headers),
          400, "missing_parameter", "checks[1].event_name")  # fmt: skip
    bad_quantity = {"checks": [{**one, "quantity": True}]}
    error(post(CHECK_URL, json.dumps(bad_quantity), "application/json", headers=headers),
          400, "invalid_parameter", "checks[0].quantity")  # fmt: skip

    # The batch answers in order, each as the single check would.
    with time_machine.travel(NOW, tick=False):
        body = backend.batch([one, {"customer": "cus_nobody", "event_name": "api_calls"},
                              {**one, "event_name": "nope", "quantity": 3}])  # fmt: skip
    assert body == {
        "results": [
            answer(True, "ok", None),
            answer(False, "no_subscription", None, None),
            answer(False, "unknown_meter", None),
        ]
    }


# -- the hot path and the fallback ---------------------------------------------------------
@pytest.fixture
def redis_state(settings, entitlement_redis_url):
    entitlement_state.state_reset()
    key_cache_clear()
    use_redis(settings, entitlement_redis_url)
    yield entitlement_redis_url
    entitlement_state.state_reset()
    key_cache_clear()


def test_a_warm_check_makes_no_database_query(
    redis_state, on_clock, backend, django_assert_num_queries
):
    account, _, customer = on_clock("capped")
    Budget.objects.create(
        account=account, kind="spend", currency="usd", limit=50_000, hard_cap=True
    )
    one = {"customer": customer, "event_name": "data_transfer_gb"}
    with time_machine.travel(NOW, tick=False):
        backend.ingest(customer, "data_transfer_gb", [7_999], "gb")
        assert backend.check(customer, "data_transfer_gb") == answer(True, "ok", 1)  # warms
        with django_assert_num_queries(0):
            assert backend.check(customer, "data_transfer_gb") == answer(True, "ok", 1)
            assert backend.batch([one, one]) == {"results": [answer(True, "ok", 1)] * 2}


def test_redis_down_answers_from_the_database_and_catches_up_after(
    redis_state, on_clock, backend, settings
):
    from stripe_emulator.testing import free_port

    account, _, customer = on_clock("capped")
    Budget.objects.create(
        account=account, kind="spend", currency="usd", limit=50_000, hard_cap=True
    )
    gb = "data_transfer_gb"
    with time_machine.travel(NOW, tick=False):
        backend.ingest(customer, gb, [7_999], "gb")  # 49,999¢, as in acceptance 1
        from_redis = backend.check(customer, gb, 2)
        assert from_redis == answer(False, "cap_reached", 1)

        settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
        assert backend.check(customer, gb, 2) == from_redis
        # Ingestion goes on (the ledger is the truth) and still names the crossing.
        body = backend.ingest(customer, gb, [2], "down")
        assert [c["identifier"] for c in body["caps_crossed"]] == ["down-0"]
        assert backend.check(customer, gb) == answer(False, "cap_reached", 0)

        # Redis is back (its hash missed the 2 GB): the process that failed to add them
        # deletes the hash on its next call, so the answer is rebuilt from the rollups.
        settings.REDIS_URL = redis_state
        entitlement_state._down_until = 0.0  # the one-second breaker, closed for the test
        assert backend.check(customer, gb) == answer(False, "cap_reached", 0)


def test_a_plan_change_reaches_every_cached_copy_at_once(
    redis_state, on_clock, backend, capped_plan, django_capture_on_commit_callbacks
):
    from billing.services.subscriptions import subscription_change_plan

    account, _, customer = on_clock("starter")
    with time_machine.travel(NOW, tick=False):
        assert backend.check(customer, "api_calls") == answer(True, "ok", None)
        assert backend.check(customer, "data_transfer_gb")["reason"] == "unknown_meter"
        # The mirrored subscription's save tells billing.account_changes' listeners after
        # the commit: the snapshot's token changes in Redis, this process's copy is stale.
        with django_capture_on_commit_callbacks(execute=True):
            subscription_change_plan(account=account, plan=capped_plan["growth"])
        assert backend.check(customer, "api_calls")["reason"] == "unknown_meter"
        assert backend.check(customer, "data_transfer_gb") == answer(True, "ok", None)
