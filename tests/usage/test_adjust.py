"""Quantity adjustments (issue 15): staff change a (customer, meter, billing period) by a
signed quantity without naming events. Each Stripe path runs on an emulator test clock
and ends with the ledger (rollups), Stripe's event summaries and the invoice (and credit
note) agreeing to the cent.

Growth plan, data transfer on volume tiers (billing/catalog/demo.toml): up to 100 GB
10¢ each + 500¢ flat; up to 1,000 GB 8¢ + 1,000¢; above 5¢ + 2,000¢.
"""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from billing.models import Account, Meter
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from tests.factories import make_user
from tests.usage.conftest import stripe_total
from usage.models import UsageCorrection, UsageReport, UsageRollup
from usage.selectors.rollups import rollup_value
from usage.services.correction_adjust import usage_quantity_adjust
from usage.services.corrections import CorrectionNotPossible
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
    """A Growth customer on a test clock with 110 + 20 + 12 = 142 GB at T0 + 30 min in
    the ledger, not reported yet; the clock at T0 + 1 h."""
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
    with time_machine.travel(T0 + HOUR, tick=True):
        usage_report_pass(now=T0 + HOUR)
    [report] = UsageReport.objects.filter(account=account)
    assert (report.value, report.status) == (142, "sent")
    return clock, account, cus, meter


def _ledger(account, meter) -> int:
    """The period's quantity as every reader reads it (the one rollup reader)."""
    return rollup_value(account_id=account.pk, meter=meter, start=T0, end=FEB_15)


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


def _total(html: str, testid: str) -> int:
    return int(re.search(rf'data-testid="{testid}">(-?[\d,]+)', html).group(1).replace(",", ""))


def _values(html: str, testid: str) -> list[int]:
    rows = re.findall(rf'data-testid="{testid}".*?data-value="(-?\d+)"', html, flags=re.S)
    return [int(v) for v in rows]


def test_adjust_before_reporting_goes_as_a_meter_event_and_the_hour_still_sums(
    stripe_client, growth_unreported, client
):
    clock, account, cus, meter = growth_unreported
    made_at = T0 + 50 * timedelta(minutes=1)  # in the events' hour, 00:00 .. 01:00
    correction = usage_quantity_adjust(
        account=account, meter=meter, period_start=T0, quantity=-110,
        reason="outage retries", client=stripe_client, now=made_at,
    )  # fmt: skip
    assert (correction.kind, correction.path, correction.status) == (
        "adjust",
        "negative_event",
        "applied",
    )
    assert (correction.period_start, correction.period_end) == (T0, FEB_15)
    # A correcting meter event of -110 in the adjustment's hour, T0 00:00.
    report = correction.correcting_report
    assert (report.value, report.event_count, report.timestamp) == (-110, 0, T0)
    # The hour's rollup: 110 + 20 + 12 − 110 = 32; the period likewise.
    [row] = UsageRollup.objects.filter(account=account, meter=meter)
    assert (row.hour, row.sum_value, row.event_count) == (T0, 32, 3)
    assert _ledger(account, meter) == 32
    usage_report_pass(now=T0 + HOUR)
    reports = UsageReport.objects.filter(account=account).order_by("sequence")
    # The correction took sequence 1, the claim of the 3 events sequence 2.
    assert [(r.sequence, r.value, r.status) for r in reports] == [
        (1, -110, "sent"), (2, 142, "sent"),
    ]  # fmt: skip
    assert _summaries(stripe_client, cus) == 142 - 110 == 32
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=FEB_15 + 2 * HOUR)
    invoice, line = _renewal_invoice(stripe_client, cus)
    assert invoice.status in ("open", "paid")
    # 32 GB, volume tier 1: 32 × 10¢ + 500¢ = 820¢.
    assert (line.quantity, line.amount, invoice.total) == (32, 820, 820)

    # The drill-down: the hour lists its 3 events and the adjustment, and sums to 32,
    # like its day and the line's ledger total.
    assert not stripe_sync_everything().errors
    client.force_login(make_user(account, "gwen"))
    url = reverse("dashboards:drilldown_hour", args=[invoice.id, line.id, "2026-01-15T00"])
    html = client.get(url).content.decode()
    assert sorted(_values(html, "event-row")) == [12, 20, 110]
    assert _values(html, "adjustment-row") == [-110]
    assert f"Correction #{correction.pk}" in html and "outage retries" in html
    assert _total(html, "hour-total") == 12 + 20 + 110 - 110 == 32
    html = client.get(reverse("dashboards:drilldown_line", args=[invoice.id, line.id]))
    html = html.content.decode()
    assert _total(html, "ledger-total") == _total(html, "line-quantity") == 32
    # The customer's corrections list shows it.
    html = client.get(reverse("dashboards:invoices")).content.decode()
    assert "outage retries" in html and "-110 GB" in html and "Quantity adjusted" in html


