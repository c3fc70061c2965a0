"""Open a dispute of an invoice line; resolve it with a correction or a reply.

Either resolution e-mails the customer once the resolution has committed
(``transaction.on_commit``): a rolled-back resolution sends nothing.
"""

from datetime import date, datetime
from functools import partial

from django.db import transaction
from django.utils import timezone

from billing.models import Account, Meter
from usage.dispute_email import dispute_email_send
from usage.models import UsageCorrection, UsageDispute


class DisputeNotPossible(Exception):
    """The resolution does not fit the dispute (already resolved, another account's
    correction, an empty reply)."""


def usage_dispute_open(
    *,
    account: Account,
    meter: Meter,
    invoice_id: str,
    line_id: str,
    message: str,
    user,
    day: date | None = None,
    hour: int | None = None,
    now: datetime | None = None,
) -> UsageDispute:
    return UsageDispute.objects.create(
        account=account, meter=meter, invoice_id=invoice_id, line_id=line_id,
        day=day, hour=hour if day is not None else None, message=message.strip(),
        created_by=user, created_at=now or timezone.now(),
    )  # fmt: skip


def _resolve(
    *,
    dispute: UsageDispute,
    resolution: str,
    reply: str,
    correction: UsageCorrection | None,
    user,
    now: datetime | None,
) -> UsageDispute:
    with transaction.atomic():
        locked = UsageDispute.objects.select_for_update().get(pk=dispute.pk)
        if locked.status != UsageDispute.Status.OPEN:
            raise DisputeNotPossible("This dispute is already resolved.")
        locked.status = UsageDispute.Status.RESOLVED
        locked.resolution = resolution
        locked.reply = reply.strip()
        locked.correction = correction
        locked.resolved_by = user
        locked.resolved_at = now or timezone.now()
        locked.save()
        transaction.on_commit(partial(dispute_email_send, dispute=locked))
    return locked


def usage_dispute_resolve_reply(
    *, dispute: UsageDispute, reply: str, user, now: datetime | None = None
) -> UsageDispute:
    """Resolve with a reply to the customer (no change of usage)."""
    if not reply.strip():
        raise DisputeNotPossible("A reply needs a text.")
    return _resolve(
        dispute=dispute, resolution=UsageDispute.Resolution.REPLY, reply=reply,
        correction=None, user=user, now=now,
    )  # fmt: skip


def usage_dispute_resolve_correction(
    *,
    dispute: UsageDispute,
    correction: UsageCorrection,
    user,
    reply: str = "",
    now: datetime | None = None,
) -> UsageDispute:
    """Resolve with a correction of the dispute's account (made by
    ``usage.services.corrections`` beforehand, or an existing one)."""
    if correction.account_id != dispute.account_id:
        raise DisputeNotPossible("That correction is of another account.")
    return _resolve(
        dispute=dispute, resolution=UsageDispute.Resolution.CORRECTION, reply=reply,
        correction=correction, user=user, now=now,
    )  # fmt: skip
