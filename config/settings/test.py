"""Tests: SQLite and eager Celery unless DATABASE_URL / REDIS_URL are set."""

import os
from urllib.parse import urlsplit, urlunsplit


def _redis_url_per_xdist_worker() -> None:
    """Under pytest-xdist (``make test``), each worker process gets a Redis database of its
    own, so Celery queues, the cache (``cache.clear()`` is FLUSHDB), limiter and entitlement
    keys never cross between workers: gw0 15, gw1 14, ... counting down, clear of the
    serial runs' database (REDIS_URL's, 0 in CI) and the benchmarks' (2). Rewritten in
    ``os.environ`` before the base settings read it, so the Celery workers a test starts
    from ``os.environ`` use the same database. Done once: the processes a test starts
    inherit the marker and keep whatever REDIS_URL they are given.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    url = os.environ.get("REDIS_URL", "")
    if not (worker.startswith("gw") and worker[2:].isdigit() and url):
        return
    if os.environ.get("MD_TEST_REDIS_PER_WORKER"):
        return
    index = int(worker[2:])
    if index > 12:  # redis-server's default `databases 16`; 0-2 stay clear
        raise RuntimeError(f"no Redis database left for xdist worker {worker}: use -n 13 or less")
    os.environ["REDIS_URL"] = urlunsplit(urlsplit(url)._replace(path=f"/{15 - index}"))
    os.environ["MD_TEST_REDIS_PER_WORKER"] = os.environ["REDIS_URL"]


_redis_url_per_xdist_worker()

from config.settings.base import *  # noqa: E402, F403
from config.settings.base import env  # noqa: E402

DEBUG = False
# Tests talk only to the emulator the suite starts itself: a developer's exported
# STRIPE_API_HOST / STRIPE_*_KEY must never reach them (it could be real Stripe). The
# suite passes its emulator's address to the worker processes it starts under a name of
# its own.
STRIPE_API_HOST = env("MD_TEST_STRIPE_API_HOST", default="http://127.0.0.1:12111")
STRIPE_LIVE_MODE = False
STRIPE_TEST_SECRET_KEY = "sk_test_MeterdeskLocalEmulatorKey000000"
STRIPE_LIVE_SECRET_KEY = ""
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Tasks queued by code under test run in-process. Tests that need a real worker start
# one (tests/conftest.py) and publish with send_task, which always goes to the broker.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
# Tests report every event on the next pass; the batching policy has its own test.
# v1 in the suite: the stream counts asynchronously, and most tests read Stripe's totals
# straight after a pass; tests/usage/test_report_stream.py sets v2_stream (and drains the
# emulator's stream queue) to test that path, the production default.
USAGE_REPORT_TRANSPORT = env("USAGE_REPORT_TRANSPORT", default="v1")
USAGE_REPORT_BATCH_MIN_EVENTS = env.int("USAGE_REPORT_BATCH_MIN_EVENTS", default=1)
USAGE_REPORT_BATCH_MAX_WAIT_SECONDS = env.int("USAGE_REPORT_BATCH_MAX_WAIT_SECONDS", default=0)
# The tests' webhook and Slack receivers listen on 127.0.0.1 (the guard has its own tests).
ALERT_CHANNELS_ALLOW_PRIVATE_HOSTS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
SILENCED_SYSTEM_CHECKS = ["djstripe.W001", "djstripe.W002"]  # the emulator is intended here

# Each pytest process gets its own test database, so concurrent runs never collide.
_test_db_suffix = os.getpid()
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not :memory:, so the live server's thread and the test share it with
    # WAL's concurrency instead of shared-cache table locks.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(VAR_DIR / f"test-meterdesk-{_test_db_suffix}.sqlite3")  # noqa: F405
    }
else:
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": f"test_meterdesk_{_test_db_suffix}"
    }
if "replica" in DATABASES:  # noqa: F405
    # DATABASE_REPLICA_URL in tests: the replica alias is the test database itself (the
    # real-replica test, tests/config/test_replica_streaming.py, makes its own clusters).
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}  # noqa: F405
