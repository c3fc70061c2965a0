"""Accounts: their Stripe customer, members, and status (access control)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from djstripe.models import Customer
from djstripe.settings import djstripe_settings

from billing.models import Account, Membership
from billing.stripe_api import api_key, stripe_client

Status = Account.Status


def account_create(*, name: str, billing_email: str, currency: str = "usd") -> Account:
    """A new account billed in ``currency`` (a lowercase ISO code; its plans' prices in
    that currency are the ones it can subscribe to)."""
    code = currency.strip().lower()
    if len(code) != 3 or not code.isalpha():
        raise ValueError(f"currency must be a 3-letter ISO code, not {currency!r}")
    return Account.objects.create(name=name, billing_email=billing_email, currency=code)


def membership_add(*, account: Account, user, role: str = Membership.Role.MEMBER) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        user=user, defaults={"account": account, "role": role}
    )
    return membership


def account_ensure_stripe_customer(
    *, account: Account, payment_method: str | None = None, test_clock: str | None = None
) -> Customer:
    """The account's dj-stripe customer, creating it in Stripe the first time.

    The Stripe customer carries the account's pk under dj-stripe's subscriber key, so
    dj-stripe links the mirror back to the account on every sync.
    """
    existing = Customer.objects.filter(subscriber=account, date_purged__isnull=True).first()
    if existing is not None:
        return existing
    params: dict = {
        "name": account.name,
        "email": account.billing_email,
        "metadata": {djstripe_settings.SUBSCRIBER_CUSTOMER_KEY: str(account.pk)},
    }
    if payment_method:
        params["payment_method"] = payment_method
        params["invoice_settings"] = {"default_payment_method": payment_method}
    if test_clock:
        params["test_clock"] = test_clock
    remote = stripe_client().v1.customers.create(
        params, {"idempotency_key": f"meterdesk-account-{account.pk}-customer"}
    )
    customer = Customer.sync_from_stripe_data(remote, api_key=api_key())
    if customer.subscriber_id != account.pk:
        customer.subscriber = account
        customer.save(update_fields=["subscriber"])
    return customer


# Which status each Stripe event moves an account to.
EVENT_STATUS = {
    "invoice.paid": Status.ACTIVE,
    "invoice.payment_failed": Status.PAST_DUE,
    "customer.subscription.created": Status.ACTIVE,
    "customer.subscription.deleted": Status.CANCELED,
}


@transaction.atomic
def account_apply_stripe_event(
    *, account: Account, event_type: str, event_created: datetime
) -> bool:
    """Move the account's status for one Stripe event; returns whether it changed.

    Safe under redelivery (applying the same event again changes nothing) and under
    reordering: an event older than the last one applied is ignored, so a late
    ``invoice.payment_failed`` cannot undo a newer ``invoice.paid``. ``canceled`` only
    leaves through a new subscription, and ``suspended`` only through payment.
    """
    account = Account.objects.select_for_update().get(pk=account.pk)
    target = EVENT_STATUS.get(event_type)
    if target is None:
        return False
    if account.status_event_created and event_created < account.status_event_created:
        return False
    if account.status == Status.CANCELED and event_type != "customer.subscription.created":
        return False
    if target == Status.PAST_DUE and account.status == Status.SUSPENDED:
        target = Status.SUSPENDED  # still unpaid: stays suspended
    if event_type == "customer.subscription.created" and account.status in (
        Status.PAST_DUE,
        Status.SUSPENDED,
    ):
        target = account.status  # a new subscription does not settle old debt
    account.status_event_created = event_created
    changed = account.status != target
    if changed:
        account.status = target
        account.status_changed_at = timezone.now()
        if target == Status.PAST_DUE:
            account.past_due_since = event_created
        elif target == Status.ACTIVE:
            account.past_due_since = None
    account.save()
    return changed


def accounts_suspend_overdue(*, now: datetime | None = None) -> int:
    """Suspend accounts that stayed ``past_due`` longer than the grace period."""
    now = now or timezone.now()
    grace = timedelta(hours=settings.BILLING_PAST_DUE_GRACE_HOURS)
    return Account.objects.filter(status=Status.PAST_DUE, past_due_since__lte=now - grace).update(
        status=Status.SUSPENDED, status_changed_at=now
    )
