from celery import shared_task


@shared_task(name="billing.tasks.apply_stripe_event_to_account")
def apply_stripe_event_to_account(event_id: str) -> bool:
    from djstripe.models import Event

    from billing.services.accounts import account_apply_stripe_event, account_for_stripe_customer

    event = Event.objects.get(id=event_id)
    obj = event.stripe_data["data"]["object"]
    customer_id = obj.get("customer") if obj.get("object") != "customer" else obj.get("id")
    if isinstance(customer_id, dict):
        customer_id = customer_id.get("id")
    account = account_for_stripe_customer(customer_id=customer_id) if customer_id else None
    if account is None:
        return False
    return account_apply_stripe_event(
        account=account, event_type=event.type, event_created=event.created
    )


@shared_task(name="billing.tasks.suspend_overdue_accounts")
def suspend_overdue_accounts() -> int:
    from billing.services.accounts import accounts_suspend_overdue

    return accounts_suspend_overdue()
