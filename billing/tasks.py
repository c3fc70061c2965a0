from celery import shared_task


@shared_task(name="billing.tasks.apply_stripe_event_to_account")
def apply_stripe_event_to_account(event_id: str) -> bool:
    from billing.mirror.events import event_account
    from billing.services.accounts import account_apply_stripe_event

    found = event_account(event_id=event_id)
    if found is None:
        return False
    return account_apply_stripe_event(
        account=found.account, event_type=found.type, event_created=found.created
    )


@shared_task(name="billing.tasks.suspend_overdue_accounts")
def suspend_overdue_accounts() -> int:
    from billing.services.accounts import accounts_suspend_overdue

    return accounts_suspend_overdue()
