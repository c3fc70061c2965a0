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

The path is chosen by asking Stripe for the invoice that bills the period (a read, made
before the transaction); a report not yet sent (pending, failing) is refused until it is
sent. The Stripe writes (the cancel, the credit note) are made after the correction is
committed as pending, never inside its transaction (``correction_apply``).

Quantity adjustments without named events: ``correction_adjust``.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from billing.models import Account, Meter
from usage.models import UsageCorrection, UsageEvent, UsageReport, VoidedEvent
from usage.selectors.events_by_identifier import events_by_identifier
from usage.selectors.periods import PeriodResolver
from usage.services.correction_apply import correction_apply_after_commit
from usage.services.correction_ledger import (
    CorrectionNotPossible,
    credit_plan,
    rollups_recompute,
)
from usage.services.correction_reports import (
    correcting_report_create,
    pair_lock,
    period_last_value,
)
from usage.services.correction_stripe import (
    FINALIZED,
    MeteredLine,
    metered_invoice_line,
    price_of,
)

__all__ = ["CorrectionNotPossible", "StripeView", "stripe_view", "usage_events_void"]

STRIPE_CANCEL_WINDOW = timedelta(hours=24)
# Margin so a cancel decided now still reaches Stripe inside its 24 hours.
CANCEL_MARGIN = timedelta(minutes=10)


