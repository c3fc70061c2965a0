"""Reporting, step 1 (see :mod:`usage.services.reporting`): claim unreported events into
``UsageReport`` rows with deterministic identifiers, one transaction per customer and
meter, before Stripe is called (the outbox)."""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from billing.models import Account, Meter
from usage.models import UsageEvent, UsageReport
from usage.selectors.periods import PeriodResolver, account_stripe_customer_id

log = logging.getLogger(__name__)
Status = UsageReport.Status

STRIPE_PAST_WINDOW = timedelta(days=35)
# A report is only sent while its timestamp is comfortably inside Stripe's window.
TOO_LATE_MARGIN = timedelta(minutes=10)
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
