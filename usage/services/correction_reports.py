"""The reports a correction adds to the outbox (sent by the ordinary sender)."""

from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Max
from django.utils import timezone

from billing.models import Meter
from usage.models import UsageEvent, UsageReport
from usage.services.report_claim import report_identifier


def period_last_value(*, report: UsageReport, meter: Meter) -> int:
    """A last meter's period value once the voided events are out: the newest reported,
    unvoided event of the period (0 when none is left)."""
    value = (
        UsageEvent.objects.filter(
            account_id=report.account_id,
            meter=meter,
            timestamp__gte=report.period_start,
            timestamp__lt=report.period_end,
            report__isnull=False,
            void__isnull=True,
        )
        .order_by("-timestamp", "-id")
        .values_list("value", flat=True)
        .first()
    )
    return value or 0


def pair_lock(account_id: int, meter_id: int) -> None:
    """Wait for the reporting claim's lock of this (customer, meter) (PostgreSQL only;
    SQLite serialises write transactions): the claim and a correction then never pick the
    same sequence of a period."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)",
            [account_id & 0x7FFFFFFF, meter_id & 0x7FFFFFFF],
        )


def period_report_create(
    *,
    account_id: int,
    meter: Meter,
    period: tuple[datetime, datetime],
    customer_id: str,
    value: int,
    count: int,
    ts: datetime,
    now: datetime,
) -> UsageReport:
    """A new pending report of ``period`` under the period's next sequence (its own
    deterministic identifier), sent by the ordinary sender. Call under ``pair_lock``."""
    seq = (
        UsageReport.objects.filter(
            account_id=account_id, meter=meter, period_start=period[0]
        ).aggregate(m=Max("sequence"))["m"]
        or 0
    ) + 1
    return UsageReport.objects.create(
        account_id=account_id,
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
        event_count=count,
        timestamp=ts,
        next_attempt_at=min(now, timezone.now()),
    )


def next_report(
    *, report: UsageReport, meter: Meter, value: int, count: int, ts: datetime, now: datetime
) -> UsageReport:
    """A new pending report of ``report``'s period under the period's next sequence."""
    pair_lock(report.account_id, meter.pk)
    return period_report_create(
        account_id=report.account_id,
        meter=meter,
        period=(report.period_start, report.period_end),
        customer_id=report.stripe_customer_id,
        value=value,
        count=count,
        ts=ts,
        now=now,
    )


def correcting_report_create(
    *, report: UsageReport, meter: Meter, quantity: int, now: datetime
) -> UsageReport | None:
    """The meter event that corrects a period Stripe has had for over 24 hours.

    Stripe: "You can also fix incorrectly recorded usage data by recording negative
    quantities. If the overall cycle usage is negative, Stripe reports the invoice line
    item usage quantity as 0." (Configure meters, "Fix incorrect usage data":
    https://docs.stripe.com/billing/subscriptions/usage-based/meters/configure). Sum and
    count meters (Stripe formula ``sum``) get ``quantity`` (negative); a last meter gets
    the newest remaining value one second after the period's newest report, so it wins.
    """
    if meter.aggregation == Meter.Aggregation.LAST:
        newest = UsageReport.objects.filter(
            account_id=report.account_id, meter=meter, period_start=report.period_start
        ).aggregate(m=Max("timestamp"))["m"]
        ts = min(newest + timedelta(seconds=1), report.period_end - timedelta(seconds=1))
        value = period_last_value(report=report, meter=meter)
        return next_report(report=report, meter=meter, value=value, count=0, ts=ts, now=now)
    if quantity == 0:
        return None
    return next_report(
        report=report, meter=meter, value=quantity, count=0, ts=report.timestamp, now=now
    )
