"""A correction's Stripe call, made after the correction is committed, never inside its
transaction.

1. The correction service (``corrections``, ``correction_adjust``) locks, validates and
   records the correction in one transaction: ``status=pending`` when a Stripe call is
   still to come (a meter event cancel, a credit note), with its voided events and the
   recomputed rollups; every reader sees the corrected usage at that commit.
2. :func:`correction_apply` then calls Stripe with the idempotency key
   ``meterdesk-correction-<pk>`` (a resend of the same request is replayed by Stripe,
   https://docs.stripe.com/api/idempotent_requests), and a credit note carries
   ``metadata[meterdesk_correction]`` so a retry finds a note Stripe already made even
   after the key expired (24 h).
3. In a second transaction it records the result: ``applied`` (the report canceled and its
   remaining events re-reported, or the credit note's id), or ``failed`` with nothing else
   written; Stripe's message is logged and added to the correction's admin history.

Between 1 and 3 Stripe still bills the old quantity (parity shows the gap; the customer's
list says "waiting for Stripe"). A crash between them leaves the correction pending:
:func:`corrections_stale_retry` (run periodically) applies those older than
``STALE_AFTER``; staff retry a failed one (:func:`correction_retry`, the admin action).
"""

import logging
from datetime import datetime, timedelta

import stripe
from django.db import transaction
from django.utils import timezone

from usage.models import UsageCorrection, UsageEvent, UsageReport
from usage.services.correction_reports import next_report, period_last_value
from usage.services.correction_stripe import (
    credit_note_create,
    credit_note_find,
    invoice_status,
)

log = logging.getLogger(__name__)
Status = UsageCorrection.Status
STALE_AFTER = timedelta(minutes=5)


def idempotency_key(correction: UsageCorrection) -> str:
    return f"meterdesk-correction-{correction.pk}"


def _rereport(*, report: UsageReport, meter, now: datetime) -> UsageReport | None:
    """The canceled report's remaining events as a new report (next sequence)."""
    from billing.models import Meter

    remaining = list(
        UsageEvent.objects.filter(report=report, void__isnull=True).values_list("id", "value")
    )
    if not remaining:
        return None
    if meter.aggregation == Meter.Aggregation.LAST:
        value = period_last_value(report=report, meter=meter)
    elif meter.aggregation == Meter.Aggregation.COUNT:
        value = len(remaining)
    else:
        value = sum(r[1] for r in remaining)
    new = next_report(
        report=report, meter=meter, value=value, count=len(remaining), ts=report.timestamp, now=now
    )
    UsageEvent.objects.filter(id__in=[r[0] for r in remaining]).update(report=new)
    return new


def _stripe_call(correction: UsageCorrection, client) -> str:
    """The correction's one Stripe write; returns the credit note's id ("" for a cancel)."""
    if correction.path == UsageCorrection.Path.CANCEL_REREPORT:
        # https://docs.stripe.com/api/billing/meter-event-adjustment/create
        client.v1.billing.meter_event_adjustments.create(
            {
                "event_name": correction.canceled_report.event_name,
                "type": "cancel",
                "cancel": {"identifier": correction.stripe_canceled_identifier},
            },
            {"idempotency_key": idempotency_key(correction)},
        )
        return ""
    invoice_id = correction.stripe_invoice_id
    found = credit_note_find(client=client, invoice_id=invoice_id, correction_id=correction.pk)
    if found:
        return found
    return credit_note_create(
        client=client,
        invoice_id=invoice_id,
        status=invoice_status(client=client, invoice_id=invoice_id),
        amount=correction.credit_amount,
        description=(
            f"{correction.meter.display_name}: corrected to {correction.billed_quantity} "
            f"{correction.meter.unit_label} (correction #{correction.pk})"
        ),
        memo=correction.reason,
        correction_id=correction.pk,
    )


def _error_record(correction: UsageCorrection, message: str) -> None:
    log.warning("correction %s: Stripe refused it: %s", correction.pk, message)
    if correction.created_by_id is None:
        return
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    LogEntry.objects.create(
        user_id=correction.created_by_id,
        content_type=ContentType.objects.get_for_model(UsageCorrection),
        object_id=str(correction.pk),
        object_repr=str(correction)[:200],
        action_flag=CHANGE,
        change_message=f"Stripe refused it: {message}",
    )


def correction_apply(
    *, correction: UsageCorrection, client=None, now: datetime | None = None
) -> UsageCorrection:
    """Make a pending (or failed) correction's Stripe call and record the result (see the
    module doc). Returns the correction as recorded; a failed one has ``error`` set."""
    now = now or timezone.now()
    correction.error = ""
    if correction.status == Status.APPLIED:
        return correction
    from billing.stripe_api import stripe_client

    try:
        note_id = _stripe_call(correction, client or stripe_client())
    except stripe.StripeError as exc:
        message = exc.user_message or str(exc)
        with transaction.atomic():
            locked = UsageCorrection.objects.select_for_update().get(pk=correction.pk)
            if locked.status != Status.APPLIED:
                locked.status = Status.FAILED
                locked.last_error = message[:2000]
                locked.save(update_fields=["status", "last_error"])
                _error_record(locked, message)
        locked.error = message
        return locked
    with transaction.atomic():
        locked = (
            UsageCorrection.objects.select_for_update()
            .select_related("meter")
            .get(pk=correction.pk)
        )
        locked.error = ""
        if locked.status == Status.APPLIED:  # another worker recorded it first
            return locked
        if locked.path == UsageCorrection.Path.CANCEL_REREPORT:
            report = UsageReport.objects.select_for_update().get(pk=locked.canceled_report_id)
            report.status = UsageReport.Status.CANCELED
            report.save(update_fields=["status"])
            locked.rereport = _rereport(report=report, meter=locked.meter, now=now)
        else:
            locked.stripe_credit_note_id = note_id
        locked.status, locked.last_error = Status.APPLIED, ""
        locked.save(update_fields=["status", "rereport", "stripe_credit_note_id", "last_error"])
    return locked


def correction_apply_after_commit(
    *, correction: UsageCorrection, client=None, now: datetime | None = None
) -> UsageCorrection:
    """:func:`correction_apply` now, or, when called inside an outer transaction (the
    admin's, a dispute's), once that commits: the Stripe call never runs inside one. Until
    then the correction is pending (and applied by the stale pass if the callback is
    lost)."""
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(
            lambda: correction_apply(correction=correction, client=client, now=now)
        )
        correction.error = ""
        return correction
    return correction_apply(correction=correction, client=client, now=now)


def correction_retry(
    *, correction: UsageCorrection, client=None, now: datetime | None = None
) -> UsageCorrection:
    """Staff (or the periodic pass): try a failed or pending correction's Stripe call
    again, under the same idempotency key; an applied one is left as it is."""
    fresh = UsageCorrection.objects.select_related("meter", "canceled_report").get(pk=correction.pk)
    return correction_apply(correction=fresh, client=client, now=now)


def corrections_stale_retry(*, client=None, now: datetime | None = None) -> int:
    """Apply the corrections still pending ``STALE_AFTER`` after they were made (the
    process that made them died between its two transactions). Returns how many are
    applied now."""
    now = now or timezone.now()
    applied = 0
    stale = UsageCorrection.objects.filter(
        status=Status.PENDING, created_at__lt=now - STALE_AFTER
    ).order_by("id")
    for correction in stale.select_related("meter", "canceled_report"):
        done = correction_apply(correction=correction, client=client, now=now)
        applied += done.status == Status.APPLIED
    return applied
