"""The fault matrix's fixtures: customers on metered plans, a stack of real processes on
a throwaway Redis, the emulator's faults (always switched off afterwards), and the
short/full scale (``MD_RELIABILITY_FULL=1``: ``make reliability``)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from stripe_emulator.testing import control
from tests.conftest import wait_for
from tests.reliability.brokers import REDIS_SERVER, ThrowawayRedis, throwaway_redis  # noqa: F401
from tests.reliability.stack import Stack, fast_reporting_env
from tests.reliability.traffic import Traffic, generate
from tests.reliability.verdict import FULL, CaseResult, all_reported, compare, record

NO_FAULTS = {
    "rate": 0,
    "latency_ms": 0,
    "after_record_rate": 0,
    "duplicate_identifiers": "reject",  # live Stripe's answer, the default
}


@dataclass(frozen=True)
class Scale:
    customers: int
    events: int
    batch: int
    pause: float  # seconds between batches
    repeats: int  # how many times a case repeats its fault (kills, outages, crashes)
    outage: float  # seconds Redis or PostgreSQL stays down each time
    settle: float  # seconds allowed for everything to be reported at the end


SCALE = (
    Scale(customers=20, events=40_000, batch=500, pause=0.2, repeats=4, outage=2, settle=240)
    if FULL
    else Scale(customers=2, events=160, batch=20, pause=0.1, repeats=1, outage=1, settle=90)
)


@pytest.fixture
def postgres_database():
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL (DATABASE_URL): the workers are separate processes and "
            "must see the test database"
        )
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server is not installed (each case runs its own)")


@pytest.fixture
def metered_customers(demo_catalog):
    """``SCALE.customers`` accounts, alternately on Pro (api_calls, a count meter) and
    Growth (data_transfer_gb, a sum meter): ``{cus_id: event_name}``."""
    from billing.services.accounts import account_create
    from billing.services.subscriptions import subscription_create

    plans = [("pro", "api_calls"), ("growth", "data_transfer_gb")]
    customers = {}
    for i in range(SCALE.customers):
        plan, meter = plans[i % 2]
        account = account_create(name=f"Matrix {i}", billing_email=f"m{i}@matrix.test")
        subscription_create(account=account, plan=demo_catalog[plan], payment_method=None)
        customers[account.djstripe_customers.get().id] = meter
    return customers


@pytest.fixture
def emulator_faults(stripe_emulator):
    def set_faults(**faults):
        return control(stripe_emulator, "/_emulator/faults", faults)

    yield set_faults
    set_faults(**NO_FAULTS)


class Matrix:
    """One case: its stack, its traffic, and the verdict at the end."""

    def __init__(self, *, case, title, faults, stack, customers, url, key, client, using):
        self.result = CaseResult(case=case, title=title, faults=faults)
        self.started = time.monotonic()
        self.stack, self.customers, self.client, self.using = stack, customers, client, using
        self.events = generate(
            case=case,
            customers=customers,
            n=SCALE.events,
            now=int(time.time()),
            seed=sum(map(ord, case)),
        )
        self.traffic = Traffic(
            url=url + "/api/v1/usage/events",
            key=key,
            events=self.events,
            batch=SCALE.batch,
            pause=SCALE.pause,
        )

    def start(self) -> Traffic:
        """Usage starts flowing once the workers consume, so faults meet live reporting."""
        self.stack.wait_ready()
        return self.traffic.start()

    def finish(self, set_faults) -> CaseResult:
        """Wait for the traffic and for every event to be reported, switch faults off,
        compare the ledger with Stripe, record the row, and assert 0 lost, 0 double."""
        self.traffic.join()
        try:
            wait_for(
                lambda: all_reported(self.using),
                timeout=SCALE.settle,
                interval=0.25,
                what="every event reported",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.stack.logs()}") from None
        set_faults(**NO_FAULTS)
        self.result.api_5xx = self.traffic.server_errors
        compare(self.result, events=self.events, stripe_client=self.client, using=self.using)
        record(self.result, started=self.started)
        r = self.result
        assert self.traffic.rejected == []
        assert r.sent == r.stored == r.reported == len(self.events), r
        assert (r.lost, r.double) == (0, 0), r.mismatches
        return r


def suite_database_url() -> str:
    """The suite's test database, for processes started by the test."""
    url = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"]))


@pytest.fixture
def matrix_stack(postgres_database, stripe_emulator, tmp_path):
    """Workers and beat on the test database, a throwaway Redis of their own (so no
    other run's worker takes their tasks), and the emulator."""
    redis_server = ThrowawayRedis(tmp_path)
    redis_server.start()
    env = fast_reporting_env(
        database_url=suite_database_url(),
        redis_url=redis_server.url,
        emulator_url=stripe_emulator,
    )
    stack = Stack(env, tmp_path)
    stack.redis = redis_server
    stack.beat()  # booting while the test creates its customers
    stack.worker()
    yield stack
    stack.stop()
    redis_server.kill()


@pytest.fixture
def matrix(matrix_stack, metered_customers, stripe_client, live_server):
    from usage.services.keys import ingest_key_create

    _, key = ingest_key_create(name="reliability")

    def make(case: str, title: str, faults: str) -> Matrix:
        return Matrix(
            case=case,
            title=title,
            faults=faults,
            stack=matrix_stack,
            customers=metered_customers,
            url=live_server.url,
            key=key,
            client=stripe_client,
            using="default",
        )

    return make
