"""Corrections by staff (issue 15): each path ends with the ledger (through the rollups
every reader reads), what was reported and Stripe's event summaries agreeing."""

from datetime import UTC, datetime

import pytest

from billing.models import Account, Meter
from tests.usage.conftest import stripe_total
from usage.models import UsageCorrection, UsageReport, UsageRollup
from usage.selectors.unreported import unreported_usage_by_account
from usage.services.corrections import CorrectionNotPossible, usage_events_void
from usage.services.ingest import usage_events_ingest
from usage.services.reporting import usage_report_pass

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.USAGE_REPORT_RETRY_BASE_SECONDS = 0.01
    settings.USAGE_REPORT_MAX_CALLS_PER_SECOND = 1000.0
    settings.USAGE_REPORT_BATCH_MIN_EVENTS = 1


def _setup(make_customers, subscribe, stripe_client):
    [cus] = make_customers(1)
    subscribe(cus)
    [sub] = stripe_client.v1.subscriptions.list({"customer": cus}).data
    item = sub["items"].data[0]
    start = datetime.fromtimestamp(item.current_period_start, UTC)
    end = datetime.fromtimestamp(item.current_period_end, UTC)
    ts = int(start.timestamp()) + 30
    result = usage_events_ingest(
        events=[
            {"event_name": "data_transfer_gb", "customer": cus, "value": v, "timestamp": ts,
             "identifier": f"g{v}"}
            for v in (10, 20, 12)
        ]
    )  # fmt: skip
    assert result.rejected == []
    account = Account.objects.get(djstripe_customers__id=cus)
    meter = Meter.objects.get(event_name="data_transfer_gb")
    return cus, account, meter, start, end


def _rollup_total(account, meter) -> int:
    return sum(
        UsageRollup.objects.filter(account=account, meter=meter).values_list("sum_value", flat=True)
    )


def test_void_before_reporting_the_event_never_goes(make_customers, subscribe, stripe_client):
    cus, account, meter, start, end = _setup(make_customers, subscribe, stripe_client)
    correction = usage_events_void(
        account=account, meter=meter, identifiers=["g20"], reason="double-counted transfer"
    )
    assert correction.path == UsageCorrection.Path.UNREPORTED
    assert correction.quantity == -20
    # A voided unreported event is not pending usage (it will never be sent).
    pending = unreported_usage_by_account(account_ids=[account.pk])[account.pk]
    assert pending.unclaimed_events == 2
    assert (correction.period_start, correction.period_end) == (start, end)
    # Ledger as every reader sees it: 10 + 20 + 12 = 42, less the voided 20 = 22.
    assert _rollup_total(account, meter) == 22
    usage_report_pass()
    [report] = UsageReport.objects.filter(account=account, meter=meter)
    assert (report.value, report.event_count, report.status) == (22, 2, "sent")
    assert (
        stripe_total(
            stripe_client, event_name="data_transfer_gb", customer=cus, start=start, end=end
        )
        == 22
    )
    # The same event cannot be voided twice; a reason is required.
    with pytest.raises(CorrectionNotPossible):
        usage_events_void(account=account, meter=meter, identifiers=["g20"], reason="again")
    with pytest.raises(CorrectionNotPossible):
        usage_events_void(account=account, meter=meter, identifiers=["g10"], reason="  ")


def test_void_within_24h_cancels_in_stripe_and_rereports(make_customers, subscribe, stripe_client):
    cus, account, meter, start, end = _setup(make_customers, subscribe, stripe_client)
    usage_report_pass()
    [first] = UsageReport.objects.filter(account=account, meter=meter)
    assert (first.value, first.status) == (42, "sent")  # 10 + 20 + 12
    assert (
        stripe_total(
            stripe_client, event_name="data_transfer_gb", customer=cus, start=start, end=end
        )
        == 42
    )

    correction = usage_events_void(
        account=account, meter=meter, identifiers=["g12"], reason="test traffic"
    )
    assert correction.path == UsageCorrection.Path.CANCEL_REREPORT
    assert correction.stripe_canceled_identifier == first.identifier
    first.refresh_from_db()
    assert first.status == UsageReport.Status.CANCELED
    rereport = correction.rereport
    # The remaining events: 10 + 20 = 30, under the period's next sequence.
    assert (rereport.value, rereport.event_count, rereport.sequence) == (30, 2, 2)
    assert rereport.identifier != first.identifier
    assert _rollup_total(account, meter) == 30
    # Canceled in Stripe (42 gone), the re-report not sent yet: Stripe has 0.
    assert (
        stripe_total(
            stripe_client, event_name="data_transfer_gb", customer=cus, start=start, end=end
        )
        == 0
    )
    usage_report_pass()
    rereport.refresh_from_db()
    assert rereport.status == "sent"
    assert (
        stripe_total(
            stripe_client, event_name="data_transfer_gb", customer=cus, start=start, end=end
        )
        == 30
    )
    # Ledger (rollups), reports Stripe counts (sent ones) and Stripe's summaries agree.
    sent = UsageReport.objects.filter(account=account, meter=meter, status="sent")
    assert sum(sent.values_list("value", flat=True)) == 30


