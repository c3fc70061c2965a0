"""Reporting, step 1 (see :mod:`usage.services.reporting`): claim unreported events into
``UsageReport`` rows with deterministic identifiers, one transaction per customer and
meter, before Stripe is called (the outbox). A period's events are split into several
reports whenever their total would pass ``REPORT_VALUE_MAX``; a pair that raises is
recorded and skipped, never stopping the other pairs."""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, Max, Min, OuterRef
from django.utils import timezone

from billing.models import Account, Meter
from usage.models import ReportingFailure, UsageEvent, UsageReport, VoidedEvent
from usage.selectors.periods import PeriodResolver, account_stripe_customer_id
from usage.services.report_failures import (
    failing_pairs,
    reporting_failure_clear,
    reporting_failure_record,
)

log = logging.getLogger(__name__)
Status = UsageReport.Status

STRIPE_PAST_WINDOW = timedelta(days=35)
# A report is only sent while its timestamp is comfortably inside Stripe's window.
TOO_LATE_MARGIN = timedelta(minutes=10)
_ID_CHUNK = 500

# The largest value one report (one Stripe meter event) carries. Stripe documents no
# maximum for a meter event value: the API reference types the payload as strings and
# says values must be whole numbers (docs.stripe.com/api/billing/meter-event/create,
# docs.stripe.com/billing/subscriptions/usage-based/recording-usage-api, "Usage
# values"); stripe-python 15 lists an asynchronous error code
# ``meter_event_value_too_many_digits`` (stripe/events/
# _v1_billing_meter_error_report_triggered_event.py) without saying how many digits are
# too many; event summaries return ``aggregated_value`` as a float
# (docs.stripe.com/api/billing/meter-event-summary/object), exact for whole numbers up
# to 2**53. So the cap is our own: 9 * 10**15 is at least the per-event maximum
# (``usage.event_validation.MAX_VALUE``, 10**14, so every event fits in one report),
# below 2**53 = 9,007,199,254,740,992 (a report stays exact as a float) and about 1,000
# times below a signed 64-bit integer's maximum (2**63 - 1 ≈ 9.22 * 10**18, PostgreSQL's
# bigint), so no report value, and no sum the claim forms, can overflow a column.
REPORT_VALUE_MAX = 9 * 10**15


class MissingStripeCustomer(Exception):
    """The account has unreported usage but no mirrored Stripe customer to send it to."""


@dataclass
class PassResult:
    claimed_events: int = 0
    reports_created: int = 0
    too_late: list[int] = field(default_factory=list)
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped_locked: int = 0
    pair_errors: int = 0  # (customer, meter) pairs that raised and were skipped

    def summary(self) -> str:
        return (
            f"claimed {self.claimed_events} events into {self.reports_created} reports "
            f"({len(self.too_late)} too late); sent {self.sent}, will retry {self.retried}, "
            f"failed {self.failed}; {self.pair_errors} pair errors"
        )


def report_identifier(
    *, customer_id: str, event_name: str, period_start: datetime, seq: int
) -> str:
    """Deterministic: the same report always has the same identifier (<= 100 chars)."""
    key = f"{customer_id}|{event_name}|{int(period_start.timestamp())}|{seq}"
    return "mdu_" + hashlib.sha256(key.encode()).hexdigest()


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
    # Voided by a correction before reporting: never sent. NOT EXISTS, not the reverse
    # one-to-one's LEFT JOIN: PostgreSQL refuses FOR UPDATE on the nullable side of an
    # outer join ("FOR UPDATE cannot be applied to the nullable side of an outer join").
    events = (
        UsageEvent.objects.filter(account_id=account_id, meter_id=meter_id, report__isnull=True)
        .filter(~Exists(VoidedEvent.objects.filter(event_id=OuterRef("pk"))))
        .order_by("id")
    )
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
            void__isnull=True,
        )
        .order_by("-timestamp", "-id")
        .values_list("value", "timestamp")
        .first()
    )
    return value, ts


def _split(rows: list, *, weight) -> list[list]:
    """Consecutive runs of ``rows`` (kept in id order, so a re-run after a rollback splits
    the same events the same way) whose weights add up to at most ``REPORT_VALUE_MAX``.
    The running total is a Python int bounded by the cap plus one event, so nothing can
    overflow; a single row heavier than the cap is a run of its own (flagged, not sent)."""
    parts: list[list] = []
    current: list = []
    total = 0
    for row in rows:
        w = weight(row)
        if current and total + w > REPORT_VALUE_MAX:
            parts.append(current)
            current, total = [], 0
        current.append(row)
        total += w
    if current:
        parts.append(current)
    return parts


