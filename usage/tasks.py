from celery import shared_task


@shared_task(name="usage.tasks.report_usage")
def report_usage() -> str:
    """One reporting pass (beat runs it every USAGE_REPORT_INTERVAL_SECONDS)."""
    from usage.services.reporting import usage_report_pass

    return usage_report_pass().summary()


@shared_task(name="usage.tasks.reconcile_usage")
def reconcile_usage() -> int:
    from usage.services.reconciliation import usage_reconcile

    return len(usage_reconcile())
