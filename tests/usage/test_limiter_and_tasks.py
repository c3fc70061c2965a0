"""The global calls-per-second limit, the Celery tasks and their beat entries."""

import time

import pytest

from usage.services.limiter import LocalBucket, RedisBucket


def _time_calls(bucket, n: int) -> float:
    started = time.monotonic()
    for _ in range(n):
        bucket.acquire()
    return time.monotonic() - started


class FakeClock:
    def __init__(self):
        self.now = 1024.0

    def __call__(self) -> float:
        return self.now


def test_local_bucket_holds_the_rate_after_its_one_second_burst():
    clock = FakeClock()
    bucket = LocalBucket(rate=64, clock=clock)  # 1/64 s is exact in binary
    # The one-second burst: 64 calls at once.
    assert [bucket.try_take() for _ in range(64)] == [0.0] * 64
    # The 65th must wait 1/64 s; after that wait it may go, and the next one waits again.
    assert bucket.try_take() == 1 / 64
    clock.now += 1 / 64
    assert bucket.try_take() == 0.0
    assert bucket.try_take() == 1 / 64
    # A long pause refills to the burst, never beyond it.
    clock.now += 60
    assert [bucket.try_take() for _ in range(64)] == [0.0] * 64
    assert bucket.try_take() > 0


def test_redis_bucket_is_shared_by_every_client(redis_url):
    key = f"meterdesk:test:bucket:{time.time_ns()}"
    first, second = RedisBucket(redis_url, 40, key=key), RedisBucket(redis_url, 40, key=key)
    started = time.monotonic()
    for _ in range(40):  # the two "workers" draw from one bucket: 80 calls at 40/s
        first.acquire()
        second.acquire()
    elapsed = time.monotonic() - started
    # One shared bucket: 80 calls at 40/s after a 40-call burst take at least a second
    # (two separate buckets would have served all 80 from their bursts at once). Only
    # the lower bound is asserted: a loaded machine can only make it slower.
    assert elapsed >= 0.9


@pytest.mark.django_db(transaction=True)
def test_report_task_runs_one_pass(customer, settings):
    from usage.models import UsageReport
    from usage.services.ingest import usage_events_ingest
    from usage.tasks import reconcile_usage, report_usage

    settings.CELERY_TASK_ALWAYS_EAGER = True
    usage_events_ingest(events=[{"event_name": "api_calls", "customer": customer}])
    summary = report_usage.delay().get()
    assert summary.startswith("claimed 1 events into 1 reports (0 too late); sent 1")
    assert UsageReport.objects.get().status == "sent"
    assert reconcile_usage.delay().get() == 0  # the period is still open


def test_beat_runs_reporting_every_ten_seconds_and_reconciliation_hourly():
    from config.celery import app

    schedule = app.conf.beat_schedule
    assert schedule["usage-report-to-stripe"]["task"] == "usage.tasks.report_usage"
    assert schedule["usage-report-to-stripe"]["schedule"] == 10.0
    assert schedule["usage-reconcile-with-stripe"]["task"] == "usage.tasks.reconcile_usage"
    import usage.tasks  # noqa: F401  (what the worker's autodiscovery imports)

    assert {"usage.tasks.report_usage", "usage.tasks.reconcile_usage"} <= set(app.tasks)
