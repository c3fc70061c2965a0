"""Stripe's asynchronous meter event errors end to end: the report is sent (Stripe says
200), the emulator delivers a signed ``v1.billing.meter.error_report_triggered`` thin
event to ``/stripe/thin-events/`` on a live server, Meterdesk fetches the whole event
and marks the named report ``failed`` with Stripe's code: in admin, in reconciliation,
and re-sendable under a new identifier once the cause is fixed.

Against the old emulator (a synchronous 400) or the old app (no receiver) a report for
a customer Stripe does not know stayed ``sent``: the usage was silently lost."""

import json
import time
from datetime import timedelta

import pytest
import requests
import stripe
from django.utils import timezone

from billing.models import ThinEvent
from billing.services.thin_events import thin_event_destination_register
from tests.conftest import wait_for
from tests.usage.conftest import stripe_total
from usage.models import ReconciliationResult, UsageReport
from usage.services.ingest import usage_events_ingest
from usage.services.reconciliation import usage_reconcile
from usage.services.reporting import usage_report_pass

pytestmark = pytest.mark.django_db(transaction=True)
Status = UsageReport.Status


@pytest.fixture
def destination(live_server, stripe_emulator, db):
    return thin_event_destination_register(base_url=live_server.url)


def _ingest(events, now=None):
    result = usage_events_ingest(events=events, now=now)
    assert result.rejected == [], result.rejected


def _settled(report: UsageReport, status: str) -> UsageReport:
    def done():
        report.refresh_from_db()
        return report.status == status and ThinEvent.objects.filter(processed_at__isnull=False)

    wait_for(done, timeout=60, what=f"report {report.pk} to become {status}")
    return report


def test_unknown_customer_ends_failed_with_stripes_code_in_admin_and_reconciliation(
    destination, customer, subscribe, stripe_client, admin_client
):
    subscribe(customer)
    _ingest([{"event_name": "data_transfer_gb", "customer": customer, "value": 7,
              "timestamp": int(time.time()), "identifier": "gone-1"}])  # fmt: skip
    stripe_client.v1.customers.delete(customer)  # Stripe no longer knows the customer
    usage_report_pass()
    report = UsageReport.objects.get()
    assert report.status == Status.SENT  # Stripe answered 200: the check comes later

    report = _settled(report, Status.FAILED)
    assert report.stripe_error_code == "meter_event_customer_not_found"
    assert "meter_event_customer_not_found" in report.last_error
    thin = ThinEvent.objects.get()
    assert thin.type == "v1.billing.meter.error_report_triggered"
    assert "1 report(s) marked failed" in thin.outcome

    page = admin_client.get("/admin/usage/usagereport/", {"status": "failed"})
    assert page.status_code == 200
    assert list(page.context["cl"].queryset) == [report]
    assert "meter_event_customer_not_found" in page.content.decode()

    [result] = usage_reconcile(now=timezone.now(), include_open=True)
    assert result.status == ReconciliationResult.Status.MISMATCH
    assert result.difference == 7  # the ledger has 7 GB, Stripe nothing
    assert "meter_event_customer_not_found" in result.suggested_action


def test_fixed_then_retried_it_is_sent_under_a_new_identifier_and_counted_once(
    destination, customer, subscribe, stripe_client, admin_client
):
    from billing.models import Meter

    subscribe(customer)
    [sub] = stripe_client.v1.subscriptions.list({"customer": customer}).data
    item = sub["items"].data[0]
    meter = Meter.objects.get(event_name="data_transfer_gb")
    stripe_client.v1.billing.meters.deactivate(meter.stripe_id)
    _ingest([{"event_name": "data_transfer_gb", "customer": customer, "value": 3,
              "timestamp": int(time.time()), "identifier": "f1"}])  # fmt: skip
    usage_report_pass()
    report = _settled(UsageReport.objects.get(), Status.FAILED)
    assert report.stripe_error_code == "archived_meter"
    first_identifier = report.identifier

    stripe_client.v1.billing.meters.reactivate(meter.stripe_id)  # the fix
    admin_client.post(
        "/admin/usage/usagereport/", {"action": "retry", "_selected_action": [report.pk]}
    )
    report.refresh_from_db()
    assert (report.status, report.resends) == (Status.PENDING, 1)
    # A new identifier (and Idempotency-Key): the old key would get Stripe's stored 200.
    assert report.identifier == first_identifier + ".r1"
    usage_report_pass()
    report.refresh_from_db()
    assert report.status == Status.SENT and report.stripe_error_code == ""
    time.sleep(1.0)  # longer than the emulator's error report delay: no further report
    report.refresh_from_db()
    assert report.status == Status.SENT
    start, end = item.current_period_start, item.current_period_end
    from datetime import UTC, datetime

    assert stripe_total(stripe_client, event_name="data_transfer_gb", customer=customer,
                        start=datetime.fromtimestamp(start, UTC),
                        end=datetime.fromtimestamp(end, UTC)) == 3  # fmt: skip


def test_stripe_refusing_an_old_timestamp_later_marks_the_report_too_late(destination, customer):
    # Our clock is an hour behind Stripe's here, so our own check lets the report through
    # and Stripe's 35-day window refuses it (in its error report): too_late, not failed.
    real_now = timezone.now()
    our_now = real_now - timedelta(hours=1)
    old = int((real_now - timedelta(days=35, minutes=30)).timestamp())
    _ingest([{"event_name": "data_transfer_gb", "customer": customer, "value": 11,
              "timestamp": old, "identifier": "w1"}], now=our_now - timedelta(hours=1))  # fmt: skip
    usage_report_pass(now=our_now)
    report = _settled(UsageReport.objects.get(), Status.TOO_LATE)
    assert (report.value, report.stripe_error_code) == (11, "timestamp_too_far_in_past")


def test_receiver_refuses_unsigned_and_counts_a_redelivery_once(destination, live_server):
    body = json.dumps({"id": "evt_test_x", "object": "v2.core.event", "type":
                       "v1.billing.meter.error_report_triggered", "created": "2026-01-01T00:00:00Z",
                       "livemode": False, "related_object": {"id": "mtr_1", "type": "billing.meter",
                       "url": "/v1/billing/meters/mtr_1"}})  # fmt: skip
    url = live_server.url + "/stripe/thin-events/"
    assert requests.post(url, data=body, timeout=10).status_code == 400
    t = int(time.time())
    forged = stripe.WebhookSignature._compute_signature(f"{t}.{body}", "whsec_wrong")
    headers = {"Stripe-Signature": f"t={t},v1={forged}"}
    assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 400
    assert not ThinEvent.objects.exists()

    good = stripe.WebhookSignature._compute_signature(f"{t}.{body}", destination.secret)
    for _ in range(2):
        response = requests.post(
            url, data=body, headers={"Stripe-Signature": f"t={t},v1={good}"}, timeout=10
        )
        assert response.status_code == 200
    [row] = ThinEvent.objects.all()  # stored once; fetching it failed (unknown to Stripe)
    assert row.stripe_id == "evt_test_x" and row.processed_at is None and row.last_error
