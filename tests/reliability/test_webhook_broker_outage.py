"""Issue 12, item 2: a Redis outage during a webhook lost an account-status change.

The receiver queued the status task after dj-stripe committed the Event; the publish
failed (500), Stripe redelivered, dj-stripe saw the Event stored and skipped the
handlers (200), and nothing re-synced: Stripe said past_due, Meterdesk said active.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from djstripe.models import Event, WebhookEventTrigger

from billing.models import Account, PendingAccountEvent
from billing.services.account_events import account_events_apply_pending
from billing.services.accounts import account_create
from billing.services.subscriptions import subscription_create
from billing.services.webhook_endpoints import webhook_endpoint_register
from tests.conftest import wait_for
from tests.reliability.brokers import celery_publishing_to, throwaway_redis  # noqa: F401
from tests.reliability.verdict import CaseResult, record

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]


def test_a_status_event_received_while_redis_is_down_is_applied_when_it_returns(
    live_server,
    stripe_emulator,
    demo_catalog,
    throwaway_redis,  # noqa: F811
):
    started = time.monotonic()
    webhook_endpoint_register(base_url=live_server.url)
    account = account_create(name="Declined Co", billing_email="ap@declined.example")
    with celery_publishing_to(throwaway_redis.url):
        throwaway_redis.kill()  # the broker goes down
        subscription_create(
            account=account, plan=demo_catalog["pro"], payment_method="pm_card_chargeCustomerFail"
        )
        event = wait_for(
            lambda: Event.objects.filter(type="invoice.payment_failed").first(),
            timeout=20,
            what="the payment_failed delivery",
        )
        # The delivery was accepted (no exception recorded: the webhook answered 200)...
        trigger = wait_for(
            lambda: WebhookEventTrigger.objects.filter(event=event).first(),
            timeout=60,
            what="its trigger",
        )
        assert trigger.valid and trigger.processed and trigger.exception == ""
        # ... the status task could not be queued, but the change is recorded.
        pending = PendingAccountEvent.objects.get(event_id=event.id)
        assert pending.applied_at is None
        account.refresh_from_db()
        assert account.status == Account.Status.ACTIVE  # not applied yet
        throwaway_redis.start()  # Redis is back
    # The beat drain applies it (the task queued by the webhook never existed).
    assert account_events_apply_pending(now=timezone.now() + timedelta(minutes=1)) >= 1
    account.refresh_from_db()
    assert account.status == Account.Status.PAST_DUE
    pending.refresh_from_db()
    assert pending.applied_at is not None
    # Applying again changes nothing.
    assert account_events_apply_pending(now=timezone.now() + timedelta(minutes=2)) == 0
    # The fault matrix's row (f): one status event sent by Stripe, stored, applied.
    record(
        CaseResult(
            case="f_webhook_redis_outage",
            title="Webhook during a Redis outage",
            faults="invoice.payment_failed delivered while the broker is down",
            sent=1,
            stored=PendingAccountEvent.objects.filter(event_id=event.id).count(),
            reported=PendingAccountEvent.objects.filter(
                event_id=event.id, applied_at__isnull=False
            ).count(),
            lost=0 if account.status == Account.Status.PAST_DUE else 1,
        ),
        started=started,
    )
