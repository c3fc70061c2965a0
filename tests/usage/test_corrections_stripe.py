"""One test per correction path (issue 15): before reporting (the events never go),
within 24 h (meter event adjustment cancel + re-report), after 24 h before the invoice is
finalized (a negative meter event) and after finalization (a credit note). Each runs on
an emulator test clock, crossing 24 h and the period's end (the renewal draft finalizes
1 h after it), and ends with the ledger (the rollups every reader reads), Stripe's event
summaries and the invoice (and credit note) agreeing to the cent.

Growth plan, data transfer on volume tiers (billing/catalog/demo.toml): up to 100 GB
10¢ each + 500¢ flat; up to 1,000 GB 8¢ + 1,000¢; above 5¢ + 2,000¢.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from billing.models import Account, Meter
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from tests.factories import make_user
from tests.usage.conftest import stripe_total
from usage.models import UsageCorrection, UsageReport, UsageRollup
from usage.services.corrections import usage_events_void
from usage.services.ingest import usage_events_ingest
from usage.services.reporting import usage_report_pass

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 1, 15, tzinfo=UTC)  # the subscription starts: period 15 Jan .. 15 Feb
FEB_15 = datetime(2026, 2, 15, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.USAGE_REPORT_RETRY_BASE_SECONDS = 0.01
    settings.USAGE_REPORT_MAX_CALLS_PER_SECOND = 1000.0
    settings.USAGE_REPORT_BATCH_MIN_EVENTS = 1


@pytest.fixture
def growth_unreported(stripe_client, demo_catalog):
    """A Growth customer on a test clock with 110 + 20 + 12 = 142 GB in the ledger, not
    reported yet; the clock at T0 + 1 h."""
    clock = stripe_client.v1.test_helpers.test_clocks.create({"frozen_time": int(T0.timestamp())})
    account = Account.objects.create(name="Growth Co", billing_email="g@x.test")
    subscription_create(account=account, plan=demo_catalog["growth"], test_clock=clock.id)
    cus = account.djstripe_customers.get().id
    ts = int((T0 + HOUR / 2).timestamp())
    result = usage_events_ingest(
        events=[
            {"event_name": "data_transfer_gb", "customer": cus, "value": v, "timestamp": ts,
             "identifier": f"g{v}"}
            for v in (110, 20, 12)
        ],
        now=T0 + HOUR,
    )  # fmt: skip
    assert result.rejected == []
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=T0 + HOUR)
    meter = Meter.objects.get(event_name="data_transfer_gb")
    return clock, account, cus, meter


@pytest.fixture
def growth(stripe_client, growth_unreported):
    """The same, reported at T0 + 1 h (one report, 142 GB: volume tier 2,
    142 × 8¢ + 1,000¢ = 2,136¢)."""
    clock, account, cus, meter = growth_unreported
    # Meterdesk's clock pinned to the test clock's: ``sent_at`` is when Stripe received it.
    with time_machine.travel(T0 + HOUR, tick=True):
        usage_report_pass(now=T0 + HOUR)
    [report] = UsageReport.objects.filter(account=account)
    assert (report.value, report.status) == (142, "sent")
    return clock, account, cus, meter


def _ledger(account, meter) -> int:
    return sum(
        UsageRollup.objects.filter(account=account, meter=meter).values_list("sum_value", flat=True)
    )


def _summaries(stripe_client, cus) -> int:
    return stripe_total(
        stripe_client, event_name="data_transfer_gb", customer=cus, start=T0, end=FEB_15
    )


def _renewal_invoice(stripe_client, cus):
    [invoice] = [
        i
        for i in stripe_client.v1.invoices.list({"customer": cus}).data
        if i.billing_reason == "subscription_cycle"
    ]
    [line] = stripe_client.v1.invoices.line_items.list(invoice.id).data
    return invoice, line


def _finalized_line(stripe_client, clock, cus):
    """The period's renewal invoice once finalized (1 h after the period's end)."""
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=FEB_15 + 2 * HOUR)
    invoice, line = _renewal_invoice(stripe_client, cus)
    assert invoice.status in ("open", "paid")
    return invoice, line


def test_void_before_reporting_the_event_never_goes(stripe_client, growth_unreported):
    clock, account, cus, meter = growth_unreported
    correction = usage_events_void(
        account=account, meter=meter, identifiers=["g110"], reason="misattributed backup",
        now=T0 + HOUR,
    )  # fmt: skip
    assert correction.path == UsageCorrection.Path.UNREPORTED
    assert (correction.period_start, correction.period_end) == (T0, FEB_15)
    usage_report_pass(now=T0 + HOUR)
    [report] = UsageReport.objects.filter(account=account)
    # 20 + 12 = 32 GB reported: the voided 110 GB never went.
    assert (report.value, report.event_count, report.status) == (32, 2, "sent")
    assert _ledger(account, meter) == 32
    assert _summaries(stripe_client, cus) == 32
    invoice, line = _finalized_line(stripe_client, clock, cus)
    # 32 GB, volume tier 1: 32 × 10¢ + 500¢ = 820¢.
    assert (line.quantity, line.amount, invoice.total) == (32, 820, 820)


def test_void_within_24h_cancels_the_meter_event_and_rereports(stripe_client, growth):
    clock, account, cus, meter = growth
    soon = T0 + 3 * HOUR  # 2 h after Stripe received the report
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=soon)
    [first] = UsageReport.objects.filter(account=account)
    correction = usage_events_void(
        account=account, meter=meter, identifiers=["g110"], reason="misattributed backup",
        now=soon,
    )  # fmt: skip
    assert correction.path == UsageCorrection.Path.CANCEL_REREPORT
    assert correction.stripe_canceled_identifier == first.identifier
    assert _summaries(stripe_client, cus) == 0  # 142 canceled, 32 not re-reported yet
    usage_report_pass(now=soon)
    correction.rereport.refresh_from_db()
    # Re-reported under the period's next sequence: 20 + 12 = 32 GB.
    assert (correction.rereport.value, correction.rereport.sequence) == (32, 2)
    assert correction.rereport.status == "sent"
    assert _ledger(account, meter) == 32
    assert _summaries(stripe_client, cus) == 32
    invoice, line = _finalized_line(stripe_client, clock, cus)
    # 32 GB, volume tier 1: 32 × 10¢ + 500¢ = 820¢.
    assert (line.quantity, line.amount, invoice.total) == (32, 820, 820)


def test_void_after_24h_before_finalization_sends_a_negative_meter_event(stripe_client, growth):
    clock, account, cus, meter = growth
    # 25 hours after the report: Stripe no longer cancels it (24 h window).
    later = T0 + 26 * HOUR
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=later)
    correction = usage_events_void(
        account=account, meter=meter, identifiers=["g110"], reason="misattributed backup",
        now=later,
    )  # fmt: skip
    assert correction.path == UsageCorrection.Path.NEGATIVE_EVENT
    assert correction.correcting_report.value == -110
    assert correction.stripe_credit_note_id == ""
    usage_report_pass(now=later)
    correction.correcting_report.refresh_from_db()
    assert correction.correcting_report.status == "sent"
    # 142 − 110 = 32 GB everywhere: ledger, Stripe's summaries ...
    assert _ledger(account, meter) == 32
    assert _summaries(stripe_client, cus) == 32
    # ... and the renewal invoice, finalized 1 h after the period's end.
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=FEB_15 + 2 * HOUR)
    invoice, line = _renewal_invoice(stripe_client, cus)
    assert invoice.status != "draft"
    # 32 GB is in volume tier 1: 32 × 10¢ + 500¢ = 820¢ (not 2,136¢ for 142 GB).
    assert (line.quantity, line.amount, invoice.total) == (32, 820, 820)


def test_void_after_finalization_issues_a_credit_note_for_the_difference(
    stripe_client, growth, client
):
    clock, account, cus, meter = growth
    after = FEB_15 + 2 * HOUR
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=after)
    invoice, line = _renewal_invoice(stripe_client, cus)
    assert invoice.status in ("open", "paid")
    # 142 GB, volume tier 2: 142 × 8¢ + 1,000¢ = 2,136¢.
    assert (line.quantity, line.amount, invoice.total) == (142, 2136, 2136)

    correction = usage_events_void(
        account=account, meter=meter, identifiers=["g110"], reason="misattributed backup",
        now=after,
    )  # fmt: skip
    assert correction.path == UsageCorrection.Path.CREDIT_NOTE
    assert correction.stripe_invoice_id == invoice.id
    # Corrected 32 GB, tier 1: 32 × 10¢ + 500¢ = 820¢; credit 2,136 − 820 = 1,316¢.
    assert (correction.credit_amount, correction.currency) == (1316, "usd")
    note = stripe_client.v1.credit_notes.retrieve(correction.stripe_credit_note_id)
    assert (note.invoice, note.amount, note.memo) == (invoice.id, 1316, "misattributed backup")
    assert [n.id for n in stripe_client.v1.credit_notes.list({"invoice": invoice.id}).data] == [
        note.id
    ]
    # Ledger 32 GB; Stripe's summaries keep 142 (a finalized invoice's usage stays), and the
    # invoice less the credit note charges what 32 GB costs: 2,136 − 1,316 = 820¢.
    assert _ledger(account, meter) == 32
    assert _summaries(stripe_client, cus) == 142
    invoice = stripe_client.v1.invoices.retrieve(invoice.id)
    assert invoice.total - note.amount == 820
    assert (
        invoice.pre_payment_credit_notes_amount + invoice.post_payment_credit_notes_amount == 1316
    )
    # Nothing further goes to Stripe's meter: no correcting report.
    assert not UsageReport.objects.filter(account=account, value__lt=0).exists()
    # A second correction of the same invoice starts from what the first left billed:
    # 32 − 20 = 12 GB, 12 × 10¢ + 500¢ = 620¢; credit 820 − 620 = 200¢ (not 2,136 − 620).
    second = usage_events_void(
        account=account, meter=meter, identifiers=["g20"], reason="duplicate upload", now=after
    )
    assert (second.credit_amount, second.billed_quantity) == (200, 12)
    notes = stripe_client.v1.credit_notes.list({"invoice": invoice.id}).data
    assert sum(n.amount for n in notes) == 1316 + 200
    assert invoice.total - sum(n.amount for n in notes) == 620
    assert _ledger(account, meter) == 12
    # The customer sees the correction, its reason and the credit note on the invoices page.
    client.force_login(make_user(account, "gwen"))
    html = client.get(reverse("dashboards:invoices")).content.decode()
    assert 'data-testid="corrections"' in html
    assert "misattributed backup" in html
    assert "-110 GB" in html
    assert "credit note of $13.16" in html