def _parts(meter: Meter, group: list) -> list[tuple[list, int]]:
    """The reports a period's events become: (events, value) each."""
    if meter.aggregation == Meter.Aggregation.LAST:
        return [(group, 0)]  # the value is set once the events point at the report
    if meter.aggregation == Meter.Aggregation.COUNT:
        return [(part, len(part)) for part in _split(group, weight=lambda r: 1)]
    return [(part, sum(r[1] for r in part)) for part in _split(group, weight=lambda r: r[1])]


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
            seq = last_seq.get(period[0], 0)
            # Every report of the group carries the group's newest timestamp, split or not.
            ts = max(r[2] for r in group)
            too_late = ts < now - STRIPE_PAST_WINDOW + TOO_LATE_MARGIN
            for part, value in _parts(meter, group):
                seq += 1
                _claim_report(
                    account=account,
                    meter=meter,
                    customer_id=customer_id,
                    period=period,
                    seq=seq,
                    part=part,
                    value=value,
                    ts=ts,
                    too_late=too_late,
                    now=now,
                    result=result,
                )


def _claim_report(
    *,
    account: Account,
    meter: Meter,
    customer_id: str,
    period: tuple[datetime, datetime],
    seq: int,
    part: list,
    value: int,
    ts: datetime,
    too_late: bool,
    now: datetime,
    result: PassResult,
) -> None:
    """Write one report (the ``seq``-th of the period) and point ``part``'s events at it."""
    over_cap = value > REPORT_VALUE_MAX  # one event above the cap: kept for staff, unsent
    status, error = Status.PENDING, ""
    if too_late:
        status, error = Status.TOO_LATE, "older than Stripe's 35-day window when it was claimed"
        error += "; not sent"
    elif over_cap:
        status = Status.FAILED
        error = f"value {value} is above the per-report cap {REPORT_VALUE_MAX}; not sent"
    report = UsageReport.objects.create(
        account=account,
        meter=meter,
        period_start=period[0],
        period_end=period[1],
        sequence=seq,
        identifier=report_identifier(
            customer_id=customer_id, event_name=meter.event_name, period_start=period[0], seq=seq
        ),
        stripe_customer_id=customer_id,
        event_name=meter.event_name,
        value=value,
        event_count=len(part),
        timestamp=ts,
        status=status,
        next_attempt_at=now,
        last_error=error,
    )
    ids = [r[0] for r in part]
    for start in range(0, len(ids), _ID_CHUNK):
        UsageEvent.objects.filter(id__in=ids[start : start + _ID_CHUNK]).update(report=report)
    if meter.aggregation == Meter.Aggregation.LAST:
        if too_late:  # what is at stake: the group's own newest value
            report.value = max(part, key=lambda r: (r[2], r[0]))[1]
        else:  # the period's newest so far, so the latest report always wins
            report.value, report.timestamp = _period_last(account.pk, meter.pk, period)
        if report.value > REPORT_VALUE_MAX and not too_late:
            report.status, over_cap = Status.FAILED, True
            report.last_error = (
                f"value {report.value} is above the per-report cap {REPORT_VALUE_MAX}; not sent"
            )
        report.save(update_fields=["value", "timestamp", "status", "last_error"])
    result.claimed_events += len(part)
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
    elif over_cap:
        result.failed += 1
        log.error("usage report %s: %s", report.pk, report.last_error)


def _due_pairs(*, now: datetime, flush: bool) -> list[tuple[int, int]]:
    """(account, meter) pairs with unreported events that are due: at least
    ``USAGE_REPORT_BATCH_MIN_EVENTS`` of them, or the oldest received at least
    ``USAGE_REPORT_BATCH_MAX_WAIT_SECONDS`` ago (``flush``: every pair). Batching keeps
    Stripe calls per event low at steady load; live numbers come from the ledger."""
    # .order_by() clears the model's default ordering: with it, GROUP BY would include
    # the id and return one "pair" per event (and the pass would make queries per event).
    rows = (
        UsageEvent.objects.filter(report__isnull=True, void__isnull=True)
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
    failing = failing_pairs()
    for account_id, meter_id in pairs:
        try:  # whatever one pair raises, the other pairs are still claimed
            account = accounts[account_id]
            if account_id not in customers:
                customers[account_id] = account_stripe_customer_id(account=account)
            if customers[account_id] is None:
                raise MissingStripeCustomer(f"account {account_id} has usage but no customer")
            _claim_pair(
                account=account,
                meter=meters[meter_id],
                customer_id=customers[account_id],
                now=now,
                result=result,
            )
        except Exception as exc:
            result.pair_errors += 1
            reporting_failure_record(
                account_id=account_id,
                meter_id=meter_id,
                stage=ReportingFailure.Stage.CLAIM,
                error=exc,
                now=now,
            )
            continue
        if (account_id, meter_id) in failing:
            reporting_failure_clear(
                account_id=account_id,
                meter_id=meter_id,
                now=now,
                stage=ReportingFailure.Stage.CLAIM,
            )
    return result
