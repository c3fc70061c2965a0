"""Corrections by staff: void identified events, carried to Stripe the way Stripe allows.

Never an edit of the ledger: a ``UsageCorrection`` and its ``VoidedEvent`` rows are new
entries; the hourly rollups (the one thing every reader reads: dashboards, projections,
alerts, reconciliation, revenue) are recomputed without the voided events in the same
transaction, so every reader sees corrected usage at the commit.

Paths, chosen under the events' row locks:

- not yet reported: the events are voided and the claim (``report_claim``) leaves them
  out, so they never go to Stripe;
- reported within 24 hours: Stripe cancels a meter event by identifier only within 24
  hours of receiving it ("You can only cancel events within 24 hours of Stripe receiving
  them", ``cancel.identifier`` of ``POST /v1/billing/meter_event_adjustments``, type
  ``cancel``: https://docs.stripe.com/api/billing/meter-event-adjustment and
  https://docs.stripe.com/api/billing/meter-event-adjustment/object). The report's meter
  event is canceled and the report's remaining events are re-reported under a new
  identifier (the next sequence of the period), sent by the ordinary sender;
- reported earlier, the period's invoice not finalized (none yet, or a draft, whose
  metered lines Stripe refreshes at finalization): a correcting meter event with a
  negative value (``correction_reports``; Stripe: "You can also fix incorrectly recorded
  usage data by recording negative quantities",
  https://docs.stripe.com/billing/subscriptions/usage-based/meters/configure);
- the invoice finalized: Stripe does not re-bill canceled or corrected usage on a
  finalized invoice (same page), so a credit note on it for the pricing engine's
  difference between the invoiced and the corrected quantity (``correction_stripe``).

The path is chosen by asking Stripe for the invoice that bills the period; a report not
yet sent (pending, failing) is refused until it is sent.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from billing.models import Account, Meter
from usage.models import (
    UsageCorrection,
    UsageEvent,
    UsageReport,
    UsageRollup,
    VoidedEvent,
)
from usage.selectors.periods import PeriodResolver
from usage.services.correction_reports import (
    correcting_report_create,
    next_report,
    period_last_value,
)
from usage.services.correction_stripe import (
    FINALIZED,
    credit_note_create,
    metered_invoice_line,
    price_difference,
)

STRIPE_CANCEL_WINDOW = timedelta(hours=24)
# Margin so a cancel decided now still reaches Stripe inside its 24 hours.
CANCEL_MARGIN = timedelta(minutes=10)


class CorrectionNotPossible(Exception):
    """The correction cannot be made (bad input, or a path not supported yet)."""


def _hour_of(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _rollups_recompute(*, account_id: int, meter_id: int, hours: set[datetime]) -> None:
    """Rewrite the rollups of ``hours`` from the ledger without voided events.

    The rollup rows are locked first: an ingest batch that inserted an event we cannot see
    yet then waits for our commit and adds its increment to what we write (rollups are
    updated by increments), so nothing is lost."""
    list(
        UsageRollup.objects.select_for_update()
        .filter(account_id=account_id, meter_id=meter_id, hour__in=sorted(hours))
        .values_list("id", flat=True)
    )
    for hour in sorted(hours):
        rows = list(
            UsageEvent.objects.filter(
                account_id=account_id,
                meter_id=meter_id,
                timestamp__gte=hour,
                timestamp__lt=hour + timedelta(hours=1),
                void__isnull=True,
            )
            .order_by()
            .values_list("id", "value", "timestamp")
        )
        rollups = UsageRollup.objects.filter(account_id=account_id, meter_id=meter_id, hour=hour)
        if not rows:
            rollups.delete()
            continue
        last = max(rows, key=lambda r: (r[2], r[0]))
        rollups.update(
            sum_value=sum(r[1] for r in rows),
            event_count=len(rows),
            last_value=last[1],
            last_timestamp=last[2],
            last_event_id=last[0],
        )


def _quantity(meter: Meter, events: list[UsageEvent]) -> int:
    if meter.aggregation == Meter.Aggregation.COUNT:
        return -len(events)
    if meter.aggregation == Meter.Aggregation.LAST:
        return 0  # a last meter's quantity is the newest remaining value (see rereport)
    return -sum(e.value for e in events)


def _rereport(*, report: UsageReport, meter: Meter, now: datetime) -> UsageReport | None:
    """The canceled report's remaining events as a new report (next sequence)."""
    remaining = list(
        UsageEvent.objects.filter(report=report, void__isnull=True).values_list("id", "value")
    )
    if not remaining:
        return None
    if meter.aggregation == Meter.Aggregation.LAST:
        value = period_last_value(report=report, meter=meter)
    elif meter.aggregation == Meter.Aggregation.COUNT:
        value = len(remaining)
    else:
        value = sum(r[1] for r in remaining)
    new = next_report(
        report=report, meter=meter, value=value, count=len(remaining), ts=report.timestamp, now=now
    )
    UsageEvent.objects.filter(id__in=[r[0] for r in remaining]).update(report=new)
    return new


