import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="usage.tasks.report_usage")
def report_usage() -> str:
    """One reporting pass (beat runs it every USAGE_REPORT_INTERVAL_SECONDS)."""
    from usage.services.reporting import usage_report_pass

    return usage_report_pass().summary()


@shared_task(name="usage.tasks.reconcile_usage")
def reconcile_usage() -> int:
    from usage.services.reconciliation import usage_reconcile

    return len(usage_reconcile())


@shared_task(name="usage.tasks.evaluate_alerts")
def evaluate_alerts() -> int:
    """The periodic sweep over every account's alert rules."""
    from usage.services.alerts import alerts_evaluate_all

    return alerts_evaluate_all()


@shared_task(name="usage.tasks.evaluate_account_alerts")
def evaluate_account_alerts(account_id: int) -> int:
    """Queued after ingestion (debounced per account) so alerts follow usage closely."""
    from billing.models import Account
    from usage.services.alerts import alerts_evaluate_account

    account = Account.objects.filter(pk=account_id).first()
    return len(alerts_evaluate_account(account=account)) if account else 0


@shared_task(name="usage.tasks.evaluate_accounts_alerts")
def evaluate_accounts_alerts(account_ids: list[int]) -> int:
    """Queued after an ingest batch (one message for its accounts, debounced per account):
    each account is evaluated on its own, and one that raises does not stop the others
    (the sweep evaluates it again)."""
    from billing.models import Account
    from usage.services.alerts import alerts_evaluate_account

    claimed = 0
    for account in Account.objects.filter(pk__in=account_ids).order_by("pk"):
        try:
            claimed += len(alerts_evaluate_account(account=account))
        except Exception:
            logger.exception("alert evaluation failed for account %s", account.pk)
    return claimed


@shared_task(name="usage.tasks.send_alert_channels")
def send_alert_channels(ids: list[int] | None = None) -> dict:
    """Send due alert channel deliveries (webhooks, Slack): queued after an alert is
    claimed with its new ids, and run by beat every USAGE_ALERT_CHANNEL_RETRY_SECONDS
    (no ids: every due retry)."""
    from usage.services.alert_channel_send import channel_deliveries_send_due

    return channel_deliveries_send_due(ids=ids)


@shared_task(name="usage.tasks.retry_stale_corrections")
def retry_stale_corrections() -> int:
    """Corrections still waiting for their Stripe call five minutes on (the process that
    recorded them died before making it): make the call now, under the same key."""
    from usage.services.correction_apply import corrections_stale_retry

    return corrections_stale_retry()


@shared_task(name="usage.tasks.ensure_ledger_partitions")
def ensure_ledger_partitions() -> str:
    """Beat, daily: the ledger's monthly partitions (PostgreSQL) from this month to three
    ahead, rows of a new month moved out of the default partition."""
    from usage.services.ledger_partitions import ensure_partitions

    return ensure_partitions().summary()
