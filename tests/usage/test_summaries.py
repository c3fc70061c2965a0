"""The alert sweep's bulk summaries equal the dashboard's one-account summaries, and
cost a constant number of queries however many accounts a chunk holds."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import Account
from billing.services.accounts import account_create
from billing.services.subscriptions import subscription_create
from billing.mirror.subscriptions import subscription_state_for_account
from usage.period_summaries import period_summaries_for_accounts
from usage.period_summary import period_summary
from usage.services.ingest import usage_events_ingest

pytestmark = pytest.mark.django_db


def _send(customer: str, event_name: str, stamps, prefix: str, value: int = 1) -> None:
    events = [
        {"event_name": event_name, "customer": customer, "value": value,
         "timestamp": int(t.timestamp()), "identifier": f"{prefix}-{i}"}
        for i, t in enumerate(stamps)
    ]  # fmt: skip
    for i in range(0, len(events), 1000):
        assert not usage_events_ingest(events=events[i : i + 1000]).rejected


def _account_with_history(name: str, plan, *, daily: int) -> Account:
    account = account_create(name=name, billing_email=f"ap@{name.lower()}.example")
    subscription_create(account=account, plan=plan)
    customer = account.djstripe_customers.get().id
    start = subscription_state_for_account(account=account).period_start
    # Ten earlier days (history), the minutes just before the start (its partial hour,
    # which belongs to the period before), and usage inside the period.
    earlier = [start - timedelta(days=d, minutes=m) for d in range(1, 11) for m in range(daily)]
    just_before = [start - timedelta(seconds=s + 1) for s in range(7)]
    inside = [start + timedelta(seconds=s) for s in range(daily * 2)]
    _send(customer, "api_calls", earlier + just_before + inside, f"{name}-calls")
    return account


def test_bulk_summaries_equal_the_single_account_ones(demo_catalog, pro_account):
    accounts = [
        pro_account,
        _account_with_history("Hist", demo_catalog["pro"], daily=37),
        _account_with_history("Vol", demo_catalog["bulk"], daily=90),
    ]
    now = timezone.now() + timedelta(seconds=30)
    bulk = period_summaries_for_accounts(accounts=accounts, now=now)
    assert set(bulk) == {a.pk for a in accounts}
    for account in accounts:
        state = subscription_state_for_account(account=account)
        single = period_summary(account=account, state=state, now=now)
        many = bulk[account.pk]
        assert (many.base_fee, many.period_start, many.currency) == (
            single.base_fee, single.period_start, single.currency,
        )  # fmt: skip
        assert len(many.lines) == len(single.lines)
        for one, other in zip(single.lines, many.lines, strict=True):
            assert other.meter == one.meter
            assert (other.usage, other.cost_so_far, other.share_used) == (
                one.usage, one.cost_so_far, one.share_used,
            )  # fmt: skip
            assert other.projection.projected == one.projection.projected
            if one.meter.aggregation != "last":
                assert (other.projection.low, other.projection.high) == (
                    one.projection.low, one.projection.high,
                )  # fmt: skip
                assert other.projected_cost == one.projected_cost
    # The partial first hour is excluded: Hist used 74 calls in its period (2 × 37),
    # not the 7 from the seconds before its start.
    hist = bulk[accounts[1].pk]
    assert hist.lines[0].usage == 74


def _queries(accounts) -> int:
    with CaptureQueriesContext(connection) as captured:
        period_summaries_for_accounts(accounts=accounts, now=timezone.now())
    return len(captured.captured_queries)


def test_a_chunk_costs_the_same_queries_for_two_accounts_or_six(demo_catalog):
    accounts = [_account_with_history(f"Q{i}", demo_catalog["pro"], daily=3) for i in range(6)]
    assert _queries(accounts[:2]) == _queries(accounts)


def test_projections_are_computed_only_when_read(pro_account):
    """A usage-share rule needs no projection: building the summary must not query for
    one; reading it does, once."""
    state = subscription_state_for_account(account=pro_account)
    summary = period_summary(account=pro_account, state=state)
    calls = next(line for line in summary.lines if line.meter.event_name == "api_calls")
    with CaptureQueriesContext(connection) as first:
        projection = calls.projection
    with CaptureQueriesContext(connection) as again:
        assert calls.projection is projection
    assert len(first.captured_queries) > 0
    assert len(again.captured_queries) == 0
    assert projection.projected >= calls.usage == 10_500
