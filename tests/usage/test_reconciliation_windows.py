"""Reconciliation over a period that starts at hh:mm:17: Stripe (the emulator, now as
strict as Stripe) answers event summaries only for minute-aligned bounds, and the
comparison stays exact (see ``usage.services.reconciliation``).

The old reconciliation sent the raw period bounds: the emulator answers 400 and every
row was ``error``."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from billing.services.accounts import account_create, account_ensure_stripe_customer
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from usage.models import ReconciliationResult, UsageReport
from usage.services.ingest import usage_events_ingest
from usage.services.reconciliation import usage_reconcile
from usage.services.reconciliation_window import covering_window
from usage.services.reporting import usage_report_pass

pytestmark = pytest.mark.django_db(transaction=True)


def test_covering_window_is_the_smallest_minute_aligned_superset():
    start = datetime(2026, 3, 4, 10, 20, 17, tzinfo=UTC)
    end = datetime(2026, 4, 4, 10, 20, 17, tzinfo=UTC)
    assert covering_window(start=start, end=end) == (
        datetime(2026, 3, 4, 10, 20, tzinfo=UTC),  # floored 17 s
        datetime(2026, 4, 4, 10, 21, tzinfo=UTC),  # ceiled 43 s
    )
    aligned = datetime(2026, 3, 4, 10, 20, tzinfo=UTC)
    assert covering_window(start=aligned, end=aligned + timedelta(hours=1)) == (
        aligned,
        aligned + timedelta(hours=1),
    )


@pytest.fixture
def period_at_17(stripe_client, demo_catalog):
    """Pro, subscribed on a test clock frozen at hh:mm:17 three hours ago, the clock then
    advanced to now. Returns (account, cus_ id, period start)."""
    now = timezone.now().replace(microsecond=0)
    start = now.replace(second=17) - timedelta(hours=3)
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(start.timestamp())}
    )
    account = account_create(name="Seventeen Co", billing_email="s17@example.com")
    subscription_create(account=account, plan=demo_catalog["pro"], test_clock=clock.id)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=now)
    customer = account_ensure_stripe_customer(account=account).id
    [sub] = stripe_client.v1.subscriptions.list({"customer": customer}).data
    assert sub["items"].data[0].current_period_start == int(start.timestamp())
    assert start.second == 17
    return account, customer, start


def _at(customer, start, offset, name="api_calls", value=None, ident=""):
    event = {"event_name": name, "customer": customer, "identifier": ident or f"{name}{offset}",
             "timestamp": int(start.timestamp()) + offset}  # fmt: skip
    if value is not None:
        event["value"] = value
    return event


def _usage_across_the_period(customer, start):
    # First partial minute [hh:mm:17, hh:mm+1:00) is offsets 0..42. Reported in a pass of
    # its own, so one report is stamped inside that partial minute (at +42).
    first = usage_events_ingest(
        events=[_at(customer, start, 0), _at(customer, start, 5), _at(customer, start, 42),
                _at(customer, start, 1, "data_transfer_gb", 7)]
    )  # fmt: skip
    assert not first.rejected, first.rejected
    usage_report_pass()
    later = usage_events_ingest(
        events=[_at(customer, start, 43), _at(customer, start, 3600 + 30),
                _at(customer, start, 7200, "data_transfer_gb", 11)]
    )  # fmt: skip
    assert not later.rejected, later.rejected
    usage_report_pass()
    # api_calls: 3 in the first partial minute + 2 later = 5; data_transfer_gb: 7 + 11 = 18.
    assert UsageReport.objects.filter(status="sent").count() == 4


def _period_rows(start) -> dict[str, ReconciliationResult]:
    rows = ReconciliationResult.objects.filter(period_start=start)
    return {r.meter.event_name: r for r in rows}


def test_a_period_starting_at_17_seconds_reconciles_as_a_match(period_at_17):
    _account, customer, start = period_at_17
    _usage_across_the_period(customer, start)
    usage_reconcile(include_open=True)
    got = {
        name: (r.status, r.ledger_value, r.stripe_value, r.difference)
        for name, r in _period_rows(start).items()
    }
    assert got == {
        "api_calls": ("match", 5, 5, 0),
        "data_transfer_gb": ("match", 18, 18, 0),
    }


def test_a_neighbours_report_in_the_shared_minute_is_accounted_for_exactly(
    period_at_17, stripe_client
):
    account, customer, start = period_at_17
    _usage_across_the_period(customer, start)
    # A meter event stamped 10 s before the period, inside the floored edge minute
    # [hh:mm:00, hh:mm:17) that the aligned window reads. Stripe counts it in the window.
    stamped = start - timedelta(seconds=10)
    stripe_client.v1.billing.meter_events.create(
        {"event_name": "api_calls", "identifier": "previous-period-report",
         "payload": {"stripe_customer_id": customer, "value": "4"},
         "timestamp": int(stamped.timestamp())}
    )  # fmt: skip
    # Not sent by Meterdesk: Stripe holds 4 units more than the ledger says it should.
    usage_reconcile(include_open=True)
    row = _period_rows(start)["api_calls"]
    assert (row.status, row.ledger_value, row.stripe_value, row.difference) == (
        "mismatch", 5, 9, -4)  # fmt: skip
    # Once the outbox shows it as the previous period's sent report, the window's
    # 5 + 4 = 9 units are this period's 5 and that report's 4: a match, exactly.
    UsageReport.objects.create(
        account=account, meter=row.meter, period_start=start - timedelta(days=31),
        period_end=start, sequence=1, identifier="previous-period-report",
        stripe_customer_id=customer, event_name="api_calls", value=4, event_count=4,
        timestamp=stamped, status=UsageReport.Status.SENT, next_attempt_at=stamped,
    )  # fmt: skip
    usage_reconcile(include_open=True)
    row = _period_rows(start)["api_calls"]
    assert (row.status, row.ledger_value, row.stripe_value, row.difference) == (
        "match", 5, 5, 0)  # fmt: skip
