"""Fixtures shared by the whole suite.

The suite runs on SQLite with eager Celery by default, and on PostgreSQL + Redis when
``DATABASE_URL`` / ``REDIS_URL`` are set (CI sets both).
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))


# `make test` runs the suite on pytest-xdist workers (`-n 3 --dist loadgroup`). Each worker
# process has its own test database (config/settings/test.py: the pid, plus
# pytest-django's _gwN suffix), its own Redis database number (config/settings/test.py),
# its own emulator (emulator_url), live server and browser, all on free ports. Tests that
# still share something outside their process run one after another on one worker:
XDIST_GROUPS = {
    # Each case merges its row into one file, var/reliability/results-short.json (read,
    # update, rewrite): two cases at once could lose a row or read a half-written file.
    "tests/reliability/": "reliability",
}


def pytest_configure(config):
    (ROOT / "var").mkdir(exist_ok=True)


def pytest_collection_modifyitems(config, items):
    """Tests marked slow (minutes each: the acceptance tests, the migrations) run first,
    otherwise in collection order: xdist hands out work in this order, so they start at
    once instead of one of them holding the run's last minutes on one worker."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The suite builds its tables from the models (--no-migrations); on PostgreSQL the
    ledger is then partitioned by month exactly as migration 0016 does in production,
    so every PostgreSQL test runs on the partitioned ledger."""
    import importlib

    from django.db import connection

    migration = importlib.import_module("usage.migrations.0016_partitioned_ledger")
    with django_db_blocker.unblock():
        migration.partition_ledger(connection)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadgroup, with the groups above given by path. (xdist's own
    ``@pytest.mark.xdist_group`` does not group under pytest 9.2: xdist 3.8 renames the
    item's ``_nodeid``, which pytest 9.2 no longer reads.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class PathGroupScheduling(LoadScopeScheduling):
        # Scopes are queued largest first (xdist's --loadscope-reorder, on by default),
        # so a group starts at once rather than ending the run on one worker.
        def _split_scope(self, nodeid: str) -> str:
            for prefix, group in XDIST_GROUPS.items():
                if nodeid.startswith(prefix):
                    return group
            return nodeid  # every other test is its own unit of work

    return PathGroupScheduling(config, log)


def wait_for(predicate, *, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("REDIS_URL is not set: this test needs a real Redis broker")
    return url


@pytest.fixture
def celery_worker_process(redis_url, tmp_path):
    """A real Celery worker in its own process, consuming from Redis."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    env["CELERY_TASK_ALWAYS_EAGER"] = "false"
    log_path = tmp_path / "worker.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            f"--hostname=test-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # The test's own timeouts measure the worker's work, not its boot (slower when
        # the suite's xdist workers share the cores).
        wait_for(
            lambda: proc.poll() is not None or " ready." in log_path.read_text(),
            timeout=120,
            what="the Celery worker to be ready",
        )
        assert proc.poll() is None, f"the Celery worker exited:\n{log_path.read_text()}"
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if CHROMIUM.exists():
        return str(CHROMIUM)
    found = shutil.which("chromium")
    if found:
        return found
    if os.environ.get("MD_REQUIRE_BROWSER"):
        pytest.fail(f"Chromium is required here but {CHROMIUM} is missing")
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium to run browser tests")


@pytest.fixture(scope="session")
def browser(chromium_path):
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls made
    # by the test itself are still synchronous and safe.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def emulator_url(tmp_path_factory):
    """One stripe_emulator process for the session, on a free port, over HTTP only."""
    from stripe_emulator.testing import running_emulator

    log = (tmp_path_factory.mktemp("emulator") / "emulator.log").open("w")
    with running_emulator(log=log) as url:
        yield url
    log.close()


@pytest.fixture
def stripe_emulator(emulator_url, settings):
    """A freshly reset emulator that Meterdesk and dj-stripe talk to for this test."""
    import stripe

    from stripe_emulator.testing import reset

    reset(emulator_url)
    settings.STRIPE_API_HOST = emulator_url
    stripe.api_base = emulator_url
    yield emulator_url
    stripe.api_base = emulator_url


@pytest.fixture
def stripe_client(stripe_emulator):
    from billing.stripe_api import stripe_client as make_client

    return make_client()


@pytest.fixture
def demo_catalog(stripe_emulator, db):
    """The shipped demo catalog, applied to the emulator and mirrored."""
    from billing.catalog.spec import load_catalog
    from billing.services.catalog import catalog_apply

    catalog_apply(catalog=load_catalog(ROOT / "billing" / "catalog" / "demo.toml"))
    from billing.models import Plan

    return {plan.key: plan for plan in Plan.objects.all()}


@pytest.fixture(autouse=True)
def _fresh_meter_cache():
    """The ingest path caches meters and remembers alert scheduling per process; every
    test starts and ends clean."""
    from usage.services import alert_scheduling
    from usage.services.ingest import meter_cache_clear

    meter_cache_clear()
    alert_scheduling._recently_scheduled.clear()
    yield
    meter_cache_clear()
    alert_scheduling._recently_scheduled.clear()


@pytest.fixture
def pro_account(demo_catalog):
    """Acme on Pro ($99 base, 10,000 API calls included, then 0.2¢; $10 a seat) with
    10,500 API calls and 3 seats (last value) this period."""
    from billing.services.accounts import account_create
    from billing.services.subscriptions import subscription_create
    from tests.factories import ingest

    account = account_create(name="Acme Analytics", billing_email="billing@acme.example")
    subscription_create(account=account, plan=demo_catalog["pro"])
    customer_id = account.djstripe_customers.get().id
    ingest(customer_id, "api_calls", [1] * 10_500, "acme-call")
    ingest(customer_id, "seats", [2, 3], "acme-seat")
    return account


@pytest.fixture
def other_account(demo_catalog):
    from billing.services.accounts import account_create
    from billing.services.subscriptions import subscription_create

    account = account_create(name="Globex", billing_email="billing@globex.example")
    subscription_create(account=account, plan=demo_catalog["starter"])
    return account


@pytest.fixture(autouse=True)
def _celery_join_flag_reset():
    """Celery keeps a process-global "this process is a worker" flag that makes any
    ``result.get()`` raise. Something inside the 100k-event acceptance test sets it in
    the test process; no test may leak it into the next."""
    yield
    from celery._state import _set_task_join_will_block

    _set_task_join_will_block(False)
