"""The fault matrix, cases (a)-(d): real Celery workers and beat (separate processes) on
the test database and a throwaway Redis, the live server taking usage, and the emulator
as Stripe. Each case ends with the ledger compared to Stripe's event summaries per
(customer, meter, period): 0 units lost, 0 double-billed (see ``verdict.py``).

``make test`` runs them small; ``make reliability`` (``MD_RELIABILITY_FULL=1``) runs
40,000 events a case and repeats each fault. Case (e), the PostgreSQL crash, is in
``test_postgres_crash.py``; case (f), the webhook during a Redis outage, in
``test_webhook_broker_outage.py``.
"""

import time

import pytest

from tests.conftest import wait_for
from tests.reliability.conftest import SCALE
from usage.models import UsageReport

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]


def _first_fault_then(set_faults, steady: dict, *, what: str) -> None:
    """Every meter event faulted until one report had to be resent (so the case proves
    something even with a handful of reports), then the steady fault rate."""
    wait_for(
        lambda: UsageReport.objects.filter(attempts__gt=1).exists(),
        timeout=30,
        interval=0.05,
        what=what,
    )
    set_faults(**steady)


def test_a_stripe_429_and_5xx_on_a_fifth_of_calls(matrix, matrix_stack, emulator_faults):
    m = matrix("a_stripe_429_5xx", "Stripe 429/500/503", "20% of Stripe calls 429/500/503")
    emulator_faults(rate=1.0, statuses=[429, 500, 503], latency_ms=5)
    m.start()
    _first_fault_then(emulator_faults, {"rate": 0.2}, what="a report resent after a 429/5xx")
    r = m.finish(emulator_faults)
    assert r.resent_reports >= 1


def test_b_timeouts_after_stripe_recorded_the_event(matrix, matrix_stack, emulator_faults):
    """The emulator records the meter event, then holds its answer past the sender's 1 s
    timeout and keeps no idempotent result; the resend with the same identifier gets
    live Stripe's "An event already exists with identifier" 400 (Stripe-Should-Retry:
    false), which the sender must count as delivered, not as failed and not twice."""
    m = matrix(
        "b_timeout_after_record",
        "Timeouts after Stripe recorded",
        "20% of meter events recorded then answered after the 1 s timeout; "
        "duplicates rejected 400 as live Stripe does",
    )
    emulator_faults(after_record_rate=1.0, after_record_ms=1500, duplicate_identifiers="reject")
    m.start()
    _first_fault_then(
        emulator_faults, {"after_record_rate": 0.2}, what="a report resent after a timeout"
    )
    r = m.finish(emulator_faults)
    assert r.resent_reports >= 1
    assert not UsageReport.objects.exclude(status=UsageReport.Status.SENT).exists()


def test_c_worker_sigkilled_mid_send(matrix, matrix_stack, emulator_faults):
    m = matrix(
        "c_worker_sigkill",
        "Worker SIGKILL mid-send",
        f"{SCALE.repeats} SIGKILL(s) of the worker inside a Stripe call; lease 3 s",
    )
    # Slow Stripe calls from the start: at the small scale the traffic (8 batches) can be
    # ingested and all reported before the first kill, and then no call is ever in flight.
    emulator_faults(latency_ms=600)
    [worker] = matrix_stack.workers
    m.start()
    stuck: set[int] = set()
    for k in range(SCALE.repeats):
        m.traffic.wait_batches((k + 1) * m.traffic.batches // (SCALE.repeats + 1))
        wait_for(
            lambda: UsageReport.objects.filter(status="sent").exists(),
            timeout=60,
            interval=0.05,
            what="the worker to send reports",
        )
        emulator_faults(latency_ms=600)  # under the 1 s timeout: the kill lands in a call
        time.sleep(0.05)
        wait_for(
            lambda: UsageReport.objects.filter(status="sending").exists(),
            timeout=30,
            interval=0.02,
            what="the worker to be sending a report",
        )
        matrix_stack.sigkill(worker)
        stuck |= set(UsageReport.objects.filter(status="sending").values_list("pk", flat=True))
        emulator_faults(latency_ms=5)
        worker = matrix_stack.worker()
    r = m.finish(emulator_faults)
    assert stuck, "a SIGKILL left a report mid-send"
    for status, attempts in UsageReport.objects.filter(pk__in=stuck).values_list(
        "status", "attempts"
    ):
        assert (status, attempts >= 2) == ("sent", True)  # resent once its lease expired
    assert r.resent_reports >= len(stuck)


def test_d_redis_killed_and_restarted(matrix, matrix_stack, emulator_faults, settings):
    """The workers' broker, result backend and cache, and the web's cache, is one
    throwaway redis-server: killed for a second or two (empty when it returns), while
    usage flows."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": matrix_stack.redis.url,
        }
    }
    m = matrix(
        "d_redis_restart",
        "Redis killed and restarted",
        f"{SCALE.repeats} kill(s) of Redis (broker, cache) for {SCALE.outage:g} s; restarted empty",
    )
    emulator_faults(latency_ms=5)
    m.start()
    for k in range(SCALE.repeats):
        m.traffic.wait_batches((k + 1) * m.traffic.batches // (SCALE.repeats + 1))
        wait_for(
            lambda: UsageReport.objects.filter(status="sent").exists(),
            timeout=60,
            interval=0.05,
            what="the worker to send reports",
        )
        matrix_stack.redis.kill()
        time.sleep(SCALE.outage)
        matrix_stack.redis.start()
    m.finish(emulator_faults)
