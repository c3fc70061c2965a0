"""Reporting, step 2 (see :mod:`usage.services.reporting`): send the oldest unsent report
of each (customer, meter) under a lease, with its identifier; retry with backoff; mark
it sent, failed or too late. Anything else one report raises is recorded against its
pair and the pass goes on with the others."""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime, timedelta

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from usage.models import ReportingFailure, UsageReport
from usage.services.report_claim import STRIPE_PAST_WINDOW, TOO_LATE_MARGIN, PassResult
from usage.services.report_failures import (
    failing_pairs,
    reporting_failure_clear,
    reporting_failure_record,
)

log = logging.getLogger(__name__)
Status = UsageReport.Status
PASS_TIME_BUDGET = 120.0  # seconds of sending per pass; the rest waits for the next


def _backoff(attempts: int) -> float:
    base = settings.USAGE_REPORT_RETRY_BASE_SECONDS
    ceiling = min(settings.USAGE_REPORT_RETRY_MAX_SECONDS, base * 2 ** max(0, attempts - 1))
    return random.uniform(ceiling / 2, ceiling)  # "equal jitter"


def _sendable_heads(now: datetime) -> list[int]:
    """Per (customer, meter), the oldest unsent report, if it may be sent now."""
    rows = (
        UsageReport.objects.filter(status__in=[Status.PENDING, Status.SENDING])
        .order_by("id")
        .values_list("id", "account_id", "meter_id", "status", "next_attempt_at", "lease_until")
    )
    heads, seen = [], set()
    for pk, account_id, meter_id, status, next_at, lease_until in rows:
        if (account_id, meter_id) in seen:
            continue
        seen.add((account_id, meter_id))
        if (status == Status.PENDING and next_at <= now) or (
            status == Status.SENDING and (lease_until is None or lease_until < now)
        ):
            heads.append(pk)
    random.shuffle(heads)
    return heads


def _acquire(pk: int, now: datetime) -> bool:
    """Lease the report for this sender; False when someone else has it."""
    lease = now + timedelta(seconds=settings.USAGE_REPORT_LEASE_SECONDS)
    due = Q(status=Status.PENDING, next_attempt_at__lte=now) | Q(
        status=Status.SENDING, lease_until__lt=now
    )
    try:
        with transaction.atomic():
            return bool(
                UsageReport.objects.filter(due, pk=pk).update(
                    status=Status.SENDING, lease_until=lease, attempts=F("attempts") + 1
                )
            )
    except IntegrityError:  # another report of this customer and meter is in flight
        return False


def _is_duplicate_identifier(exc: stripe.StripeError) -> bool:
    error = getattr(exc, "error", None)
    code = (getattr(error, "code", None) or getattr(exc, "code", None) or "").lower()
    message = (getattr(error, "message", None) or str(exc)).lower()
    return "duplicate" in code or (
        "identifier" in message and ("already" in message or "duplicate" in message)
    )


def _mark_sent(report: UsageReport, *, response_id: str, now: datetime) -> None:
    UsageReport.objects.filter(pk=report.pk, status=Status.SENDING).update(
        status=Status.SENT,
        sent_at=now,
        lease_until=None,
        stripe_response_id=response_id[:255],
        transport=UsageReport.Transport.V1,
    )


def _mark_retry(report_id: int, *, error: str, now: datetime) -> str:
    attempts = UsageReport.objects.values_list("attempts", flat=True).get(pk=report_id)
    status = Status.FAILED if attempts >= settings.USAGE_REPORT_MAX_ATTEMPTS else Status.PENDING
    UsageReport.objects.filter(pk=report_id, status=Status.SENDING).update(
        status=status,
        lease_until=None,
        last_error=error[:2000],
        next_attempt_at=now + timedelta(seconds=_backoff(attempts)),
    )
    return status


def _mark(report: UsageReport, *, status: str, error: str, code: str = "") -> None:
    UsageReport.objects.filter(pk=report.pk, status=Status.SENDING).update(
        status=status, lease_until=None, last_error=error[:2000], stripe_error_code=code[:64]
    )


def _send(client, report: UsageReport):
    # A report stays on the endpoint it was first sent through (see report_stream).
    UsageReport.objects.filter(pk=report.pk, transport="").update(
        transport=UsageReport.Transport.V1
    )
    return client.v1.billing.meter_events.create(
        {
            "event_name": report.event_name,
            "payload": {
                report.meter.customer_payload_key: report.stripe_customer_id,
                report.meter.value_payload_key: str(report.value),
            },
            "identifier": report.identifier,
            "timestamp": int(report.timestamp.timestamp()),
        },
        {"idempotency_key": report.identifier},
    )


