"""Thin dj-stripe receivers: record the event in the webhook's transaction, queue after it.

They run inside dj-stripe's webhook request and transaction. dj-stripe stores each
Stripe event once (by id), so a redelivered event does not reach them twice; the inbox
row written here (``billing.services.account_events``) makes sure the one delivery that
does reach them is applied even when the broker is down.
"""

from djstripe.event_handlers import djstripe_receiver

from billing.services.accounts import EVENT_STATUS


@djstripe_receiver(sorted(EVENT_STATUS))
def record_account_status_event(sender, event, **kwargs):
    from billing.services.account_events import account_event_record

    account_event_record(event_id=event.id, event_type=event.type)
