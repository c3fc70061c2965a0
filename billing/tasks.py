from celery import shared_task


@shared_task(name="billing.tasks.apply_stripe_event_to_account")
def apply_stripe_event_to_account(event_id: str) -> bool:
    from billing.services.account_events import account_event_apply

    return account_event_apply(event_id=event_id)


@shared_task(name="billing.tasks.apply_pending_account_events")
def apply_pending_account_events() -> int:
    from billing.services.account_events import account_events_apply_pending

    return account_events_apply_pending()


@shared_task(name="billing.tasks.suspend_overdue_accounts")
def suspend_overdue_accounts() -> int:
    from billing.services.accounts import accounts_suspend_overdue

    return accounts_suspend_overdue()
