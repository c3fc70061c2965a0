"""Thin dj-stripe receivers: record the event in the webhook's transaction, queue after it.

They run inside dj-stripe's webhook request and transaction. dj-stripe stores each
Stripe event once (by id), so a redelivered event does not reach them twice; the inbox
row written here (``billing.services.account_events``) makes sure the one delivery that
does reach them is applied even when the broker is down.
"""

from django.dispatch import receiver
from djstripe import signals
from djstripe.enums import WebhookEndpointValidation
from djstripe.event_handlers import djstripe_receiver

from billing.services.accounts import EVENT_STATUS
from billing.services.credit_sync import CREDIT_INVOICE_EVENTS


@djstripe_receiver(sorted(EVENT_STATUS))
def record_account_status_event(sender, event, **kwargs):
    """An account's status follows its subscription's invoices; a credit purchase's
    payment (paid or failed) says nothing about the subscription, so it moves nothing."""
    from billing.mirror.credit_shapes import event_invoice
    from billing.services.account_events import account_event_record

    invoice = event_invoice(event.stripe_data or {})
    if invoice is not None and invoice.grant_pk:
        return
    account_event_record(event_id=event.id, event_type=event.type)


@djstripe_receiver(CREDIT_INVOICE_EVENTS)
def record_credit_invoice_event(sender, event, **kwargs):
    """A purchase invoice paid / voided / uncollectible, or credits applied or given back
    (finalized / voided): queued for after the commit (``billing.services.credit_sync``)."""
    from billing.services.credit_sync import credit_invoice_event_record

    credit_invoice_event_record(event_type=event.type, event_data=event.stripe_data or {})


@receiver(signals.webhook_pre_validate, dispatch_uid="meterdesk-always-verify-signature")
def always_verify_signature(sender, instance, **kwargs):
    """Webhooks are never accepted unsigned: whatever validation an endpoint row says
    (dj-stripe's admin offers "None (NOT RECOMMENDED)"), every delivery is checked
    against the endpoint's signing secret. In memory only; nothing is saved."""
    endpoint = instance.webhook_endpoint
    if endpoint is not None:
        endpoint.djstripe_validation_method = WebhookEndpointValidation.verify_signature
