"""The global calls-per-second limit, the Celery tasks and their beat entries."""

import time

import pytest

from usage.services.limiter import LocalBucket, RedisBucket


def _time_calls(bucket, n: int) -> float:
    started = time.monotonic()
    for _ in range(n):
        bucket.acquire()
    return time.monotonic() - started


def test_local_bucket_holds_the_rate_after_its_one_second_burst():
    bucket = LocalBucket(rate=50)
    # 50 come from the burst at once; the next 50 need one more second at 50/s.
    elapsed = _time_calls(bucket, 100)
    assert 0.9 <= elapsed < 1.6


def test_redis_bucket_is_shared_by_every_client(redis_url):
    key = f"meterdesk:test:bucket:{time.time_ns()}"
    first, second = RedisBucket(redis_url, 40, key=key), RedisBucket(redis_url, 40, key=key)
    started = time.monotonic()
    for _ in range(40):  # the two "workers" draw from one bucket: 80 calls at 40/s
        first.acquire()
        second.acquire()
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.8


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
