"""The minute-aligned window reconciliation reads from Stripe, and what Meterdesk filed in
it (see :mod:`usage.services.reconciliation` for why the comparison stays exact).

Stripe's ``GET /v1/billing/meters/{id}/event_summaries`` takes ``start_time`` and
``end_time`` "aligned with minute boundaries" (stripe-python 15,
``MeterEventSummaryListParams``; API reference "List billing meter event summaries",
https://docs.stripe.com/api/billing/meter-event-summary/list): any other bound is a 400.
Billing periods start at the second the subscription was created (hh:mm:17), so the
period ``[start, end)`` is read through the smallest aligned window that covers it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import stripe
from django.db.models import Max, Q

from billing.models import Meter
from usage.models import UsageEvent, UsageReport

MINUTE = 60


def floor_minute(moment: datetime) -> datetime:
    ts = int(moment.timestamp())
    return datetime.fromtimestamp(ts - ts % MINUTE, tz=UTC)


def ceil_minute(moment: datetime) -> datetime:
    ts = -(-int(moment.timestamp()) // MINUTE) * MINUTE
    return datetime.fromtimestamp(ts, tz=UTC)


def covering_window(*, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The smallest minute-aligned ``[a, b)`` with ``a <= start`` and ``b >= end``."""
    return floor_minute(start), ceil_minute(end)


def stripe_meter_value(
    *, client, meter: Meter, customer_id: str, start: datetime, end: datetime
) -> int:
    """Stripe's aggregated value of the meter for one customer over ``[start, end)``,
    which must be minute-aligned (Stripe refuses anything else)."""
    if start != floor_minute(start) or end != floor_minute(end):
        raise ValueError(f"[{start}, {end}) is not aligned to minutes, Stripe would refuse it")
    params = {
        "customer": customer_id,
        "start_time": int(start.timestamp()),
        "end_time": int(end.timestamp()),
    }
    for attempt in range(6):
        try:
            page = client.v1.billing.meters.event_summaries.list(meter.stripe_id, params)
            break
        except (stripe.RateLimitError, stripe.APIError, stripe.APIConnectionError):
            if attempt == 5:
                raise
            time.sleep(random.uniform(0.05, 0.2) * 2**attempt)
    summaries = list(page.auto_paging_iter())
    total = sum((Decimal(str(s.aggregated_value)) for s in summaries), Decimal(0))
    if total != total.to_integral_value():
        raise ValueError(f"Stripe's value {total} is not a whole number")
    return int(total)


@dataclass(frozen=True)
class Filed:
    """A meter event Meterdesk sent for a neighbouring period that Stripe files inside
    this period's window (its timestamp lies in a shared edge minute)."""

    timestamp: datetime
    value: int


def neighbours_in_window(
    *, account_id: int, meter_id: int, period_start: datetime, window: tuple[datetime, datetime]
) -> list[Filed]:
    """Sent reports of other periods whose timestamp lies in ``window``."""
    rows = (
        UsageReport.objects.filter(
            account_id=account_id,
            meter_id=meter_id,
            status=UsageReport.Status.SENT,
            timestamp__gte=window[0],
            timestamp__lt=window[1],
        )
        .exclude(period_start=period_start)
        .values_list("timestamp", "value")
    )
    return [Filed(timestamp=t, value=v) for t, v in rows]


def newest_report_at(*, account_id: int, meter_id: int, period_start: datetime) -> datetime:
    """The timestamp of the period's newest report (for ``last`` meters, the one that
    carries the period's last value)."""
    return UsageReport.objects.filter(
        account_id=account_id, meter_id=meter_id, period_start=period_start
    ).aggregate(t=Max("timestamp"))["t"]


def in_flight(
    *, account_id: int, meter_id: int, period_start: datetime, window: tuple[datetime, datetime]
) -> bool:
    """Whether Stripe may not yet hold everything filed in ``window``: a report of the
    period not sent yet, a report of any period with a timestamp in the window not sent
    yet, or an event in the window not claimed into a report yet."""
    unsent = Q(period_start=period_start) | Q(timestamp__gte=window[0], timestamp__lt=window[1])
    return (
        UsageReport.objects.filter(
            unsent,
            account_id=account_id,
            meter_id=meter_id,
            status__in=[UsageReport.Status.PENDING, UsageReport.Status.SENDING],
        ).exists()
        or UsageEvent.objects.filter(
            account_id=account_id,
            meter_id=meter_id,
            timestamp__gte=window[0],
            timestamp__lt=window[1],
            report__isnull=True,
        ).exists()
    )


def last_value_window(
    *, start: datetime, end: datetime, newest: datetime | None
) -> tuple[datetime, datetime]:
    """For a ``last`` meter, the window up to the minute holding the period's newest
    report: later reports (of the next period) stay out of it unless that report is in
    the period's final partial minute."""
    if newest is None:
        return covering_window(start=start, end=end)
    return floor_minute(start), ceil_minute(newest + timedelta(seconds=1))