def test_positive_adjust_after_the_period_before_finalization_reaches_the_invoice(
    stripe_client, growth
):
    clock, account, cus, meter = growth
    draft_time = FEB_15 + 30 * timedelta(minutes=1)  # renewal draft made, not finalized
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=draft_time)
    draft, _ = _renewal_invoice(stripe_client, cus)
    assert draft.status == "draft"
    correction = usage_quantity_adjust(
        account=account, meter=meter, period_start=T0, quantity=8,
        reason="backup traffic missed by the collector", client=stripe_client, now=draft_time,
    )  # fmt: skip
    assert (correction.path, correction.stripe_invoice_id) == ("negative_event", draft.id)
    # Made after the period: clamped into its last whole hour, Feb 14 23:00.
    last_hour = FEB_15 - HOUR
    assert correction.correcting_report.timestamp == last_hour
    row = UsageRollup.objects.get(account=account, meter=meter, hour=last_hour)
    assert (row.sum_value, row.event_count) == (8, 0)  # no events in that hour
    usage_report_pass(now=draft_time)
    correction.correcting_report.refresh_from_db()
    assert correction.correcting_report.status == "sent"
    assert _ledger(account, meter) == _summaries(stripe_client, cus) == 142 + 8 == 150
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=FEB_15 + 2 * HOUR)
    invoice, line = _renewal_invoice(stripe_client, cus)
    assert invoice.status in ("open", "paid")
    # 150 GB, volume tier 2: 150 × 8¢ + 1,000¢ = 2,200¢.
    assert (line.quantity, line.amount, invoice.total) == (150, 2200, 2200)


def test_negative_adjust_after_finalization_issues_a_credit_note(stripe_client, growth):
    clock, account, cus, meter = growth
    after = FEB_15 + 2 * HOUR
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=after)
    invoice, line = _renewal_invoice(stripe_client, cus)
    # 142 GB, volume tier 2: 142 × 8¢ + 1,000¢ = 2,136¢.
    assert (invoice.status in ("open", "paid"), line.amount) == (True, 2136)
    # Stripe cannot add to a finalized invoice: a positive adjustment is refused.
    with pytest.raises(CorrectionNotPossible, match="finalized"):
        usage_quantity_adjust(
            account=account, meter=meter, period_start=T0, quantity=5, reason="more",
            client=stripe_client, now=after,
        )  # fmt: skip
    correction = usage_quantity_adjust(
        account=account, meter=meter, period_start=T0, quantity=-110,
        reason="outage retries", client=stripe_client, now=after,
    )  # fmt: skip
    assert (correction.path, correction.status) == ("credit_note", "applied")
    # Corrected 32 GB, tier 1: 32 × 10¢ + 500¢ = 820¢; credit 2,136 − 820 = 1,316¢.
    assert (correction.credit_amount, correction.billed_quantity) == (1316, 32)
    note = stripe_client.v1.credit_notes.retrieve(correction.stripe_credit_note_id)
    assert (note.invoice, note.amount, note.memo) == (invoice.id, 1316, "outage retries")
    assert note.metadata["meterdesk_correction"] == str(correction.pk)
    invoice = stripe_client.v1.invoices.retrieve(invoice.id)
    assert invoice.total - note.amount == 2136 - 1316 == 820
    # Ledger 32 (the adjustment in the period's last hour); Stripe's summaries keep 142.
    assert _ledger(account, meter) == 32
    assert _summaries(stripe_client, cus) == 142
    assert not UsageReport.objects.filter(account=account, value__lt=0).exists()
    # A period's quantity never goes below 0: 32 − 33 is refused, nothing written.
    with pytest.raises(CorrectionNotPossible, match=r"is 32 GB.*below 0"):
        usage_quantity_adjust(
            account=account, meter=meter, period_start=T0, quantity=-33, reason="too much",
            client=stripe_client, now=after,
        )  # fmt: skip
    assert UsageCorrection.objects.count() == 1
    # A second one chains from what the first left billed: 32 − 12 = 20 GB,
    # 20 × 10¢ + 500¢ = 700¢; credit 820 − 700 = 120¢.
    second = usage_quantity_adjust(
        account=account, meter=meter, period_start=T0, quantity=-12, reason="test traffic",
        client=stripe_client, now=after,
    )  # fmt: skip
    assert (second.credit_amount, second.billed_quantity) == (120, 20)
    notes = stripe_client.v1.credit_notes.list({"invoice": invoice.id}).data
    assert invoice.total - sum(n.amount for n in notes) == 2136 - 1316 - 120 == 700
    assert _ledger(account, meter) == 20


def test_refusals_name_what_is_wrong(stripe_client, growth_unreported):
    _, account, _, meter = growth_unreported
    seats = Meter.objects.get(event_name="seats")
    now = T0 + HOUR
    cases = [
        (dict(meter=seats, quantity=-1, reason="x"), "set a last meter by voiding events"),
        (dict(meter=meter, quantity=-143, reason="x"), r"is 142 GB.*below 0"),
        (dict(meter=meter, quantity=0, reason="x"), "other than 0"),
        (dict(meter=meter, quantity=-1, reason="  "), "needs a reason"),
        (dict(meter=meter, quantity=-1, reason="x", period_start=T0 + HOUR), "does not start"),
    ]
    for kwargs, message in cases:
        kwargs = {"account": account, "period_start": T0, "now": now, **kwargs}
        with pytest.raises(CorrectionNotPossible, match=message):
            usage_quantity_adjust(client=stripe_client, **kwargs)
    assert not UsageCorrection.objects.exists()
    assert _ledger(account, meter) == 142
    # Down to exactly 0 is allowed: 142 − 142.
    usage_quantity_adjust(
        account=account, meter=meter, period_start=T0, quantity=-142, reason="all test",
        client=stripe_client, now=now,
    )  # fmt: skip
    assert _ledger(account, meter) == 0
