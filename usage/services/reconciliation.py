"""Reconciliation: the ledger against Stripe's event summaries, per customer, meter and
period, stored as ``ReconciliationResult`` rows that staff read in admin.

Stripe's summaries are eventually consistent, so by default only periods that ended
are checked (``include_open=True`` also checks the current one). The ledger is the
source of truth; a difference comes with what to do about it.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from decimal import Decimal

import stripe
from django.conf import settings
from django.utils import timezone

from billing.models import Meter
from usage.models import ReconciliationResult, UsageEvent, UsageReport
from usage.selectors.ledger import too_late_value
from usage.selectors.rollups import rollup_value

Status = ReconciliationResult.Status


def stripe_meter_value(
    *, client, meter: Meter, customer_id: str, start: datetime, end: datetime
) -> int:
    """Stripe's aggregated value of the meter for one customer over ``[start, end)``."""
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


def _suggestion(*, meter: Meter, ledger: int, remote: int, too_late: int) -> tuple[str, str]:
    diff = ledger - remote
    if diff == 0:
        return Status.MATCH, "Nothing to do."
    if meter.aggregation == Meter.Aggregation.LAST:
        return Status.MISMATCH, (
            f"Stripe's last value is {remote}, the ledger's {ledger}. Look for failed or "
            "too-late reports of this period in admin and retry them; the next event of this "
            "customer and meter is reported with the ledger's last value. If the invoice is "
            "final, correct it with a credit note or an invoice item."
        )
    if diff > 0 and too_late and diff == too_late:
        return Status.MISMATCH, (
            f"{too_late} units arrived too late for Stripe's 35-day window and were never "
            "sent: bill them with an invoice item, or waive them."
        )
    if diff > 0:
        return Status.MISMATCH, (
            f"Stripe is missing {diff} units ({too_late} of them too late to send). Look for "
            "failed reports of this period in admin and retry them; if the invoice is already "
            "final, add the difference as an invoice item."
        )
    return Status.MISMATCH, (
        f"Stripe counted {-diff} units more than the ledger: a report was likely counted "
        "twice (resent after Stripe's 24-hour identifier window?). Cancel the duplicate "
        "meter event within 24 hours (meter event adjustment), or credit the customer."
    )


def _in_flight(account_id: int, meter_id: int, start: datetime, end: datetime) -> bool:
    unsent = UsageReport.objects.filter(
        account_id=account_id,
        meter_id=meter_id,
        period_start=start,
        status__in=[UsageReport.Status.PENDING, UsageReport.Status.SENDING],
    ).exists()
    return (
        unsent
        or UsageEvent.objects.filter(
            account_id=account_id,
            meter_id=meter_id,
            timestamp__gte=start,
            timestamp__lt=end,
            report__isnull=True,
        ).exists()
    )


def usage_reconcile(
    *,
    now: datetime | None = None,
    client=None,
    include_open: bool = False,
    lookback_days: int | None = None,
) -> list[ReconciliationResult]:
    """Check every reported (customer, meter, period) that ended in the lookback window."""
    from billing.stripe_api import stripe_client

    now = now or timezone.now()
    client = client or stripe_client(max_network_retries=2)
    lookback = timedelta(days=lookback_days or settings.USAGE_RECONCILE_LOOKBACK_DAYS)
    periods = UsageReport.objects.filter(period_end__gte=now - lookback)
    if not include_open:
        periods = periods.filter(period_end__lte=now)
    keys = periods.values_list(
        "account_id", "meter_id", "period_start", "period_end", "stripe_customer_id"
    ).distinct()
    meters = Meter.objects.in_bulk()
    results = []
    for account_id, meter_id, start, end, customer_id in keys.order_by(
        "account_id", "meter_id", "period_start"
    ):
        meter = meters[meter_id]
        ledger = rollup_value(account_id=account_id, meter=meter, start=start, end=end)
        too_late = too_late_value(account_id=account_id, meter=meter, start=start, end=end)
        remote, diff = None, None
        if _in_flight(account_id, meter_id, start, end):
            status, action = Status.PENDING, "Reports are still being sent; check again later."
        elif not meter.stripe_id:
            status, action = Status.ERROR, "The meter is not in Stripe: apply the catalog."
        else:
            try:
                remote = stripe_meter_value(
                    client=client, meter=meter, customer_id=customer_id, start=start, end=end
                )
            except (stripe.StripeError, ValueError) as exc:
                status, action = Status.ERROR, f"Could not read Stripe's summaries: {exc}"
            else:
                diff = ledger - remote
                status, action = _suggestion(
                    meter=meter, ledger=ledger, remote=remote, too_late=too_late
                )
        result, _ = ReconciliationResult.objects.update_or_create(
            account_id=account_id,
            meter_id=meter_id,
            period_start=start,
            defaults={
                "period_end": end,
                "ledger_value": ledger,
                "stripe_value": remote,
                "difference": diff,
                "too_late_value": too_late,
                "status": status,
                "suggested_action": action,
                "checked_at": now,
            },
        )
        results.append(result)
    return results
