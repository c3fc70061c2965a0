"""Budget alerts (issue 16): each warn level once per period, in order; the status every
reader shares; resolution when the period ends or the budget is raised (which re-arms
the levels it no longer reaches).

Pro (conftest ``pro_account``): $99.00 base, 10,000 API calls included then 0.2¢, $10 a
seat (last value); 10,500 calls and 3 seats so far, so the bill so far is
9,900 + 500 × 0.2 + 3 × 1,000 = 13,000¢. Seats move the bill in 1,000¢ steps.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from billing.mirror.customers import customer_id_for_account
from billing.mirror.subscriptions import subscription_state_for_account
from billing.models import Meter
from billing.services.accounts import account_create
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from usage.models import AlertDelivery
from usage.models_budgets import Budget
from usage.selectors.budgets import budget_statuses
from usage.selectors.summaries import period_summary
from usage.services.alert_resolution import PERIOD_ENDED, budget_changed
from usage.services.alerts import alerts_evaluate_all
from usage.services.budget_alerts import budget_alert_deliver
from usage.services.ingest import usage_events_ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def t0(pro_account):
    """A pinned moment just after the fixture's usage (inside Pro's first period)."""
    return timezone.now().replace(microsecond=0) + timedelta(minutes=1)


def _seats(account, value, at):
    event = {
        "event_name": "seats",
        "customer": customer_id_for_account(account=account),
        "value": value,
        "identifier": f"seats-{value}-{int(at.timestamp())}",
        "timestamp": int(at.timestamp()),
    }
    assert usage_events_ingest(events=[event], now=at).as_dict()["rejected"] == []


def _sweep(at, capture) -> int:
    with time_machine.travel(at, tick=False), capture(execute=True):
        return alerts_evaluate_all()


def _budget_levels(budget):
    return list(
        AlertDelivery.objects.filter(budget=budget).order_by("pk").values_list("level", flat=True)
    )


def _spend_budget(account, limit=20_000, **extra):
    return Budget.objects.create(
        account=account, kind="spend", currency="usd", limit=limit, **extra
    )


def test_spend_levels_50_80_100_fire_in_order_once_each(
    pro_account, t0, django_capture_on_commit_callbacks
):
    budget = _spend_budget(pro_account, hard_cap=True)  # $200.00, levels 50/80/100
    capture = django_capture_on_commit_callbacks
    with time_machine.travel(t0, tick=False):
        [status] = budget_statuses(account=pro_account)
        state = subscription_state_for_account(account=pro_account)
        summary = period_summary(account=pro_account, state=state)
    # The bill so far, 9,900 + 500 × 0.2 + 3 × 1,000 = 13,000¢, is the dashboard's figure.
    assert status.used == summary.base_fee + summary.usage_cost_so_far == 13_000
    # 13,000¢ of 20,000¢ = 65%: level 50 (10,000) only.
    _sweep(t0, capture)
    assert _budget_levels(budget) == [50]
    # 6 seats: 9,900 + 100 + 6,000 = 16,000¢ = exactly 80% (16,000 × 100 = 20,000 × 80).
    with time_machine.travel(t0 + timedelta(minutes=1), tick=False):
        _seats(pro_account, 6, t0 + timedelta(minutes=1))
    _sweep(t0 + timedelta(minutes=2), capture)
    assert _budget_levels(budget) == [50, 80]
    # 9 seats: 19,000¢ = 95%: nothing new, however often the sweep runs.
    with time_machine.travel(t0 + timedelta(minutes=3), tick=False):
        _seats(pro_account, 9, t0 + timedelta(minutes=3))
    assert _sweep(t0 + timedelta(minutes=4), capture) == 0
    assert _sweep(t0 + timedelta(minutes=5), capture) == 0
    # 10 seats: 20,000¢ = 100%: the cap.
    with time_machine.travel(t0 + timedelta(minutes=6), tick=False):
        _seats(pro_account, 10, t0 + timedelta(minutes=6))
        [status] = budget_statuses(account=pro_account)
    assert (status.used, status.limit, status.percent) == (20_000, 20_000, 100)
    assert (status.levels_reached, status.cap_reached, status.currency) == (
        (50, 80, 100),
        True,
        "usd",
    )
    _sweep(t0 + timedelta(minutes=7), capture)
    assert _budget_levels(budget) == [50, 80, 100]
    rows = AlertDelivery.objects.filter(budget=budget).order_by("level")
    assert [(d.observed, d.threshold) for d in rows] == [
        (13_000, 10_000),
        (16_000, 16_000),
        (20_000, 20_000),
    ]
    assert all(d.sent_at is not None and d.resolved_at is None for d in rows)
    budget_mails = [m for m in mail.outbox if "Spend budget" in m.subject]
    assert [m.subject for m in budget_mails] == [
        "[Meterdesk] Acme Analytics: Spend budget: 50% reached, $130.00 of $200.00 (65%)",
        "[Meterdesk] Acme Analytics: Spend budget: 80% reached, $160.00 of $200.00 (80%)",
        "[Meterdesk] Acme Analytics: Spend budget: 100% reached, $200.00 of $200.00 (100%)",
    ]
    cap_mail = budget_mails[-1]
    resets = f"{status.period_end:%b} {status.period_end.day}, {status.period_end:%Y, %H:%M}"
    assert f"resets with the next billing period on {resets} (UTC)" in cap_mail.body
    assert "This alert is for 100% of the $200.00 budget ($200.00)." in cap_mail.body
    assert "hard cap: when usage reaches $200.00 (100%)" in cap_mail.body
    assert "cap_reached" in cap_mail.alternatives[0][0]
    assert sorted(cap_mail.to) == ["billing@acme.example"]


def test_units_levels_reached_together_are_claimed_lowest_first(
    pro_account, t0, django_capture_on_commit_callbacks
):
    api_calls = Meter.objects.get(event_name="api_calls")
    # 10,500 calls of 12,000: 50% (6,000) and 80% (9,600) reached at once, 100% not.
    budget = Budget.objects.create(account=pro_account, kind="units", meter=api_calls, limit=12_000)
    _sweep(t0, django_capture_on_commit_callbacks)
    assert _budget_levels(budget) == [50, 80]
    subjects = [m.subject for m in mail.outbox if "budget" in m.subject]
    assert subjects == [
        "[Meterdesk] Acme Analytics: API calls budget: 50% reached, 10,500 of 12,000 calls (87%)",
        "[Meterdesk] Acme Analytics: API calls budget: 80% reached, 10,500 of 12,000 calls (87%)",
    ]
    assert "hard cap" not in mail.outbox[-1].body


def test_every_open_alert_is_resolved_when_the_period_ends(
    pro_account, t0, django_capture_on_commit_callbacks
):
    budget = _spend_budget(pro_account)
    _sweep(t0, django_capture_on_commit_callbacks)
    # The default rules' 80% and 100% alerts, and the budget's 50% one.
    assert AlertDelivery.objects.filter(resolved_at__isnull=True).count() == 3
    period_end = AlertDelivery.objects.get(budget=budget).period_end
    assert _sweep(period_end - timedelta(seconds=1), django_capture_on_commit_callbacks) == 0
    assert AlertDelivery.objects.filter(resolved_at__isnull=True).count() == 3
    # The period has ended (the mirror has not heard of the next one yet): no status, no
    # new alert, and every alert of the ended period is resolved at its end.
    after = period_end + timedelta(minutes=1)
    with time_machine.travel(after, tick=False):
        assert budget_statuses(account=pro_account) == []
    assert _sweep(after, django_capture_on_commit_callbacks) == 0
    assert set(AlertDelivery.objects.values_list("resolved_at", "resolution")) == {
        (period_end, PERIOD_ENDED)
    }
    assert AlertDelivery.objects.filter(budget=budget).count() == 1  # kept, not detached


def test_a_raised_budget_resolves_and_re_arms_the_levels_it_no_longer_reaches(
    pro_account, t0, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    budget = _spend_budget(pro_account)  # $200.00
    with time_machine.travel(t0, tick=False):
        _seats(pro_account, 6, t0)  # 16,000¢: 50% and 80% of 20,000
    _sweep(t0 + timedelta(seconds=1), capture)
    first_80 = AlertDelivery.objects.get(budget=budget, level=80)
    # Raised to $300.00: 16,000 ≥ 15,000 (50%) still, < 24,000 (80%) now.
    at = t0 + timedelta(minutes=1)
    with time_machine.travel(at, tick=False):
        old_limit, budget.limit = budget.limit, 30_000
        budget.save()
        assert budget_changed(budget=budget, old_limit=old_limit) == 1
    first_80.refresh_from_db()
    assert (first_80.budget_id, first_80.level, first_80.resolved_at) == (None, 80, at)
    assert first_80.resolution == f"budget {budget.pk} raised from $200.00 to $300.00"
    assert AlertDelivery.objects.get(budget=budget, level=50).resolved_at is None
    assert _sweep(at + timedelta(seconds=1), capture) == 0  # 50% stays sent, 80% not reached
    # 15 seats: 9,900 + 100 + 15,000 = 25,000¢ ≥ 24,000 (80% of 30,000): alerts again, once.
    with time_machine.travel(at + timedelta(minutes=1), tick=False):
        _seats(pro_account, 15, at + timedelta(minutes=1))
    assert _sweep(at + timedelta(minutes=2), capture) == 1
    assert _sweep(at + timedelta(minutes=3), capture) == 0
    second_80 = AlertDelivery.objects.get(budget=budget, level=80)
    assert second_80.pk != first_80.pk
    assert (second_80.observed, second_80.threshold, second_80.resolved_at) == (
        25_000,
        24_000,
        None,
    )
    assert [m.subject for m in mail.outbox if "Spend budget: 80% reached" in m.subject] == [
        "[Meterdesk] Acme Analytics: Spend budget: 80% reached, $160.00 of $200.00 (80%)",
        "[Meterdesk] Acme Analytics: Spend budget: 80% reached, $250.00 of $300.00 (83%)",
    ]
    # Lowering (or keeping) a limit resolves nothing.
    with time_machine.travel(at + timedelta(minutes=4), tick=False):
        budget.limit = 25_000
        budget.save()
        assert budget_changed(budget=budget, old_limit=30_000) == 0


def test_a_claim_computed_before_a_raise_committed_is_skipped(pro_account, t0):
    budget = _spend_budget(pro_account, limit=10_000)  # 13,000¢ reaches 50/80/100
    with time_machine.travel(t0, tick=False):
        [status] = budget_statuses(account=pro_account)
        Budget.objects.filter(pk=budget.pk).update(limit=50_000)  # raised meanwhile
        assert budget_alert_deliver(account=pro_account, status=status, level=50) is None
        Budget.objects.filter(pk=budget.pk).update(limit=10_000)
        assert budget_alert_deliver(account=pro_account, status=status, level=50) is not None
        assert budget_alert_deliver(account=pro_account, status=status, level=50) is None
    assert _budget_levels(budget) == [50]


STARTED = datetime(2026, 3, 14, 10, 30, tzinfo=UTC)  # Pro's period: Mar 14 – Apr 14, 10:30


def test_the_next_period_resolves_the_old_alerts_and_alerts_again(
    stripe_client, demo_catalog, django_capture_on_commit_callbacks
):
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(STARTED.timestamp())}
    )
    account = account_create(name="Recurring Ltd", billing_email="r@example.com")
    subscription_create(account=account, plan=demo_catalog["pro"], test_clock=clock.id)
    march = datetime(2026, 3, 20, 12, tzinfo=UTC)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=march)
    assert not stripe_sync_everything().errors
    # $150.00 budget; with no usage the bill so far is the 9,900¢ base fee = 66%: level 50
    # (7,500) is reached, 80 (12,000) is not.
    budget = _spend_budget(account, limit=15_000)
    _sweep(march, django_capture_on_commit_callbacks)
    [first] = AlertDelivery.objects.filter(budget=budget)
    assert (first.level, first.period_start, first.period_end) == (
        50,
        STARTED,
        datetime(2026, 4, 14, 10, 30, tzinfo=UTC),
    )
    # Stripe moves the subscription into Apr 14 – May 14 (invoiced, mirrored).
    april = datetime(2026, 4, 15, 12, tzinfo=UTC)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=april)
    assert not stripe_sync_everything().errors
    _sweep(april, django_capture_on_commit_callbacks)
    first.refresh_from_db()
    assert (first.resolved_at, first.resolution) == (first.period_end, PERIOD_ENDED)
    second = AlertDelivery.objects.get(budget=budget, resolved_at__isnull=True)
    assert (second.level, second.period_start, second.observed) == (50, first.period_end, 9_900)
    assert [m.subject for m in mail.outbox] == [
        "[Meterdesk] Recurring Ltd: Spend budget: 50% reached, $99.00 of $150.00 (66%)"
    ] * 2
