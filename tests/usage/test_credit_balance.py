"""The live credit balance (``usage.selectors.credit_balance``).

Acceptance: the live balance moves with ingestion before any Stripe report; the run-out
date matches the projection.

Starter (demo catalog): API calls at 0.1¢ each, no base fee, no allowance. The
subscription starts on a test clock at Mar 1 00:00 UTC, so the period is Mar 1 - Apr 1
(31 days). Grants are DB rows (active, ``stripe_id`` set) with their ``credits_granted``
transaction, as the mirror records them; nothing is reported to Stripe.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.mirror.customers import customer_id_for_account
from billing.mirror.subscriptions import subscription_state_for_account
from billing.models_credits import CreditBalanceTransaction, CreditGrant
from billing.services.accounts import account_create
from billing.services.subscriptions import subscription_create
from usage.models import UsageReport
from usage.selectors.credit_balance import credit_balance
from usage.selectors.summaries import period_summary
from usage.services.ingest import usage_events_ingest

pytestmark = pytest.mark.django_db

STARTED = datetime(2026, 3, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture
def starter(stripe_client, demo_catalog):
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(STARTED.timestamp())}
    )
    account = account_create(name="Credit Co", billing_email="billing@credit.example")
    subscription_create(account=account, plan=demo_catalog["starter"], test_clock=clock.id)
    return account


def make_grant(account, *, amount, stripe_id, category="promotional", expires_at=None, **extra):
    """An active grant as the mirror has it: the row and Stripe's credits_granted,
    created at the period's start (its ``created`` is when it takes effect)."""
    with time_machine.travel(STARTED, tick=False):
        grant = CreditGrant.objects.create(
            account=account,
            stripe_id=stripe_id,
            name=extra.pop("name", "Welcome credits"),
            category=category,
            status=CreditGrant.Status.ACTIVE,
            amount=amount,
            currency="usd",
            purchase_amount=amount if category == "paid" else None,
            expires_at=expires_at,
            **extra,
        )
    CreditBalanceTransaction.objects.create(
        stripe_id=f"cbtxn_{stripe_id}",
        grant=grant,
        account=account,
        type="credit",
        kind="credits_granted",
        amount=amount,
        currency="usd",
        effective_at=STARTED,
    )
    return grant


def calls(account, n: int, *, at: datetime, now: datetime, prefix: str) -> None:
    """``n`` API calls at ``at`` through the ingestion service."""
    customer = customer_id_for_account(account=account)
    events = [
        {
            "event_name": "api_calls",
            "customer": customer,
            "value": 1,
            "identifier": f"{prefix}-{i}",
            "timestamp": int(at.timestamp()),
        }
        for i in range(n)
    ]
    for start in range(0, n, 1000):
        result = usage_events_ingest(events=events[start : start + 1000], now=now).as_dict()
        assert result["rejected"] == [], result["rejected"][:3]


def balance_at(account, now):
    with time_machine.travel(now, tick=False):
        state = subscription_state_for_account(account=account)
        summary = period_summary(account=account, state=state, now=now)
        return summary, credit_balance(account=account, summary=summary, now=now)


def test_live_balance_moves_with_ingestion_and_run_out_matches_the_projection(starter):
    make_grant(starter, amount=500, stripe_id="credgr_welcome")  # $5.00
    t1 = datetime(2026, 3, 3, tzinfo=UTC)
    with time_machine.travel(t1, tick=False):
        calls(starter, 1_000, at=datetime(2026, 3, 2, 12, tzinfo=UTC), now=t1, prefix="a")
    summary, balance = balance_at(starter, t1)
    assert (summary.period_start, summary.period_end) == (STARTED, PERIOD_END)
    # 1,000 calls x 0.1¢ = 100¢ used; 500 - 100 = 400¢ left.
    assert (balance.granted, balance.available_before_period) == (500, 500)
    assert (balance.used_this_period, balance.remaining) == (100, 400)

    t2 = datetime(2026, 3, 5, tzinfo=UTC)
    with time_machine.travel(t2, tick=False):
        calls(starter, 1_000, at=datetime(2026, 3, 4, 12, tzinfo=UTC), now=t2, prefix="b")
    summary, balance = balance_at(starter, t2)
    # 2,000 calls x 0.1¢ = 200¢ used; 500 - 200 = 300¢ left: moved with the ledger alone.
    assert (balance.used_this_period, balance.remaining) == (200, 300)
    assert UsageReport.objects.count() == 0  # nothing reported to Stripe
    assert CreditBalanceTransaction.objects.filter(type="debit").count() == 0

    # The dashboard's projection: 2,000 calls in 4 days = 500 a day (linear, under 7
    # days), 27 days left -> 2,000 + 27 x 500 = 15,500 calls, 1,550¢.
    [line] = summary.lines
    assert line.projection.method == "linear"
    assert line.projection.projected == 15_500
    assert summary.projected_usage_cost[1] == 1_550
    # Run-out by hand: the 13,500 calls still to come accrue evenly over the 27 days
    # (2,332,800 s) from Mar 5 00:00. 500¢ pays 5,004 calls (500.4¢ -> 500¢, half up);
    # the 5,005th makes 500.5¢ -> 501¢, the first cent not covered. That is 3,005 more
    # calls: 13,500 x s // 2,332,800 >= 3,005 <=> s >= 3,005 x 2,332,800 / 13,500
    # = 519,264 s = 8,654.4 min -> the first whole minute is 8,655 = 6 d 0 h 15 min.
    assert balance.run_out_at == datetime(2026, 3, 11, 0, 15, tzinfo=UTC)
    assert balance.run_out_at.date() == (t2 + timedelta(days=6)).date()  # 3,000 / 500 a day
    assert balance.covers_period is False and balance.projected is True
    # What the projected usage could take from credits: all of its 1,550¢.
    assert balance.projected_cost == 1_550
    # ... of which the credits pay all 500¢ they have.
    assert balance.projected_credited == 500


