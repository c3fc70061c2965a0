"""The Celery app: JSON only, time limits, and the beat schedule declared here in code.

Broker: Redis when ``REDIS_URL`` is set, otherwise kombu's ``filesystem://`` transport
under ``var/celery/`` (see ``config.settings.base``), so a real worker and beat run
with no service installed.
"""

import os
from pathlib import Path

from celery import Celery
from celery.schedules import crontab
from celery.signals import beat_init, worker_init
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("meterdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.imports = ["config.tasks"]


def beat_schedule() -> dict:
    """Every periodic job of the product, in one place; intervals come from Django settings
    (``USAGE_REPORT_INTERVAL_SECONDS``, ``USAGE_ALERT_SWEEP_SECONDS``,
    ``USAGE_ALERT_CHANNEL_RETRY_SECONDS``, ``BILLING_METER_SYNC_SECONDS``). Tasks are thin:
    they call a service. Entries are added here as the features they drive land; none
    names a missing task."""
    report_every = float(settings.USAGE_REPORT_INTERVAL_SECONDS)
    sweep_every = float(settings.USAGE_ALERT_SWEEP_SECONDS)
    channel_retry_every = float(settings.USAGE_ALERT_CHANNEL_RETRY_SECONDS)
    meter_sync_every = float(settings.BILLING_METER_SYNC_SECONDS)
    return {
        # Status events whose task was never queued (broker down during the webhook).
        "billing-apply-pending-account-events": {
            "task": "billing.tasks.apply_pending_account_events",
            "schedule": 60.0,
            "options": {"expires": 60.0},
        },
        # Thin events (meter error reports) stored but not processed yet.
        "billing-process-pending-thin-events": {
            "task": "billing.tasks.process_pending_thin_events",
            "schedule": 60.0,
            "options": {"expires": 60.0},
        },
        # A meter deactivated (or reactivated) in Stripe: its status here follows.
        "billing-sync-meters-from-stripe": {
            "task": "billing.tasks.sync_meters_from_stripe",
            "schedule": meter_sync_every,
            "options": {"expires": meter_sync_every},
        },
        "billing-suspend-overdue-accounts": {
            "task": "billing.tasks.suspend_overdue_accounts",
            "schedule": crontab(minute="*/15"),
        },
        # Credit grants left pending or awaiting payment 5 minutes (task lost, Stripe
        # unreachable, the purchase invoice's webhook lost): same idempotency keys.
        "billing-advance-stale-credit-grants": {
            "task": "billing.tasks.advance_stale_credit_grants",
            "schedule": 300.0,
            "options": {"expires": 300.0},
        },
        # Credit balance transactions (applied, expired, given back) of every account
        # with a grant in Stripe; invoice.finalized / invoice.voided also sync at once.
        "billing-sync-credit-transactions": {
            "task": "billing.tasks.sync_all_credit_transactions",
            "schedule": crontab(minute="*/15"),
        },
        # Usage reporting to Stripe: frequent, and a pass that misses its slot is dropped
        # (expires) rather than piling up behind a slow one; every pass is safe to overlap.
        "usage-report-to-stripe": {
            "task": "usage.tasks.report_usage",
            "schedule": report_every,
            "options": {"expires": report_every},
        },
        "usage-reconcile-with-stripe": {
            "task": "usage.tasks.reconcile_usage",
            "schedule": crontab(minute=7),
        },
        # Threshold alerts: a sweep every minute by default; ingestion also queues a
        # debounced evaluation of the accounts it touched.
        "usage-evaluate-alerts": {
            "task": "usage.tasks.evaluate_alerts",
            "schedule": sweep_every,
            "options": {"expires": sweep_every},
        },
        # Alert webhooks and Slack messages due for a retry (each is also sent right
        # after its alert is claimed); every pass leases what it sends, so overlap is safe.
        "usage-send-alert-channels": {
            "task": "usage.tasks.send_alert_channels",
            "schedule": channel_retry_every,
            "options": {"expires": channel_retry_every},
        },
        # The ledger's monthly partitions (PostgreSQL) from this month to three ahead;
        # daily, so a missed run or two still leaves months in hand.
        "usage-ensure-ledger-partitions": {
            "task": "usage.tasks.ensure_ledger_partitions",
            "schedule": crontab(minute=17, hour=3),
        },
        # Corrections recorded but whose Stripe call (cancel, credit note) never ran.
        "usage-retry-stale-corrections": {
            "task": "usage.tasks.retry_stale_corrections",
            "schedule": 300.0,
            "options": {"expires": 300.0},
        },
    }


@app.on_after_configure.connect
def _install_beat_schedule(sender, **_kwargs) -> None:
    """Read the settings once Celery has loaded them, not while this module is imported
    (config/__init__.py imports it before Django's settings are configured)."""
    sender.conf.beat_schedule = beat_schedule()


def embedded_broker_dirs() -> list[Path]:
    """Folders the filesystem broker and result backend need (empty when Redis is used)."""
    from django.conf import settings

    if settings.REDIS_URL:
        return []
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    results = Path(settings.CELERY_RESULT_BACKEND.removeprefix("file://"))
    folders = ("data_folder_in", "processed_folder", "control_folder")
    return [*(Path(options[name]) for name in folders), results]


def ensure_embedded_broker_dirs(**_kwargs) -> None:
    for folder in embedded_broker_dirs():
        folder.mkdir(parents=True, exist_ok=True)


worker_init.connect(ensure_embedded_broker_dirs)
beat_init.connect(ensure_embedded_broker_dirs)
