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


@shared_task(name="billing.tasks.sync_meters_from_stripe")
def sync_meters_from_stripe() -> int:
    """Meter status from Stripe (a meter deactivated there becomes inactive here, and
    ingestion refuses it within USAGE_METER_CACHE_SECONDS)."""
    from billing.services.meters import meters_sync_from_stripe

    return meters_sync_from_stripe()


@shared_task(name="billing.tasks.process_thin_event")
def process_thin_event(thin_event_id: int) -> bool:
    from billing.services.thin_events import thin_event_process

    return thin_event_process(thin_event_id=thin_event_id)


@shared_task(name="billing.tasks.process_pending_thin_events")
def process_pending_thin_events() -> int:
    """Thin events whose task was lost (broker down) or failed (Stripe unreachable)."""
    from billing.services.thin_events import thin_events_process_pending

    return thin_events_process_pending()


@shared_task(name="billing.tasks.advance_credit_grant", ignore_result=True)
def advance_credit_grant(grant_id: int) -> str:
    """A credit grant's next Stripe steps (purchase invoice, Stripe grant); idempotent."""
    from billing.services.credit_stripe import credit_grant_advance

    return credit_grant_advance(grant_id=grant_id).status


@shared_task(name="billing.tasks.advance_stale_credit_grants", ignore_result=True)
def advance_stale_credit_grants() -> int:
    """Grants left pending or awaiting payment (task lost, Stripe down, webhook lost)."""
    from billing.services.credit_stripe import credit_grants_advance_stale

    return credit_grants_advance_stale()


@shared_task(name="billing.tasks.sync_credit_transactions", ignore_result=True)
def sync_credit_transactions(account_id: int) -> int:
    from billing.models import Account
    from billing.services.credit_sync import credit_transactions_sync

    account = Account.objects.filter(pk=account_id).first()
    return credit_transactions_sync(account=account) if account is not None else 0


@shared_task(name="billing.tasks.sync_all_credit_transactions", ignore_result=True)
def sync_all_credit_transactions() -> int:
    from billing.services.credit_sync import credit_transactions_sync_all

    return credit_transactions_sync_all()