def _hour_of(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class StripeView:
    """What Stripe has for a (customer, meter, period), read before the transaction: the
    invoice line billing it (None if no invoice yet) and, for a finalized one, its price."""

    client: object
    line: MeteredLine | None
    price: object = None

    @property
    def finalized(self) -> bool:
        return self.line is not None and self.line.invoice_status in FINALIZED


def stripe_view(*, client, customer_id: str, meter: Meter, period) -> StripeView:
    """Ask Stripe for the invoice billing ``period`` (and its price when finalized)."""
    from billing.stripe_api import stripe_client

    client = client or stripe_client()
    line = metered_invoice_line(client=client, customer_id=customer_id, meter=meter, period=period)
    if line is not None and line.invoice_status in FINALIZED:
        return StripeView(client, line, price_of(client=client, price_id=line.price_id))
    return StripeView(client, line)


def _quantity(meter: Meter, events: list[UsageEvent]) -> int:
    if meter.aggregation == Meter.Aggregation.COUNT:
        return -len(events)
    if meter.aggregation == Meter.Aggregation.LAST:
        return 0  # a last meter's quantity is the newest remaining value (see rereport)
    return -sum(e.value for e in events)


def _sent(report: UsageReport) -> None:
    if report.status != UsageReport.Status.SENT or report.sent_at is None:
        raise CorrectionNotPossible(
            f"Report {report.identifier} is {report.status}: retry once it is sent."
        )


def _stripe_view_of(*, account, meter, identifiers, client) -> tuple[set, StripeView | None]:
    """Before the transaction: the events' reports and, if they were reported, what
    Stripe has (re-checked under the locks)."""
    report_ids = set(
        events_by_identifier(identifiers=identifiers)
        .filter(account=account, meter=meter)
        .values_list("report_id", flat=True)
    )
    if report_ids <= {None}:
        return report_ids, None
    if len(report_ids) != 1 or None in report_ids:
        raise CorrectionNotPossible("Correct the events of one report at a time.")
    report = UsageReport.objects.get(pk=next(iter(report_ids)))
    _sent(report)
    return report_ids, stripe_view(
        client=client,
        customer_id=report.stripe_customer_id,
        meter=meter,
        period=(report.period_start, report.period_end),
    )


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
    """Void the events ``identifiers`` of ``account`` and ``meter`` (see the module doc).
    Returns the correction: applied, or failed (Stripe refused its call; ``error`` says
    why; retry with ``correction_retry``)."""
    now = now or timezone.now()
    if not reason.strip():
        raise CorrectionNotPossible("A correction needs a reason.")
    if not identifiers:
        raise CorrectionNotPossible("Name at least one event.")
    report_ids, view = _stripe_view_of(
        account=account, meter=meter, identifiers=identifiers, client=client
    )
    with transaction.atomic():
        pair_lock(account.pk, meter.pk)
        events = list(
            events_by_identifier(identifiers=identifiers)
            .select_for_update()
            .filter(account=account, meter=meter)
            .order_by("id")
        )
        if len(events) != len(set(identifiers)):
            raise CorrectionNotPossible(
                "Some identifiers are not events of this customer and meter."
            )
        if VoidedEvent.objects.filter(event__in=events).exists():
            raise CorrectionNotPossible("Some of these events are already voided.")
        reports = {e.report_id for e in events}
        if reports != report_ids:
            raise CorrectionNotPossible("These events were just reported: try again.")
        correction = UsageCorrection(
            account=account,
            meter=meter,
            kind=UsageCorrection.Kind.VOID,
            quantity=_quantity(meter, events),
            reason=reason.strip(),
            created_by=user,
            created_at=now,
            status=UsageCorrection.Status.APPLIED,
        )
        report = None
        if reports == {None}:
            periods = {PeriodResolver(account).period(e.timestamp) for e in events}
            if len(periods) != 1:
                raise CorrectionNotPossible("Correct one billing period at a time.")
            (correction.period_start, correction.period_end) = periods.pop()
            correction.path = UsageCorrection.Path.UNREPORTED
        else:
            report = UsageReport.objects.select_for_update().get(pk=reports.pop())
            _carry_reported(report=report, correction=correction, now=now, view=view)
        correction.save()
        VoidedEvent.objects.bulk_create(VoidedEvent(correction=correction, event=e) for e in events)
        if correction.path == UsageCorrection.Path.NEGATIVE_EVENT:
            correction.correcting_report = correcting_report_create(
                report=report, meter=meter, quantity=correction.quantity, now=now
            )
            correction.save(update_fields=["correcting_report"])
        elif correction.path == UsageCorrection.Path.CREDIT_NOTE:
            _credit(correction=correction, report=report, meter=meter, view=view)
        rollups_recompute(
            account_id=account.pk, meter=meter, hours={_hour_of(e.timestamp) for e in events}
        )
    if correction.status == UsageCorrection.Status.PENDING:
        return correction_apply_after_commit(correction=correction, client=view.client, now=now)
    correction.error = ""
    return correction


def _carry_reported(
    *, report: UsageReport, correction: UsageCorrection, now: datetime, view: StripeView
) -> None:
    """Pick the path for events Stripe has: credit note (invoice finalized), cancel and
    re-report (within 24 h), else a correcting meter event. No Stripe call here."""
    _sent(report)
    waiting = UsageCorrection.objects.filter(
        canceled_report=report,
        status__in=[UsageCorrection.Status.PENDING, UsageCorrection.Status.FAILED],
    ).first()
    if waiting is not None:
        raise CorrectionNotPossible(
            f"Correction #{waiting.pk} of report {report.identifier} is waiting for "
            "Stripe: retry it first."
        )
    correction.period_start, correction.period_end = report.period_start, report.period_end
    line = view.line
    if view.finalized:
        correction.path = UsageCorrection.Path.CREDIT_NOTE
        correction.stripe_invoice_id, correction.currency = line.invoice_id, line.currency
        return
    if line is not None:
        correction.stripe_invoice_id = line.invoice_id  # a draft: refreshed at finalization
    if now - report.sent_at > STRIPE_CANCEL_WINDOW - CANCEL_MARGIN:
        correction.path = UsageCorrection.Path.NEGATIVE_EVENT
        return
    correction.path = UsageCorrection.Path.CANCEL_REREPORT
    correction.status = UsageCorrection.Status.PENDING
    correction.canceled_report = report
    correction.stripe_canceled_identifier = report.identifier


def _credit(*, correction: UsageCorrection, report: UsageReport, meter: Meter, view) -> None:
    """The credit note's amount, fixed now (sent after the commit): what the invoice
    charged more than the corrected quantity (``credit_plan``). Events whose report
    reached Stripe after the invoice was finalized were never on it: no note."""
    line = view.line
    if line.finalized_at and report.sent_at and report.sent_at > line.finalized_at:
        return
    new_quantity = None
    if meter.aggregation == Meter.Aggregation.LAST:
        new_quantity = period_last_value(report=report, meter=meter)
    credit_plan(correction=correction, line=line, price=view.price, new_quantity=new_quantity)
    if correction.credit_amount:
        correction.status = UsageCorrection.Status.PENDING
    correction.save(update_fields=["credit_amount", "billed_quantity", "status"])