def usage_events_void(
    *,
    account: Account,
    meter: Meter,
    identifiers: list[str],
    reason: str,
    user=None,
    client=None,
    now: datetime | None = None,
) -> UsageCorrection:
    """Void the events ``identifiers`` of ``account`` and ``meter`` (see the module doc)."""
    now = now or timezone.now()
    if not reason.strip():
        raise CorrectionNotPossible("A correction needs a reason.")
    if not identifiers:
        raise CorrectionNotPossible("Name at least one event.")
    with transaction.atomic():
        events = list(
            UsageEvent.objects.select_for_update()
            .filter(account=account, meter=meter, identifier__in=set(identifiers))
            .order_by("id")
        )
        if len(events) != len(set(identifiers)):
            raise CorrectionNotPossible(
                "Some identifiers are not events of this customer and meter."
            )
        if VoidedEvent.objects.filter(event__in=events).exists():
            raise CorrectionNotPossible("Some of these events are already voided.")
        reports = {e.report_id for e in events}
        correction = UsageCorrection(
            account=account,
            meter=meter,
            kind=UsageCorrection.Kind.VOID,
            quantity=_quantity(meter, events),
            reason=reason.strip(),
            created_by=user,
            created_at=now,
        )
        if reports == {None}:
            periods = {PeriodResolver(account).period(e.timestamp) for e in events}
            if len(periods) != 1:
                raise CorrectionNotPossible("Correct one billing period at a time.")
            (correction.period_start, correction.period_end) = periods.pop()
            correction.path = UsageCorrection.Path.UNREPORTED
        else:
            if len(reports) != 1 or None in reports:
                raise CorrectionNotPossible("Correct the events of one report at a time.")
            report = UsageReport.objects.select_for_update().get(pk=reports.pop())
            _carry_reported(report=report, correction=correction, now=now, client=client)
        correction.save()
        VoidedEvent.objects.bulk_create(VoidedEvent(correction=correction, event=e) for e in events)
        if correction.path == UsageCorrection.Path.CANCEL_REREPORT:
            correction.rereport = _rereport(report=report, meter=meter, now=now)
            correction.save(update_fields=["rereport"])
        elif correction.path == UsageCorrection.Path.NEGATIVE_EVENT:
            correction.correcting_report = correcting_report_create(
                report=report, meter=meter, quantity=correction.quantity, now=now
            )
            correction.save(update_fields=["correcting_report"])
        elif correction.path == UsageCorrection.Path.CREDIT_NOTE:
            _credit(correction=correction, report=report, meter=meter, client=client)
        _rollups_recompute(
            account_id=account.pk, meter_id=meter.pk, hours={_hour_of(e.timestamp) for e in events}
        )
    return correction


def _carry_reported(
    *, report: UsageReport, correction: UsageCorrection, now: datetime, client
) -> None:
    """Pick the path for events Stripe has: credit note (invoice finalized), cancel and
    re-report (within 24 h), else a correcting meter event."""
    if report.status != UsageReport.Status.SENT or report.sent_at is None:
        raise CorrectionNotPossible(
            f"Report {report.identifier} is {report.status}: retry once it is sent."
        )
    from billing.stripe_api import stripe_client

    client = client or stripe_client()
    correction.period_start, correction.period_end = report.period_start, report.period_end
    line = metered_invoice_line(
        client=client,
        customer_id=report.stripe_customer_id,
        meter=correction.meter,
        period=(report.period_start, report.period_end),
    )
    if line is not None and line.invoice_status in FINALIZED:
        correction.path = UsageCorrection.Path.CREDIT_NOTE
        correction.stripe_invoice_id, correction.currency = line.invoice_id, line.currency
        correction._line = line
        return
    if line is not None:
        correction.stripe_invoice_id = line.invoice_id  # a draft: refreshed at finalization
    if now - report.sent_at > STRIPE_CANCEL_WINDOW - CANCEL_MARGIN:
        correction.path = UsageCorrection.Path.NEGATIVE_EVENT
        return
    client.v1.billing.meter_event_adjustments.create(
        {
            "event_name": report.event_name,
            "type": "cancel",
            "cancel": {"identifier": report.identifier},
        }
    )
    report.status = UsageReport.Status.CANCELED
    report.save(update_fields=["status"])
    correction.path = UsageCorrection.Path.CANCEL_REREPORT
    correction.canceled_report = report
    correction.stripe_canceled_identifier = report.identifier


def _credit(*, correction: UsageCorrection, report: UsageReport, meter: Meter, client) -> None:
    """A credit note for what the invoice charged more than the corrected quantity.

    Successive corrections of one invoice chain: each starts from the quantity the last
    one left billed (``billed_quantity``), so nothing is credited twice. Events whose
    report reached Stripe after the invoice was finalized were never on it: no note."""
    from billing.stripe_api import stripe_client

    client = client or stripe_client()
    line = correction._line
    if line.finalized_at and report.sent_at and report.sent_at > line.finalized_at:
        correction.save(update_fields=["credit_amount"])
        return
    previous = (
        UsageCorrection.objects.filter(
            path=UsageCorrection.Path.CREDIT_NOTE,
            stripe_invoice_id=line.invoice_id,
            meter=meter,
            billed_quantity__isnull=False,
        )
        .exclude(pk=correction.pk)
        .order_by("-created_at", "-id")
        .values_list("billed_quantity", flat=True)
        .first()
    )
    old_quantity = line.quantity if previous is None else previous
    if meter.aggregation == Meter.Aggregation.LAST:
        new_quantity = period_last_value(report=report, meter=meter)
    else:
        new_quantity = max(old_quantity + correction.quantity, 0)
    amount = price_difference(
        client=client,
        price_id=line.price_id,
        old_quantity=old_quantity,
        new_quantity=new_quantity,
    )
    correction.credit_amount = max(amount, 0)
    correction.billed_quantity = new_quantity
    if correction.credit_amount:
        correction.stripe_credit_note_id = credit_note_create(
            client=client,
            line=line,
            amount=correction.credit_amount,
            description=f"{meter.display_name}: {old_quantity} corrected to {new_quantity}",
            memo=correction.reason,
            key=f"meterdesk-correction-{correction.pk}",
        )
    correction.save(update_fields=["credit_amount", "billed_quantity", "stripe_credit_note_id"])
