"""Reporting usage to Stripe meters, exactly once, through an outbox.

A pass has two steps.

1. **Claim** (one transaction per customer and meter): unreported events are read under
   ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite serialises writers), grouped
   by the billing period their timestamp falls in, and for each group a ``UsageReport``
   row is written with a deterministic identifier and the events are pointed at it. The
   report exists before Stripe is called: whatever happens next, the usage is either in
   an unsent report (and will be sent) or sent, never both nowhere and twice.
2. **Send**: per (customer, meter) only the oldest unsent report is sendable, leased
   by one sender at a time (a partial unique index on ``status='sending'``), sent with
   its identifier, and marked sent. 429s, 5xxs, timeouts and connection errors retry
   with exponential backoff and jitter, always with the same identifier, which Stripe
   deduplicates; a sender killed mid-call leaves a lease that expires, and the report
   is resent with the same identifier. A 400 saying the identifier was already used
   means an earlier send landed: the report is marked sent.

Values: ``sum`` meters send the sum, ``count`` meters the number of events (as values
of a Stripe ``sum`` meter, so pre-aggregation stays exact), ``last`` meters the newest
value of the period (by timestamp, then arrival) with that event's timestamp, so the
newest report of a period always carries the period's last value.

Stripe accepts meter events up to 35 days old. A group whose newest event is older
than that (minus a safety margin) is stored as a ``too_late`` report with the units at
stake, for staff; it is never dropped silently.

Step 1 is :mod:`usage.services.report_claim`, step 2 :mod:`usage.services.report_send`
(``USAGE_REPORT_TRANSPORT = "v1"``) or :mod:`usage.services.report_stream` (``"v2_stream"``:
the same outbox, leases and identifiers, 100 reports a call on Stripe's v2 meter event
stream, v1 as fallback).
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.utils import timezone

from usage.models import UsageReport
from usage.services.report_claim import PassResult, usage_reports_claim
from usage.services.report_send import usage_reports_send_due

Status = UsageReport.Status


def usage_report_pass(
    *, now: datetime | None = None, client=None, limiter=None, flush: bool = False
) -> PassResult:
    """One reporting pass: claim due events into reports, then send what is due.
    ``flush`` claims every unreported event, batched or not."""
    result = usage_reports_claim(now=now, flush=flush)
    return report_sender()(now=now, client=client, limiter=limiter, result=result)


def report_sender():
    """The send step ``USAGE_REPORT_TRANSPORT`` names: ``v1`` (one report a call) or
    ``v2_stream`` (:mod:`usage.services.report_stream`, 100 a call, v1 as fallback)."""
    transport = settings.USAGE_REPORT_TRANSPORT
    if transport == UsageReport.Transport.V2_STREAM:
        from usage.services.report_stream import usage_reports_stream_due

        return usage_reports_stream_due
    if transport == UsageReport.Transport.V1:
        return usage_reports_send_due
    raise ValueError(f"USAGE_REPORT_TRANSPORT must be v1 or v2_stream, not {transport!r}")


def resend_identifier(identifier: str, resend: int) -> str:
    """The identifier of a report's ``resend``-th resend: the original's plus ``.r<n>``."""
    return f"{identifier.split('.r')[0]}.r{resend}"


def usage_report_retry(*, report: UsageReport, now: datetime | None = None) -> bool:
    """Staff action: put a failed (or too-late) report back in the queue.

    A report Stripe accepted (200) and refused later, in an asynchronous error report
    (``stripe_error_code`` set, ``sent_at`` set), is re-sent under a NEW identifier and
    Idempotency-Key: reusing the key within 24 hours would get Stripe's stored 200 back
    without the event being processed again ("Subsequent requests with the same key
    return the same result", https://docs.stripe.com/api/idempotent_requests), and
    whether Stripe keeps the identifier of an event it refused is not documented (its
    uniqueness is enforced "within a rolling 24 hour period",
    https://docs.stripe.com/api/v2/billing/meter-events/create); a new one is safe
    either way, since Stripe never counted the old one. Any other failed report keeps
    its identifier: after timeouts Stripe may hold it, and the identifier makes the
    resend count once."""
    now = now or timezone.now()
    report = UsageReport.objects.get(pk=report.pk)
    changes = {
        "status": Status.PENDING,
        "next_attempt_at": now,
        "attempts": 0,
        "last_error": "",
        "stripe_error_code": "",
    }
    if report.stripe_error_code and report.sent_at is not None:
        changes.update(
            identifier=resend_identifier(report.identifier, report.resends + 1),
            resends=report.resends + 1,
            sent_at=None,
            stripe_response_id="",
        )
    return bool(
        UsageReport.objects.filter(
            pk=report.pk, status__in=[Status.FAILED, Status.TOO_LATE]
        ).update(**changes)
    )