def usage_report_send(*, report_id: int, client, limiter, now: datetime | None = None) -> str:
    """Send one leased report; returns its new status. Never raises for Stripe errors."""
    report = UsageReport.objects.select_related("meter").get(pk=report_id)
    now = now or timezone.now()
    if report.timestamp < now - STRIPE_PAST_WINDOW + TOO_LATE_MARGIN:
        _mark(report, status=Status.TOO_LATE, error="older than Stripe's 35-day window; not sent")
        return Status.TOO_LATE
    limiter.acquire()
    try:
        response = _send(client, report)
    except stripe.StripeError as exc:
        status = getattr(exc, "http_status", None)
        text = f"{type(exc).__name__} {status}: {exc.user_message or exc}"
        if status == 400 and _is_duplicate_identifier(exc):
            _mark_sent(report, response_id="duplicate-identifier", now=timezone.now())
            return Status.SENT
        error = getattr(exc, "error", None)
        code = (getattr(error, "code", None) or getattr(exc, "code", None) or "").lower()
        if status == 400 and code == "timestamp_too_far_in_past":
            _mark(report, status=Status.TOO_LATE, error=text, code=code)
            return Status.TOO_LATE
        if status in (400, 404):  # Stripe will never accept it as it is: staff decide
            _mark(report, status=Status.FAILED, error=text, code=code)
            return Status.FAILED
        # 429, 5xx, 401/403 (configuration), timeouts and connection errors: retry,
        # counting the backoff from now (or from the pass's clock, if it is ahead).
        return _mark_retry(report.pk, error=text, now=max(now, timezone.now()))
    _mark_sent(
        report,
        response_id=str(response.get("identifier") or report.identifier),
        now=timezone.now(),
    )
    return Status.SENT


def _send_failed(pk: int, exc: Exception, now: datetime, result: PassResult) -> None:
    """An unexpected error while sending report ``pk``: release it for a later retry
    (with backoff, counting the attempt) and record the failure against its pair."""
    result.pair_errors += 1
    pair = UsageReport.objects.filter(pk=pk).values_list("account_id", "meter_id").first()
    if pair is None:
        return
    try:
        _mark_retry(pk, error=f"{type(exc).__name__}: {exc}", now=max(now, timezone.now()))
    except Exception:
        log.exception("could not release usage report %s after an error", pk)
    reporting_failure_record(
        account_id=pair[0],
        meter_id=pair[1],
        stage=ReportingFailure.Stage.SEND,
        error=exc,
        now=now,
    )


def _clear_pair_of(pk: int, now: datetime, failing: set[tuple[int, int]]) -> None:
    pair = UsageReport.objects.values_list("account_id", "meter_id").get(pk=pk)
    if pair in failing:
        reporting_failure_clear(account_id=pair[0], meter_id=pair[1], now=now)
        failing.discard(pair)


def usage_reports_send_due(
    *, now: datetime | None = None, client=None, limiter=None, result: PassResult | None = None
) -> PassResult:
    """Send every report that is due, in rounds, until none is left or time is up."""
    from billing.stripe_api import stripe_client
    from usage.services.limiter import report_limiter

    result = result or PassResult()
    client = client or stripe_client(max_network_retries=0)
    limiter = limiter or report_limiter()
    started = time.monotonic()
    fixed_now = now
    failing = failing_pairs()
    while time.monotonic() - started < PASS_TIME_BUDGET:
        moment = fixed_now or timezone.now()
        progressed = False
        for pk in _sendable_heads(moment):
            if time.monotonic() - started >= PASS_TIME_BUDGET:
                break
            try:  # whatever one report raises, the other pairs are still sent
                if not _acquire(pk, moment):
                    continue
                status = usage_report_send(report_id=pk, client=client, limiter=limiter, now=moment)
            except Exception as exc:
                _send_failed(pk, exc, moment, result)
                continue
            if failing and status == Status.SENT:
                _clear_pair_of(pk, moment, failing)
            if status == Status.SENT:
                result.sent += 1
                progressed = True
            elif status == Status.PENDING:
                result.retried += 1
            elif status == Status.FAILED:
                result.failed += 1
            elif status == Status.TOO_LATE:
                result.too_late.append(pk)
                progressed = True
        if not progressed:
            break
    return result