def test_credits_that_last_the_period_have_no_run_out_date(starter):
    make_grant(starter, amount=2_000, stripe_id="credgr_big")  # $20.00
    t = datetime(2026, 3, 5, tzinfo=UTC)
    with time_machine.travel(t, tick=False):
        calls(starter, 2_000, at=datetime(2026, 3, 2, tzinfo=UTC), now=t, prefix="c")
    _, balance = balance_at(starter, t)
    # Projected 15,500 calls = 1,550¢ < 2,000¢: they last.
    assert (balance.used_this_period, balance.remaining) == (200, 1_800)
    assert balance.projected_credited == 1_550
    assert balance.run_out_at is None and balance.covers_period is True


def test_a_grant_expiring_before_period_end_is_not_usable_and_listed_as_expiring(starter):
    make_grant(starter, amount=500, stripe_id="credgr_welcome")
    # Expires Mar 20, before the invoice's period_end (Apr 1): [BC] not eligible.
    soon = make_grant(
        starter,
        amount=300,
        stripe_id="credgr_soon",
        name="Spring promo",
        expires_at=datetime(2026, 3, 20, tzinfo=UTC),
    )
    t = datetime(2026, 3, 5, tzinfo=UTC)
    with time_machine.travel(t, tick=False):
        calls(starter, 1_000, at=datetime(2026, 3, 2, tzinfo=UTC), now=t, prefix="d")
    _, balance = balance_at(starter, t)
    # Granted counts both (500 + 300 = 800¢); only the 500¢ grant is usable this period.
    assert balance.granted == 800
    assert balance.available_before_period == 500
    # 1,000 calls = 100¢, taken from the usable grant: 500 - 100 = 400¢.
    assert (balance.used_this_period, balance.remaining) == (100, 400)
    [expiring] = balance.expiring_soon
    assert (expiring.grant.pk, expiring.amount, expiring.usable_this_period) == (
        soon.pk,
        300,
        False,
    )
    assert expiring.expires_at == datetime(2026, 3, 20, tzinfo=UTC)


def test_already_used_up_runs_out_now(starter):
    make_grant(starter, amount=100, stripe_id="credgr_small")  # $1.00
    t = datetime(2026, 3, 5, tzinfo=UTC)
    with time_machine.travel(t, tick=False):
        calls(starter, 1_200, at=datetime(2026, 3, 2, tzinfo=UTC), now=t, prefix="e")
    _, balance = balance_at(starter, t)
    # 1,200 calls = 120¢ > 100¢: all 100¢ used, 0 left, 20¢ billed already.
    assert (balance.used_this_period, balance.remaining) == (100, 0)
    assert balance.run_out_at == t and balance.run_out


def test_no_grants_no_balance(starter):
    _, balance = balance_at(starter, datetime(2026, 3, 5, tzinfo=UTC))
    assert balance is None


def test_constant_number_of_queries(starter):
    t = datetime(2026, 3, 5, tzinfo=UTC)
    with time_machine.travel(t, tick=False):
        calls(starter, 100, at=datetime(2026, 3, 2, tzinfo=UTC), now=t, prefix="f")
        state = subscription_state_for_account(account=starter)

    def count() -> int:
        with time_machine.travel(t, tick=False):
            summary = period_summary(account=starter, state=state, now=t)
            with CaptureQueriesContext(connection) as queries:
                credit_balance(account=starter, summary=summary, now=t)
        return len(queries)

    make_grant(starter, amount=100, stripe_id="credgr_q1")
    one = count()
    for i in range(4):
        make_grant(starter, amount=100, stripe_id=f"credgr_q{i + 2}")
    assert count() == one
