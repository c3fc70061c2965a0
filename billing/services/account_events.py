"""Account status from Stripe events, surviving a broker outage.

The webhook receiver writes a ``PendingAccountEvent`` in dj-stripe's transaction, then
asks Celery to apply it after the commit without retrying the publish (a webhook must
answer fast, and Stripe retries only failures). If Redis is down the publish fails, the
webhook still answers 200 (the event is stored and the inbox row is committed) and the
beat drain applies the row a minute later. Applying is idempotent
(``account_apply_stripe_event`` ignores repeats and older events), so the task and the
drain racing each other change the status once.
"""

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from billing.models import PendingAccountEvent

logger = logging.getLogger(__name__)

# The drain leaves fresh rows to the task queued by the webhook.
DRAIN_AFTER = timedelta(seconds=30)


def account_event_record(*, event_id: str, event_type: str) -> None:
    """Inside the webhook's transaction: remember the event, queue it after the commit."""
    PendingAccountEvent.objects.get_or_create(
        event_id=event_id, defaults={"event_type": event_type}
    )
    transaction.on_commit(lambda: account_event_publish(event_id=event_id))


def account_event_publish(*, event_id: str) -> bool:
    """Queue the event's task once, without Celery's publish retries; a broker error is
    logged, not raised: the committed inbox row is the guarantee."""
    from billing.tasks import apply_stripe_event_to_account

    try:
        apply_stripe_event_to_account.apply_async(args=[event_id], retry=False)
    except Exception:  # kombu raises many kinds (OperationalError, ConnectionError, ...)
        logger.warning("broker unavailable: %s waits for the drain", event_id, exc_info=True)
        return False
    return True


def account_event_apply(*, event_id: str, now: datetime | None = None) -> bool:
    """Apply one recorded event to its account; returns whether the status changed."""
    from billing.mirror.events import event_account
    from billing.services.accounts import account_apply_stripe_event

    now = now or timezone.now()
    with transaction.atomic():
        pending = PendingAccountEvent.objects.select_for_update().filter(event_id=event_id).first()
        if pending is not None and pending.applied_at is not None:
            return False
        found = event_account(event_id=event_id)
        changed = found is not None and account_apply_stripe_event(
            account=found.account, event_type=found.type, event_created=found.created
        )
        if pending is not None:
            pending.applied_at = now
            pending.attempts += 1
            pending.save(update_fields=["applied_at", "attempts"])
    return changed


def account_events_apply_pending(*, now: datetime | None = None, limit: int = 500) -> int:
    """The beat drain: apply recorded events that no task applied; returns how many."""
    now = now or timezone.now()
    ids = list(
        PendingAccountEvent.objects.filter(
            applied_at__isnull=True, received_at__lte=now - DRAIN_AFTER
        ).values_list("event_id", flat=True)[:limit]
    )
    applied = 0
    for event_id in ids:
        try:
            account_event_apply(event_id=event_id, now=now)
            applied += 1
        except Exception as exc:  # one bad event never blocks the others
            logger.exception("could not apply %s", event_id)
            PendingAccountEvent.objects.filter(event_id=event_id).update(last_error=str(exc)[:2000])
    return applied
