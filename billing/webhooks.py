"""Thin dj-stripe receivers: look up nothing heavy, queue a task after the commit.

They run inside dj-stripe's webhook request and transaction. dj-stripe stores each
Stripe event once (by id), so a redelivered event does not reach them twice.
"""

from functools import partial

from django.db import transaction
from djstripe.event_handlers import djstripe_receiver

from billing.services.accounts import EVENT_STATUS


@djstripe_receiver(sorted(EVENT_STATUS))
def queue_account_status_update(sender, event, **kwargs):
    from billing.tasks import apply_stripe_event_to_account

    transaction.on_commit(partial(apply_stripe_event_to_account.delay, event.id))
