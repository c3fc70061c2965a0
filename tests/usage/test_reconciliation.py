"""Reconciliation: the ledger against Stripe's event summaries, and what to do."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.models import Account, Meter
from usage.models import ReconciliationResult
from usage.services.ingest import usage_events_ingest
from usage.services.reconciliation import usage_reconcile
from usage.services.reporting import usage_report_pass

pytestmark = pytest.mark.django_db(transaction=True)
Status = ReconciliationResult.Status


@pytest.fixture
def reported(customer, subscribe, stripe_client):
    """A subscribed customer with 3 calls and 40 GB reported; returns its period."""
    subscribe(customer)
    [sub] = stripe_client.v1.subscriptions.list({"customer": customer}).data
    start = sub["items"].data[0].current_period_start
    now = start + 30
    usage_events_ingest(
        events=[{"event_name": "api_calls", "customer": customer, "timestamp": now,
                 "identifier": f"c{i}"} for i in range(3)]
        + [{"event_name": "data_transfer_gb", "customer": customer, "value": 40,
            "timestamp": now, "identifier": "g1"}]
    )  # fmt: skip
    usage_report_pass()
    return start


def _by_meter(results) -> dict[str, ReconciliationResult]:
    return {r.meter.event_name: r for r in results}


def test_open_periods_are_only_checked_when_asked(reported):
    assert usage_reconcile() == []  # the period has not ended
    results = _by_meter(usage_reconcile(include_open=True))
    got = {k: (r.status, r.ledger_value, r.stripe_value, r.difference) for k, r in results.items()}
    assert got == {
        "api_calls": ("match", 3, 3, 0),
        "data_transfer_gb": ("match", 40, 40, 0),
    }
    # Once the period has ended, the scheduled run checks it (and updates the same rows).
    later = timezone.now() + timedelta(days=32)
    assert len(usage_reconcile(now=later)) == 2
    assert ReconciliationResult.objects.count() == 2


def test_stripe_counting_more_than_the_ledger_is_a_mismatch_with_an_action(
    reported, customer, stripe_client
):
    stripe_client.v1.billing.meter_events.create(
        {"event_name": "data_transfer_gb", "identifier": "sent-twice-by-someone",
         "payload": {"stripe_customer_id": customer, "value": "5"},
         "timestamp": reported + 60}
    )  # fmt: skip
    result = _by_meter(usage_reconcile(include_open=True))["data_transfer_gb"]
    assert (result.status, result.ledger_value, result.stripe_value) == ("mismatch", 40, 45)
    assert result.difference == -5
    assert result.suggested_action.startswith("Stripe counted 5 units more than the ledger")


def test_events_in_flight_are_pending_not_mismatched(reported, customer):
    usage_events_ingest(
        events=[{"event_name": "api_calls", "customer": customer,
                 "timestamp": reported + 40, "identifier": "late-one"}]
    )  # fmt: skip
    result = _by_meter(usage_reconcile(include_open=True))["api_calls"]
    assert (result.status, result.ledger_value, result.stripe_value) == ("pending", 4, None)


def test_too_late_units_are_the_explained_difference(customer, capsys):
    now = timezone.now()
    old = int((now - timedelta(days=35) + timedelta(minutes=20)).timestamp())
    # Ingested two hours earlier (ingestion now keeps back a reporting margin of about
    # an hour from Stripe's 35 days), reported an hour later: too late.
    usage_events_ingest(
        events=[{"event_name": "data_transfer_gb", "customer": customer, "value": 17,
                 "timestamp": old, "identifier": "o1"}],
        now=now - timedelta(hours=2),
    )  # fmt: skip
    usage_report_pass(now=now + timedelta(hours=1))
    call_command("reconcile_usage", "--include-open")
    result = ReconciliationResult.objects.get()
    assert (result.status, result.ledger_value, result.stripe_value) == ("mismatch", 17, 0)
    assert (result.difference, result.too_late_value) == (17, 17)
    assert "17 units arrived too late" in result.suggested_action
    out = capsys.readouterr().out
    assert "1 checked, 1 mismatched" in out


def test_last_meter_compares_the_last_value(customer, subscribe, stripe_client):
    subscribe(customer)
    [sub] = stripe_client.v1.subscriptions.list({"customer": customer}).data
    start = sub["items"].data[0].current_period_start
    usage_events_ingest(
        events=[
            {"event_name": "seats", "customer": customer, "value": 9, "timestamp": start + 50,
             "identifier": "s1"},
            {"event_name": "seats", "customer": customer, "value": 4, "timestamp": start + 90,
             "identifier": "s2"},
        ]
    )  # fmt: skip
    usage_report_pass()
    result = _by_meter(usage_reconcile(include_open=True))["seats"]
    assert (result.status, result.ledger_value, result.stripe_value) == ("match", 4, 4)


def test_meter_missing_in_stripe_is_an_error_row(reported):
    Meter.objects.filter(event_name="api_calls").update(stripe_id="")
    result = _by_meter(usage_reconcile(include_open=True))["api_calls"]
    assert result.status == "error"
    assert result.suggested_action == "The meter is not in Stripe: apply the catalog."


def test_admin_lists_results_and_reports(reported, admin_client, customer):
    usage_reconcile(include_open=True)
    page = admin_client.get("/admin/usage/reconciliationresult/")
    assert page.status_code == 200 and b"Nothing to do." in page.content
    page = admin_client.get("/admin/usage/usagereport/?status=sent")
    # Two sent reports, listed by account name (not the cus_ id: issue 14, item 10).
    name = Account.objects.get(djstripe_customers__id=customer).name
    assert page.content.decode().count(f'<td class="field-account_name">{name}</td>') >= 2
    found = admin_client.get("/admin/usage/usageevent/", {"q": "g1"})
    assert b">g1</a>" in found.content and b">c1</a>" not in found.content
    by_customer = admin_client.get("/admin/usage/usageevent/", {"q": customer})
    assert b">c2</a>" in by_customer.content and b">g1</a>" in by_customer.content
