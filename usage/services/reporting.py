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
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import stripe
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Max, Min, Q
from django.utils import timezone

from billing.models import Account, Meter
from usage.models import UsageEvent, UsageReport
from usage.selectors.periods import PeriodResolver, account_stripe_customer_id

log = logging.getLogger(__name__)
Status = UsageReport.Status

STRIPE_PAST_WINDOW = timedelta(days=35)
# A report is only sent while its timestamp is comfortably inside Stripe's window.
TOO_LATE_MARGIN = timedelta(minutes=10)
PASS_TIME_BUDGET = 120.0  # seconds of sending per pass; the rest waits for the next
_ID_CHUNK = 500


@dataclass
class PassResult:
    claimed_events: int = 0
    reports_created: int = 0
    too_late: list[int] = field(default_factory=list)
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped_locked: int = 0

    def summary(self) -> str:
        return (
            f"claimed {self.claimed_events} events into {self.reports_created} reports "
            f"({len(self.too_late)} too late); sent {self.sent}, will retry {self.retried}, "
            f"failed {self.failed}"
        )


def report_identifier(
    *, customer_id: str, event_name: str, period_start: datetime, seq: int
) -> str:
    """Deterministic: the same report always has the same identifier (<= 100 chars)."""
    key = f"{customer_id}|{event_name}|{int(period_start.timestamp())}|{seq}"
    return "mdu_" + hashlib.sha256(key.encode()).hexdigest()


# -- claim ------------------------------------------------------------------------------
def _pair_lock(account_id: int, meter_id: int) -> bool:
    """Serialise claims of one (customer, meter) across workers (PostgreSQL only;
    SQLite already serialises every write transaction)."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s)",
            [account_id & 0x7FFFFFFF, meter_id & 0x7FFFFFFF],
        )
        return bool(cursor.fetchone()[0])


def _unreported(account_id: int, meter_id: int, limit: int):
    events = UsageEvent.objects.filter(
        account_id=account_id, meter_id=meter_id, report__isnull=True
    ).order_by("id")
    if connection.features.has_select_for_update_skip_locked:
        events = events.select_for_update(skip_locked=True)
    return list(events.values_list("id", "value", "timestamp")[:limit])


def _group_by_period(account: Account, rows) -> dict[tuple[datetime, datetime], list]:
    resolver = PeriodResolver(account)
    groups: dict[tuple[datetime, datetime], list] = {}
    for row in rows:
        groups.setdefault(resolver.period(row[2]), []).append(row)
    return groups


def _period_last(account_id: int, meter_id: int, period) -> tuple[int, datetime]:
    """The newest claimed event of the period (by timestamp, then id): value and time."""
    value, ts = (
        UsageEvent.objects.filter(
            account_id=account_id,
            meter_id=meter_id,
            timestamp__gte=period[0],
            timestamp__lt=period[1],
            report__isnull=False,
        )
        .order_by("-timestamp", "-id")
        .values_list("value", "timestamp")
        .first()
    )
    return value, ts


def _claim_pair(
    *, account: Account, meter: Meter, customer_id: str, now: datetime, result: PassResult
) -> None:
    with transaction.atomic():
        if not _pair_lock(account.pk, meter.pk):
            result.skipped_locked += 1
            return
        rows = _unreported(account.pk, meter.pk, settings.USAGE_REPORT_CLAIM_LIMIT)
        if not rows:
            return
        groups = _group_by_period(account, rows)
        last_seq = dict(
            UsageReport.objects.filter(
                account=account, meter=meter, period_start__in=[p[0] for p in groups]
            )
            .values_list("period_start")
            .annotate(seq=Max("sequence"))
        )
        for period, group in sorted(groups.items()):
            seq = last_seq.get(period[0], 0) + 1
            if meter.aggregation == Meter.Aggregation.COUNT:
                value, ts = len(group), max(r[2] for r in group)
            elif meter.aggregation == Meter.Aggregation.SUM:
                value, ts = sum(r[1] for r in group), max(r[2] for r in group)
            else:
                value, ts = 0, max(r[2] for r in group)  # set below, once events point here
            too_late = ts < now - STRIPE_PAST_WINDOW + TOO_LATE_MARGIN
            report = UsageReport.objects.create(
                account=account,
                meter=meter,
                period_start=period[0],
                period_end=period[1],
                sequence=seq,
                identifier=report_identifier(
                    customer_id=customer_id,
                    event_name=meter.event_name,
                    period_start=period[0],
                    seq=seq,
                ),
                stripe_customer_id=customer_id,
                event_name=meter.event_name,
                value=value,
                event_count=len(group),
                timestamp=ts,
                status=Status.TOO_LATE if too_late else Status.PENDING,
                next_attempt_at=now,
                last_error=(
                    "older than Stripe's 35-day window when it was claimed; not sent"
                    if too_late
                    else ""
                ),
            )
            ids = [r[0] for r in group]
            for start in range(0, len(ids), _ID_CHUNK):
                UsageEvent.objects.filter(id__in=ids[start : start + _ID_CHUNK]).update(
                    report=report
                )
            if meter.aggregation == Meter.Aggregation.LAST:
                if too_late:  # what is at stake: the group's own newest value
                    report.value = max(group, key=lambda r: (r[2], r[0]))[1]
                else:  # the period's newest so far, so the latest report always wins
                    report.value, report.timestamp = _period_last(account.pk, meter.pk, period)
                report.save(update_fields=["value", "timestamp"])
            result.claimed_events += len(group)
            result.reports_created += 1
            if too_late:
                result.too_late.append(report.pk)
                log.warning(
                    "usage report %s is too late for Stripe: %s units of %s for %s",
                    report.pk,
                    report.value,
                    meter.event_name,
                    customer_id,
                )


def _due_pairs(*, now: datetime, flush: bool) -> list[tuple[int, int]]:
    """(account, meter) pairs with unreported events that are due: at least
    ``USAGE_REPORT_BATCH_MIN_EVENTS`` of them, or the oldest received at least
    ``USAGE_REPORT_BATCH_MAX_WAIT_SECONDS`` ago (``flush``: every pair). Batching keeps
    Stripe calls per event low at steady load; live numbers come from the ledger."""
    # .order_by() clears the model's default ordering: with it, GROUP BY would include
    # the id and return one "pair" per event (and the pass would make queries per event).
    rows = (
        UsageEvent.objects.filter(report__isnull=True)
        .order_by()
        .values_list("account_id", "meter_id")
        .annotate(n=Count("id"), oldest=Min("received_at"))
    )
    min_events = settings.USAGE_REPORT_BATCH_MIN_EVENTS
    waited_since = now - timedelta(seconds=settings.USAGE_REPORT_BATCH_MAX_WAIT_SECONDS)
    return [
        (account_id, meter_id)
        for account_id, meter_id, n, oldest in rows
        if flush or n >= min_events or oldest <= waited_since
    ]


def usage_reports_claim(
    *, now: datetime | None = None, result: PassResult | None = None, flush: bool = False
):
    """Turn the due pairs' unreported events into (part of) reports (module docstring)."""
    now = now or timezone.now()
    result = result or PassResult()
    pairs = _due_pairs(now=now, flush=flush)
    random.shuffle(pairs)  # several workers spread over different pairs
    accounts = Account.objects.in_bulk({a for a, _ in pairs})
    meters = Meter.objects.in_bulk({m for _, m in pairs})
    customers: dict[int, str | None] = {}
    for account_id, meter_id in pairs:
        account = accounts[account_id]
        if account_id not in customers:
            customers[account_id] = account_stripe_customer_id(account=account)
        if customers[account_id] is None:
            log.error("account %s has usage but no Stripe customer", account_id)
            continue
        _claim_pair(
            account=account,
            meter=meters[meter_id],
            customer_id=customers[account_id],
            now=now,
            result=result,
        )
    return result


