"""Claiming an alert and sending its e-mail: the one pattern every alert kind uses.

The claim is an INSERT of the ``AlertDelivery`` row; the unique constraints (one per
(account, rule, level, period) and one per (account, budget, level, period)) make a
concurrent or later claim fail, so each alert goes out once however many evaluations
or workers run. In the claim's transaction the alert's channel deliveries are added
(``usage.services.alert_channels``); the e-mail and the channel sends run only after it
commits. The e-mail send leases the row (``lease_until``) and records ``sent_at``; a
failed send leaves it pending for the next evaluation that still finds it reached.
"""

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from usage.models import AlertDelivery
from usage.models_budgets import Budget
from usage.services.alert_channel_send import channel_deliveries_send_after_commit
from usage.services.alert_channels import AlertFacts, alert_channels_open

logger = logging.getLogger(__name__)
# Longer than any SMTP send; a worker that dies mid-send frees the delivery after this.
SEND_LEASE = timedelta(minutes=10)


def alert_claim(
    *, fields: dict, facts: AlertFacts, budget_limit: int | None = None
) -> AlertDelivery | None:
    """INSERT the delivery row and its channel deliveries in one transaction; None when
    it was claimed already. ``budget_limit``: the limit the budget's status was computed
    with; the budget row is locked and the claim skipped if its limit has changed since
    (a raise committed meanwhile, see ``usage.services.budget_alerts``)."""
    try:
        with transaction.atomic():
            if budget_limit is not None:
                current = (
                    Budget.objects.select_for_update()
                    .filter(pk=facts.budget.pk)
                    .values_list("limit", flat=True)
                )
                if list(current) != [budget_limit]:
                    return None
            delivery = AlertDelivery.objects.create(**fields)
            channels = alert_channels_open(delivery=delivery, facts=facts)
    except IntegrityError:
        return None  # claimed already for this level and period
    channel_deliveries_send_after_commit([c.pk for c in channels if c.status == "pending"])
    return delivery


def alert_email_deliver(
    *, delivery: AlertDelivery, send: Callable[[], None], summary: str, observed: int
) -> bool:
    """Lease a claimed delivery, ``send()`` its e-mail and record ``sent_at``. Returns
    whether it sent; a failed send is logged and leaves the delivery pending."""
    now = timezone.now()
    leased = (
        AlertDelivery.objects.filter(pk=delivery.pk, sent_at__isnull=True)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + SEND_LEASE)
    )
    if not leased:
        return False  # sent already, or another worker is sending it right now
    try:
        send()
    except Exception:
        logger.exception("alert e-mail failed for delivery %s; retried later", delivery.pk)
        AlertDelivery.objects.filter(pk=delivery.pk).update(lease_until=None)
        return False
    delivery.sent_at, delivery.lease_until = timezone.now(), None
    delivery.summary, delivery.observed = summary[:300], observed
    AlertDelivery.objects.filter(pk=delivery.pk).update(
        sent_at=delivery.sent_at,
        lease_until=None,
        summary=delivery.summary,
        observed=delivery.observed,
    )
    return True


def alert_email_after_commit(send_delivery: Callable[..., bool], **kwargs) -> None:
    transaction.on_commit(partial(send_delivery, **kwargs))
