"""Reconciliation: the ledger against Stripe's event summaries, per customer, meter and
period, stored as ``ReconciliationResult`` rows that staff read in admin.

Stripe's summaries are eventually consistent, so by default only periods that ended
are checked (``include_open=True`` also checks the current one). The ledger is the
source of truth; a difference comes with what to do about it.

**Minute-aligned windows, still exact.** Stripe answers event summaries only for
``start_time``/``end_time`` on minute boundaries (stripe-python 15
``MeterEventSummaryListParams``: "Must be aligned with minute boundaries"; a 400
otherwise), while a period starts at the second its subscription was created (hh:mm:17).
So the period ``[S, E)`` is read through the covering window ``W = [floor(S), ceil(E))``
(:mod:`usage.services.reconciliation_window`), and compared with what the ledger says
Stripe must hold in ``W``:

- Stripe files each meter event at its timestamp. Every report of the period carries the
  timestamp of its newest event, which lies in ``[S, E)``, so all of them are in ``W``.
  The only other meter events Meterdesk sent that can be in ``W`` are reports of the
  neighbouring periods stamped in the two shared edge minutes ``[floor(S), S)`` and
  ``[E, ceil(E))``; the outbox knows each of them exactly (timestamp and value).
- So for ``sum`` meters (and ``count`` meters, which are ``sum`` meters in Stripe) the
  period's share of Stripe is ``summary(W) - sum(neighbours' sent reports in W)``,
  compared with the ledger's value of ``[S, E)`` from the one rollup reader
  (:func:`usage.selectors.rollups.rollup_value`): both sides count exactly the same
  meter events, with no rounding of the period to minutes anywhere. (Counting the
  ledger's *events* in ``W`` instead would not be exact: a neighbour's report stamped in
  an edge minute also carries that neighbour's earlier events.)
- For ``last`` meters the window ends with the minute of the period's newest report, so
  the next period's reports stay out of it; only if the next period filed a report in
  the very minute of this period's last report can Stripe's summaries not tell the two
  apart, and the row says so (status ``error``) instead of guessing.
- While anything that Stripe should hold in ``W`` is still unsent (this period's reports,
  a neighbour's report stamped in ``W``, an unclaimed event in ``W``), the row is
  ``pending``.

A neighbour's report that Stripe lost shows as a difference in both periods sharing the
minute (minute precision cannot say which); it is never hidden.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import stripe
from django.conf import settings
from django.utils import timezone

from billing.models import Meter
from usage.models import ReconciliationResult, UsageReport
from usage.selectors.ledger import too_late_value
from usage.selectors.rollups import rollup_value
from usage.services.reconciliation_window import (
    Filed,
    covering_window,
    in_flight,
    last_value_window,
    neighbours_in_window,
    newest_report_at,
    stripe_meter_value,
)

Status = ReconciliationResult.Status


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


def _failed_note(*, account_id: int, meter_id: int, period_start: datetime) -> str:
    """What Stripe refused of this period (at once or in a meter error report), with its
    codes: the reason Stripe is short, named first in the suggested action."""
    failed = UsageReport.objects.filter(
        account_id=account_id,
        meter_id=meter_id,
        period_start=period_start,
        status=UsageReport.Status.FAILED,
    ).values_list("stripe_error_code", "value")
    if not failed:
        return ""
    codes = sorted({code or "error" for code, _ in failed})
    units = sum(value for _, value in failed)
    return (
        f"{len(failed)} report(s) of this period ({units} units) were refused by Stripe "
        f"({', '.join(codes)}): fix the cause, then retry them in admin (Usage reports). "
    )


def _window(
    *, account_id: int, meter: Meter, start: datetime, end: datetime
) -> tuple[datetime, datetime]:
    if meter.aggregation == Meter.Aggregation.LAST:
        newest = newest_report_at(account_id=account_id, meter_id=meter.pk, period_start=start)
        return last_value_window(start=start, end=end, newest=newest)
    return covering_window(start=start, end=end)


def _period_share(*, meter: Meter, in_window: int, neighbours: list[Filed], end: datetime):
    """Stripe's value for the period out of its value for the window, or ``None`` when
    a ``last`` meter's window also holds a later report of the next period."""
    if meter.aggregation == Meter.Aggregation.LAST:
        if any(n.timestamp >= end for n in neighbours):
            return None
        return in_window  # earlier neighbours are older than the period's last report
    return in_window - sum(n.value for n in neighbours)


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
        window = _window(account_id=account_id, meter=meter, start=start, end=end)
        where = {"account_id": account_id, "meter_id": meter_id, "period_start": start}
        remote, diff = None, None
        if in_flight(**where, window=window):
            status, action = Status.PENDING, "Reports are still being sent; check again later."
        elif not meter.stripe_id:
            status, action = Status.ERROR, "The meter is not in Stripe: apply the catalog."
        else:
            try:
                in_window = stripe_meter_value(
                    client=client, meter=meter, customer_id=customer_id, start=window[0],
                    end=window[1],
                )  # fmt: skip
            except (stripe.StripeError, ValueError) as exc:
                status, action = Status.ERROR, f"Could not read Stripe's summaries: {exc}"
            else:
                remote = _period_share(
                    meter=meter,
                    in_window=in_window,
                    neighbours=neighbours_in_window(**where, window=window),
                    end=end,
                )
                if remote is None:
                    status, action = (
                        Status.ERROR,
                        (
                            "The next period filed a report in the same minute as this period's "
                            "last one; Stripe's minute-aligned summaries cannot tell them apart. "
                            "Compare the invoice's usage line with the ledger instead."
                        ),
                    )
                else:
                    diff = ledger - remote
                    status, action = _suggestion(
                        meter=meter, ledger=ledger, remote=remote, too_late=too_late
                    )
        if status != Status.MATCH:
            action = _failed_note(**where) + action
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