# -- send -------------------------------------------------------------------------------
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
        status=Status.SENT, sent_at=now, lease_until=None, stripe_response_id=response_id[:255]
    )


def _mark_retry(report: UsageReport, *, error: str, now: datetime) -> str:
    attempts = UsageReport.objects.values_list("attempts", flat=True).get(pk=report.pk)
    status = Status.FAILED if attempts >= settings.USAGE_REPORT_MAX_ATTEMPTS else Status.PENDING
    UsageReport.objects.filter(pk=report.pk, status=Status.SENDING).update(
        status=status,
        lease_until=None,
        last_error=error[:2000],
        next_attempt_at=now + timedelta(seconds=_backoff(attempts)),
    )
    return status


def _mark(report: UsageReport, *, status: str, error: str) -> None:
    UsageReport.objects.filter(pk=report.pk, status=Status.SENDING).update(
        status=status, lease_until=None, last_error=error[:2000]
    )


def _send(client, report: UsageReport):
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
        code = (getattr(getattr(exc, "error", None), "code", None) or "").lower()
        if status == 400 and code == "timestamp_too_far_in_past":
            _mark(report, status=Status.TOO_LATE, error=text)
            return Status.TOO_LATE
        if status in (400, 404):  # Stripe will never accept it as it is: staff decide
            _mark(report, status=Status.FAILED, error=text)
            return Status.FAILED
        # 429, 5xx, 401/403 (configuration), timeouts and connection errors: retry,
        # counting the backoff from now (or from the pass's clock, if it is ahead).
        return _mark_retry(report, error=text, now=max(now, timezone.now()))
    _mark_sent(
        report,
        response_id=str(response.get("identifier") or report.identifier),
        now=timezone.now(),
    )
    return Status.SENT


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
    while time.monotonic() - started < PASS_TIME_BUDGET:
        moment = fixed_now or timezone.now()
        progressed = False
        for pk in _sendable_heads(moment):
            if time.monotonic() - started >= PASS_TIME_BUDGET:
                break
            if not _acquire(pk, moment):
                continue
            status = usage_report_send(report_id=pk, client=client, limiter=limiter, now=moment)
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


def usage_report_pass(
    *, now: datetime | None = None, client=None, limiter=None, flush: bool = False
) -> PassResult:
    """One reporting pass: claim due events into reports, then send what is due.
    ``flush`` claims every unreported event, batched or not."""
    result = usage_reports_claim(now=now, flush=flush)
    return usage_reports_send_due(now=now, client=client, limiter=limiter, result=result)


def usage_report_retry(*, report: UsageReport, now: datetime | None = None) -> bool:
    """Staff action: put a failed (or too-late) report back in the queue."""
    now = now or timezone.now()
    return bool(
        UsageReport.objects.filter(
            pk=report.pk, status__in=[Status.FAILED, Status.TOO_LATE]
        ).update(status=Status.PENDING, next_attempt_at=now, attempts=0, last_error="")
    )
