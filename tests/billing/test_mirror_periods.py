"""Billing periods from the mirror, stepped from the billing-cycle anchor as Stripe does.

Hand-worked: a monthly subscription anchored Jan 31 2026 00:00 UTC (2026 is not a leap
year). Each edge is anchor + k months, computed from the anchor, never chained:
  k=0 Jan 31, k=1 Jan 31 + 1 month = Feb 28 (clamped), k=2 Jan 31 + 2 months = Mar 31,
  k=3 Apr 30 (clamped), k=4 May 31.
Chaining from Feb 28 would give Mar 28 and lose three days; shifting the current period
(Mar 31 - Apr 30) back one month gives Feb 28 - Mar 30 and loses the billed Mar 30.
"""

from datetime import UTC, datetime

import pytest
from djstripe.models import Subscription

from billing.mirror.periods import BillingCycle, account_billing_period
from billing.mirror.subscriptions import PeriodNotFound, subscription_state_for_account
from billing.services.accounts import account_create
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance


def d(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


JAN_31 = d(2026, 1, 31)


def test_month_end_anchor_periods_are_each_stepped_from_the_anchor():
    cycle = BillingCycle(anchor=JAN_31, start=JAN_31)
    assert [cycle.period(k) for k in range(4)] == [
        (d(2026, 1, 31), d(2026, 2, 28)),
        (d(2026, 2, 28), d(2026, 3, 31)),
        (d(2026, 3, 31), d(2026, 4, 30)),
        (d(2026, 4, 30), d(2026, 5, 31)),
    ]
    assert cycle.period(-1) is None  # Dec 31 - Jan 31: before the subscription started
    assert cycle.period_at(d(2026, 3, 30, 23, 59)) == (d(2026, 2, 28), d(2026, 3, 31))


def test_future_anchor_clamps_the_first_period_to_the_start():
    # Started Jan 10, first full period anchored Feb 1: the first (prorated) period is
    # Jan 10 - Feb 1 (edge k=-1 is Jan 1, clamped up to the start), then Feb 1 - Mar 1.
    cycle = BillingCycle(anchor=d(2026, 2, 1), start=d(2026, 1, 10))
    assert cycle.period_at(d(2026, 1, 20)) == (d(2026, 1, 10), d(2026, 2, 1))
    assert cycle.period_at(d(2026, 2, 15)) == (d(2026, 2, 1), d(2026, 3, 1))
    assert cycle.period(-2) is None and cycle.period_at(d(2026, 1, 9)) is None


def test_an_ended_subscription_has_no_period_after_its_end_and_its_last_is_cut():
    cycle = BillingCycle(anchor=JAN_31, start=JAN_31, end=d(2026, 3, 15))
    assert cycle.period(1) == (d(2026, 2, 28), d(2026, 3, 15))
    assert cycle.period(2) is None and cycle.period_at(d(2026, 3, 15)) is None


def subscribe_on_jan_31(stripe_client, demo_catalog):
    """Pro, created on a test clock frozen at Jan 31 2026 00:00 UTC, advanced to Apr 2:
    two renewals later its current period is Mar 31 - Apr 30. Returns the account."""
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(JAN_31.timestamp())}
    )
    account = account_create(name="Month End Co", billing_email="me@example.com")
    subscription_create(account=account, plan=demo_catalog["pro"], test_clock=clock.id)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=d(2026, 4, 2))
    report = stripe_sync_everything()
    assert not report.errors, report.errors
    return account


@pytest.fixture
def jan_31_subscription(stripe_client, demo_catalog):
    return subscribe_on_jan_31(stripe_client, demo_catalog)


@pytest.mark.django_db
def test_past_periods_of_a_jan_31_subscription_from_the_mirror(jan_31_subscription):
    state = subscription_state_for_account(account=jan_31_subscription)
    assert (state.start_date, state.billing_cycle_anchor) == (JAN_31, JAN_31)
    assert state.period(0) == (d(2026, 3, 31), d(2026, 4, 30))
    assert state.period(-1) == (d(2026, 2, 28), d(2026, 3, 31))  # not Feb 28 - Mar 30
    assert state.period(-2) == (d(2026, 1, 31), d(2026, 2, 28))
    assert state.period_or_none(-3) is None  # Dec 31 - Jan 31: before it started
    with pytest.raises(PeriodNotFound):
        state.period(-3)
    assert state.period(1) == (d(2026, 4, 30), d(2026, 5, 31))
    assert state.past_periods() == [
        (0, (d(2026, 3, 31), d(2026, 4, 30))),
        (-1, (d(2026, 2, 28), d(2026, 3, 31))),
        (-2, (d(2026, 1, 31), d(2026, 2, 28))),
    ]
    assert state.past_periods(limit=2) == state.past_periods()[:2]
    # Reporting's resolver steps the same way: Mar 30 usage belongs to Feb 28 - Mar 31.
    assert account_billing_period(account=jan_31_subscription, at=d(2026, 3, 30, 12)) == (
        d(2026, 2, 28),
        d(2026, 3, 31),
    )
    assert account_billing_period(account=jan_31_subscription, at=d(2026, 1, 30)) is None


@pytest.mark.django_db
def test_a_subscription_started_mid_period_clamps_its_first_period(jan_31_subscription):
    # The same mirror row, told the subscription started on Feb 10 (after its Jan 31
    # anchor): its first period is Feb 10 - Feb 28; the one before does not exist.
    subscription = Subscription.objects.get(customer__subscriber=jan_31_subscription)
    data = dict(subscription.stripe_data, start_date=int(d(2026, 2, 10).timestamp()))
    Subscription.objects.filter(pk=subscription.pk).update(stripe_data=data)
    state = subscription_state_for_account(account=jan_31_subscription)
    assert state.start_date == d(2026, 2, 10)
    assert state.period(-1) == (d(2026, 2, 28), d(2026, 3, 31))
    assert state.period(-2) == (d(2026, 2, 10), d(2026, 2, 28))
    assert state.period_or_none(-3) is None
    assert [offset for offset, _ in state.past_periods()] == [0, -1, -2]
