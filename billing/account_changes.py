"""Listeners told, after the commit, that an account's status or subscription changed.

billing may not import usage, so usage registers what must follow (the entitlement
check's cached state, ``usage.services.entitlement_state.snapshot_invalidate``) from its
``AppConfig.ready``. Every save of an ``Account`` (status changes by webhook, by the beat
task's grace expiry through a save, in admin) and every save or delete of a mirrored
subscription (dj-stripe's sync: webhooks, ``stripe_sync_everything``, plan changes)
calls them once the transaction commits.
"""

from collections.abc import Callable

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from djstripe.models import Customer, Subscription

from billing.models import Account

_listeners: list[Callable[[int], None]] = []


def account_change_listener_register(listener: Callable[[int], None]) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def account_changed(account_id: int | None) -> None:
    """Tell every listener about ``account_id`` after the current transaction commits."""
    if account_id is None or not _listeners:
        return

    def tell() -> None:
        for listener in _listeners:
            listener(account_id)

    transaction.on_commit(tell, robust=True)


@receiver(post_save, sender=Account, dispatch_uid="billing.account_changes.account")
def _account_saved(sender, instance: Account, **kwargs) -> None:
    account_changed(instance.pk)


@receiver(post_save, sender=Subscription, dispatch_uid="billing.account_changes.sub_saved")
@receiver(post_delete, sender=Subscription, dispatch_uid="billing.account_changes.sub_deleted")
def _subscription_changed(sender, instance: Subscription, **kwargs) -> None:
    if not _listeners or not instance.customer_id:
        return
    account_changed(
        Customer.objects.filter(id=instance.customer_id)
        .values_list("subscriber_id", flat=True)
        .first()
    )
