"""Which period usage is reported in: the Stripe billing period, else the calendar month."""

from datetime import UTC, datetime, timedelta

import pytest

from billing.mirror.periods import BillingCycle, account_billing_period
from billing.models import Account
from usage.models import UsageReport
from usage.selectors.periods import PeriodResolver, calendar_month
from usage.services.ingest import usage_events_ingest
from usage.services.report_claim import usage_reports_claim

FAR = datetime(2100, 1, 1, tzinfo=UTC)


def d(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # Anchored on Jan 31 12:00: periods end on the last day of short months, and
        # come back to the 31st (computed from the anchor, never chained).
        (d(2026, 2, 10), (d(2026, 1, 31, 12), d(2026, 2, 28, 12))),
        (d(2026, 3, 1), (d(2026, 2, 28, 12), d(2026, 3, 31, 12))),
        (d(2026, 3, 31, 12), (d(2026, 3, 31, 12), d(2026, 4, 30, 12))),
        (d(2026, 12, 31, 11, 59, 59), (d(2026, 11, 30, 12), d(2026, 12, 31, 12))),
    ],
)
def test_monthly_periods_from_a_month_end_anchor(at, expected):
    anchor = d(2026, 1, 31, 12)
    assert BillingCycle(anchor=anchor, start=anchor, end=FAR).period_at(at) == expected


def test_no_period_before_the_subscription_began_or_after_it_ended():
    anchor = d(2026, 5, 10)
    assert BillingCycle(anchor=anchor, start=anchor).period_at(d(2026, 5, 9)) is None
    ended = d(2026, 7, 1)
    assert BillingCycle(anchor=anchor, start=anchor, end=ended).period_at(d(2026, 7, 2)) is None
    # A first period that began after its anchor (backdated anchor) starts at the start.
    started = d(2026, 5, 20)
    assert BillingCycle(anchor=anchor, start=started).period_at(d(2026, 5, 25)) == (
        started,
        d(2026, 6, 10),
    )


def test_fallback_months_are_cut_at_subscription_edges():
    resolver = PeriodResolver.__new__(PeriodResolver)
    resolver.billing = []
    resolver.spans = [(d(2026, 3, 10), d(2026, 4, 20)), (d(2026, 6, 5), None)]
    assert resolver._fallback(d(2026, 3, 2)) == (d(2026, 3, 1), d(2026, 3, 10))
    assert resolver._fallback(d(2026, 4, 25)) == (d(2026, 4, 20), d(2026, 5, 1))
    assert resolver._fallback(d(2026, 5, 15)) == (d(2026, 5, 1), d(2026, 6, 1))
    assert resolver._fallback(d(2026, 6, 1)) == (d(2026, 6, 1), d(2026, 6, 5))
    assert resolver._covered(d(2026, 4, 1)) and not resolver._covered(d(2026, 4, 20))


def test_calendar_month_fallback():
    assert calendar_month(d(2026, 12, 31, 23, 59)) == (d(2026, 12, 1), d(2027, 1, 1))
    assert calendar_month(d(2026, 2, 1)) == (d(2026, 2, 1), d(2026, 3, 1))


@pytest.mark.django_db(transaction=True)
def test_subscription_period_from_the_mirror_and_fallback_around_it(
    customer, subscribe, stripe_client
):
    subscribe(customer)
    account = Account.objects.get(djstripe_customers__id=customer)
    [sub] = stripe_client.v1.subscriptions.list({"customer": customer}).data
    item = sub["items"].data[0]
    start = datetime.fromtimestamp(item.current_period_start, UTC)
    end = datetime.fromtimestamp(item.current_period_end, UTC)
    assert account_billing_period(account=account, at=start + timedelta(days=3)) == (start, end)
    assert account_billing_period(account=account, at=start - timedelta(seconds=1)) is None
    # The next period, before the mirror has caught up with the renewal.
    nxt = account_billing_period(account=account, at=end + timedelta(days=1))
    assert nxt is not None and nxt[0] == end and nxt[1] > end + timedelta(days=27)

    resolver = PeriodResolver(account)
    before = start - timedelta(hours=1)
    # Before the subscription: its calendar month, cut where the subscription begins,
    # so that periods never overlap.
    month_start = calendar_month(before)[0]
    assert resolver.period(before) == (month_start, min(calendar_month(before)[1], start))
    assert resolver.period(start + timedelta(seconds=5)) == (start, end)


@pytest.mark.django_db(transaction=True)
def test_events_either_side_of_the_subscription_start_go_to_different_periods(
    customer, subscribe, stripe_client
):
    subscribe(customer)
    [sub] = stripe_client.v1.subscriptions.list({"customer": customer}).data
    start = sub["items"].data[0].current_period_start
    usage_events_ingest(
        events=[  # the older one first: it must not decide the period of the next one
            {"event_name": "data_transfer_gb", "customer": customer, "value": 2,
             "timestamp": start - 60, "identifier": "pre"},
            {"event_name": "data_transfer_gb", "customer": customer, "value": 3,
             "timestamp": start + 5, "identifier": "post"},
        ]
    )  # fmt: skip
    usage_reports_claim()
    got = {r.value: r.period_start for r in UsageReport.objects.all()}
    assert got == {
        2: calendar_month(datetime.fromtimestamp(start - 60, UTC))[0],  # cut at `start`
        3: datetime.fromtimestamp(start, UTC),
    }
