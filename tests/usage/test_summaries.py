"""Period summaries, the one engine of the dashboard, the alert evaluation and the alert
sweep: exact usage, the single-account summary is the bulk one of one account, and a
chunk costs a constant number of queries however many accounts it holds."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.mirror.subscriptions import subscription_state_for_account
from billing.models import Account
from billing.services.accounts import account_create
from billing.services.subscriptions import subscription_create
from usage.selectors.summaries import period_summaries_for_accounts, period_summary
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


def test_usage_counts_from_the_periods_first_second(demo_catalog, pro_account):
    accounts = [
        pro_account,
        _account_with_history("Hist", demo_catalog["pro"], daily=37),
        _account_with_history("Vol", demo_catalog["bulk"], daily=90),
    ]
    now = timezone.now() + timedelta(seconds=30)
    summaries = period_summaries_for_accounts(accounts=accounts, now=now)
    assert set(summaries) == {a.pk for a in accounts}
    # The partial first hour is excluded: Hist used 74 calls in its period (2 × 37),
    # not the 7 from the seconds before its start; Vol 180 (2 × 90).
    assert summaries[accounts[1].pk].lines[0].usage == 74
    assert summaries[accounts[2].pk].lines[0].usage == 180
    # Acme: 10,500 calls of 10,000 included = 105.0%; seats are a last meter: 3 (not 2 + 3).
    acme = {line.meter.event_name: line for line in summaries[pro_account.pk].lines}
    assert (acme["api_calls"].usage, acme["api_calls"].share_used) == (10_500, Decimal("105.0"))
    assert acme["seats"].usage == 3
    for summary in summaries.values():
        assert not summary.closed
        for line in summary.lines:  # a projection never falls below the usage so far
            assert line.projection.usage_so_far == line.usage <= line.projection.projected


def test_the_single_account_summary_is_the_bulk_summary_of_one_account(pro_account, monkeypatch):
    from usage.selectors import summaries

    calls = []
    bulk = summaries.period_summaries_for_accounts

    def spy(**kwargs):
        calls.append(kwargs)
        return bulk(**kwargs)

    monkeypatch.setattr(summaries, "period_summaries_for_accounts", spy)
    state = subscription_state_for_account(account=pro_account)
    summary = summaries.period_summary(account=pro_account, state=state)
    assert [(c["accounts"], c["offset"], c["include_closed"]) for c in calls] == [
        ([pro_account], 0, True)
    ]
    assert summary.account == pro_account and summary.period_start == state.period_start


def test_ended_periods_are_summarized_closed_or_left_out(pro_account):
    state = subscription_state_for_account(account=pro_account)
    later = state.period_end + timedelta(hours=1)
    assert period_summaries_for_accounts(accounts=[pro_account], now=later) == {}
    [closed] = period_summaries_for_accounts(
        accounts=[pro_account], now=later, include_closed=True
    ).values()
    assert closed.closed and closed.days_left == 0
    assert closed == period_summary(account=pro_account, state=state, now=later)
    calls = {line.meter.event_name: line.usage for line in closed.lines}
    assert calls == {"api_calls": 10_500, "seats": 3}


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
