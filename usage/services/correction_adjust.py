"""Quantity adjustments by staff: a (customer, meter, billing period) changed by a signed
quantity without naming events ("-500 API calls: outage retries").

Like a void, a new entry beside the ledger, never an edit of it: a ``UsageCorrection`` of
kind ``adjust``. It belongs to one hour of the period
(``usage.selectors.corrections.adjustment_hour``: the hour it was made in, clamped into
the period's whole hours), and its quantity is added to that hour's rollup row in the
same transaction (to ``sum_value`` for sum meters, to ``event_count`` for count meters,
which is what ``meter_value`` reads), so the dashboard,
charts, summary API, projections, alerts, parity, statements and revenue, all reading
``rollup_values``, see it from the commit: whole hours from the rollups, so a range that
cuts the adjustment's hour short (a dashboard's current hour) counts it once the hour
is whole. A later void of the hour's events recomputes the row and adds the hour's
adjustments back. The drill-down's events page of that hour lists it as its own row.

Only sum and count meters (a last meter's value is set by voiding events), and a
period's quantity never goes below 0. Carried to Stripe the way Stripe allows at that
moment, the path read from Stripe as for a void (the invoice billing the period):

- the invoice not finalized (none yet, or a draft, whose metered lines are refreshed at
  finalization): a correcting meter event of ``quantity`` in the period, sent by the
  ordinary sender (Stripe: "You can also fix incorrectly recorded usage data by recording
  negative quantities", https://docs.stripe.com/billing/subscriptions/usage-based/meters/configure;
  a positive one is an ordinary meter event);
- finalized, a negative adjustment: a credit note for the pricing engine's difference,
  sent after the commit (``correction_apply``);
- finalized, a positive adjustment: refused. Stripe does not re-bill a finalized
  invoice's usage ("We don't support billing adjustments for canceled usage on a
  finalized invoice", same page), and Meterdesk does not add invoice items to later
  invoices.
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from billing.models import Account, Meter
from usage.models import UsageCorrection
from usage.selectors.corrections import adjustment_hour
from usage.selectors.periods import PeriodResolver, account_stripe_customer_id
from usage.selectors.rollups import rollup_value
from usage.services.correction_apply import correction_apply_after_commit
from usage.services.correction_ledger import (
    CorrectionNotPossible,
    credit_plan,
    rollup_add_adjustment,
)
from usage.services.correction_reports import pair_lock, period_report_create
from usage.services.corrections import stripe_view


def _checked(*, account, meter, period_start, quantity, reason, now):
    """The period ``(start, end)`` and the adjustment's hour, or CorrectionNotPossible."""
    if not reason.strip():
        raise CorrectionNotPossible("A correction needs a reason.")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity == 0:
        raise CorrectionNotPossible("The quantity must be a whole number other than 0.")
    if meter.aggregation == Meter.Aggregation.LAST:
        raise CorrectionNotPossible(
            f"{meter.display_name} is a last-value meter: a quantity cannot be added to it; "
            "set a last meter by voiding events."
        )
    period = PeriodResolver(account).period(period_start)
    if period[0] != period_start:
        raise CorrectionNotPossible(
            f"{period_start:%Y-%m-%d %H:%M:%S} UTC does not start a billing period of this "
            f"customer (it lies in {period[0]:%Y-%m-%d %H:%M:%S} – "
            f"{period[1]:%Y-%m-%d %H:%M:%S} UTC)."
        )
    if period_start > now:
        raise CorrectionNotPossible("That billing period has not started yet.")
    hour = adjustment_hour(created_at=now, period_start=period[0], period_end=period[1])
    if hour is None:
        raise CorrectionNotPossible("That billing period has no whole hour to adjust.")
    return period, hour


def usage_quantity_adjust(
    *,
    account: Account,
    meter: Meter,
    period_start: datetime,
    quantity: int,
    reason: str,
    user=None,
    client=None,
    now: datetime | None = None,
) -> UsageCorrection:
    """Adjust ``account``'s ``meter`` in the billing period starting at ``period_start`` by
    ``quantity`` (signed, units of the meter). See the module doc. Returns the correction:
    applied, pending (the credit note goes after an outer transaction commits) or failed
    (Stripe refused the credit note; ``error`` says why, ``correction_retry`` retries)."""
    now = now or timezone.now()
    period, hour = _checked(
        account=account,
        meter=meter,
        period_start=period_start,
        quantity=quantity,
        reason=reason,
        now=now,
    )
    customer_id = account_stripe_customer_id(account=account)
    if not customer_id:
        raise CorrectionNotPossible("This customer has no Stripe customer to carry it to.")
    view = stripe_view(client=client, customer_id=customer_id, meter=meter, period=period)
    if view.finalized and quantity > 0:
        raise CorrectionNotPossible(
            f"Invoice {view.line.invoice_id} billing this period is finalized: Stripe "
            "cannot add usage to a finalized invoice. Only a negative adjustment (a credit "
            "note) is possible now."
        )
    with transaction.atomic():
        pair_lock(account.pk, meter.pk)
        current = rollup_value(account_id=account.pk, meter=meter, start=period[0], end=period[1])
        if current + quantity < 0:
            raise CorrectionNotPossible(
                f"The period's quantity is {current} {meter.unit_label}: an adjustment of "
                f"{quantity} would take it below 0."
            )
        correction = UsageCorrection.objects.create(
            account=account,
            meter=meter,
            kind=UsageCorrection.Kind.ADJUST,
            quantity=quantity,
            reason=reason.strip(),
            created_by=user,
            created_at=now,
            period_start=period[0],
            period_end=period[1],
            path=(
                UsageCorrection.Path.CREDIT_NOTE
                if view.finalized
                else UsageCorrection.Path.NEGATIVE_EVENT
            ),
            status=UsageCorrection.Status.APPLIED,
            stripe_invoice_id=view.line.invoice_id if view.line else "",
            currency=view.line.currency if view.finalized else "",
        )
        if view.finalized:
            credit_plan(correction=correction, line=view.line, price=view.price)
            if correction.credit_amount:
                correction.status = UsageCorrection.Status.PENDING
            correction.save(update_fields=["credit_amount", "billed_quantity", "status"])
        else:
            correction.correcting_report = period_report_create(
                account_id=account.pk,
                meter=meter,
                period=period,
                customer_id=customer_id,
                value=quantity,
                count=0,
                # In the period and never ahead of now (Stripe refuses meter events more
                # than 5 minutes in the future): the hour, unless its first whole hour
                # has not begun yet.
                ts=max(period[0], min(hour, now)),
                now=now,
            )
            correction.save(update_fields=["correcting_report"])
        rollup_add_adjustment(account_id=account.pk, meter=meter, hour=hour, quantity=quantity)
    if correction.status == UsageCorrection.Status.PENDING:
        return correction_apply_after_commit(correction=correction, client=view.client, now=now)
    correction.error = ""
    return correction