def test_admin_makes_a_correction_and_lists_it(
    admin_client, make_customers, subscribe, stripe_client
):
    _, account, meter, _, _ = _setup(make_customers, subscribe, stripe_client)
    url = "/admin/usage/usagecorrection/add/"
    form = {"account": account.pk, "meter": meter.pk, "identifiers": "g10\ng12"}
    # No reason: refused by the form, nothing written.
    assert admin_client.post(url, {**form, "reason": ""}).status_code == 200
    assert not UsageCorrection.objects.exists()
    response = admin_client.post(url, {**form, "reason": "customer test run"})
    assert response.status_code == 302
    correction = UsageCorrection.objects.get()
    # Voided 10 + 12 = 22 of 42: 20 left; the staff user is recorded.
    assert (correction.quantity, correction.created_by.is_superuser) == (-22, True)
    assert _rollup_total(account, meter) == 20
    page = admin_client.get("/admin/usage/usagecorrection/")
    assert (
        b"customer test run"
        in admin_client.get(f"/admin/usage/usagecorrection/{correction.pk}/change/").content
    )
    assert page.status_code == 200
    # Voiding the same events again is refused with the service's message.
    again = admin_client.post(url, {**form, "reason": "again"}, follow=True)
    assert b"already voided" in again.content
    assert UsageCorrection.objects.count() == 1


def test_count_and_last_meters_are_corrected_in_rollups_and_reports(
    make_customers, subscribe, stripe_client
):
    [cus] = make_customers(1)
    subscribe(cus)
    [sub] = stripe_client.v1.subscriptions.list({"customer": cus}).data
    item = sub["items"].data[0]
    start = datetime.fromtimestamp(item.current_period_start, UTC)
    end = datetime.fromtimestamp(item.current_period_end, UTC)
    ts = int(start.timestamp()) + 30
    usage_events_ingest(
        events=[{"event_name": "api_calls", "customer": cus, "timestamp": ts,
                 "identifier": f"c{i}"} for i in range(5)]
        + [{"event_name": "seats", "customer": cus, "value": v, "timestamp": ts + i,
            "identifier": f"s{v}"} for i, v in enumerate((4, 6, 9))]
    )  # fmt: skip
    account = Account.objects.get(djstripe_customers__id=cus)
    calls = Meter.objects.get(event_name="api_calls")
    seats = Meter.objects.get(event_name="seats")
    # Count meter, before reporting: 2 of 5 calls voided, 3 counted and reported.
    c = usage_events_void(account=account, meter=calls, identifiers=["c0", "c1"], reason="retry")
    assert c.quantity == -2
    [rollup] = UsageRollup.objects.filter(account=account, meter=calls)
    assert (rollup.event_count, rollup.sum_value) == (3, 3)
    # Last meter, before reporting: voiding the newest (9) makes 6 the period's value.
    usage_events_void(account=account, meter=seats, identifiers=["s9"], reason="wrong tenant")
    [rollup] = UsageRollup.objects.filter(account=account, meter=seats)
    assert (rollup.last_value, rollup.event_count, rollup.sum_value) == (6, 2, 10)
    usage_report_pass()
    assert UsageReport.objects.get(meter=calls).value == 3
    assert UsageReport.objects.get(meter=seats).value == 6
    # Last meter, within 24 h: voiding 6 cancels the report and re-reports 4.
    c = usage_events_void(account=account, meter=seats, identifiers=["s6"], reason="wrong tenant")
    assert c.path == UsageCorrection.Path.CANCEL_REREPORT
    assert c.rereport.value == 4
    usage_report_pass()
    for meter, value in ((calls, 3), (seats, 4)):
        assert (
            stripe_total(
                stripe_client, event_name=meter.event_name, customer=cus, start=start, end=end
            )
            == value
        )
    [rollup] = UsageRollup.objects.filter(account=account, meter=seats)
    assert (rollup.last_value, rollup.event_count) == (4, 1)
