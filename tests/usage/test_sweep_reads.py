"""The alert sweep's cheaper reads (issue 19) answer what the reads they replace did.

- subscription states from the narrowed JSON (PostgreSQL) equal those parsed from the
  whole rows, also when an item's embedded price is not mirrored;
- ``alert_crossed`` (no text) agrees with ``alert_check(...).crossed``;
- projections read one account at a time equal those read for the chunk together;
- ``ids_condition`` selects the same rows as ``__in`` on every backend;
- every input of the skip decision, changed on its own, makes the account due again
  (on PostgreSQL through the digest computed in SQL).

Pro (conftest ``pro_account``): 10,000 API calls included, 10,500 used, 3 seats.
"""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from djstripe.models import Subscription

from billing.mirror import subscriptions as mirror
from billing.models import Meter
from billing.models_credits import AutoTopUp
from usage.models import AlertDelivery, AlertRule
from usage.models_budgets import Budget
from usage.selectors.alerts import alert_check, alert_crossed
from usage.selectors.id_arrays import ids_condition
from usage.selectors.summaries import period_summaries_for_accounts, summaries_read_projections
from usage.services.alerts import SweepStats, alerts_evaluate_all

pytestmark = pytest.mark.django_db


def _whole_rows(*, account_ids):
    """The subscriptions as whole rows (what the ORM path reads on any backend)."""
    return [
        mirror._SubscriptionRow(a, sid, updated, data or {}, False)
        for a, sid, updated, data in Subscription.objects.filter(
            customer__subscriber_id__in=list(account_ids)
        )
        .order_by("-created")
        .values_list("customer__subscriber_id", "id", "djstripe_updated", "stripe_data")
    ]


def test_states_from_narrowed_rows_equal_states_from_whole_rows(
    pro_account, other_account, monkeypatch
):
    ids = [pro_account.pk, other_account.pk]
    narrowed = mirror.subscription_states_for_accounts(account_ids=ids)
    assert set(narrowed) == set(ids)
    with monkeypatch.context() as patch:
        patch.setattr(mirror, "_subscription_rows", _whole_rows)
        whole = mirror.subscription_states_for_accounts(account_ids=ids)
    assert narrowed == whole
    # Pro: 10,000 API calls included (the graduated price's free first tier).
    calls = [
        i for i in narrowed[pro_account.pk].items if i.meter and i.meter.event_name == "api_calls"
    ]
    assert [i.included_units for i in calls] == [10_000]


def test_a_price_that_is_not_mirrored_is_read_whole_from_the_item(pro_account, monkeypatch):
    """Without the mirrored price the state is priced from the item's embedded price, as
    before: the narrowed row only has its id and ``recurring``, so the whole embedded
    object is read for it."""
    state = mirror.subscription_state_for_account(account=pro_account)
    missing = state.items[0].price_id
    real = mirror.mirrored_prices_data

    def without(*, price_ids):
        return {k: v for k, v in real(price_ids=price_ids).items() if k != missing}

    monkeypatch.setattr(mirror, "mirrored_prices_data", without)
    narrowed = mirror.subscription_states_for_accounts(account_ids=[pro_account.pk])
    monkeypatch.setattr(mirror, "_subscription_rows", _whole_rows)
    whole = mirror.subscription_states_for_accounts(account_ids=[pro_account.pk])
    assert narrowed == whole
    assert narrowed[pro_account.pk].items[0].spec == state.items[0].spec


def test_alert_crossed_agrees_with_the_check(pro_account):
    calls = Meter.objects.get(event_name="api_calls")
    rules = [
        AlertRule(pk=100 + i, account=pro_account, **fields)
        for i, fields in enumerate(
            [
                # 10,500 used of 10,000: 105% crossed, 106% not (ceil(10,600) > 10,500).
                {"kind": "usage_share", "meter": calls, "threshold_percent": 105},
                {"kind": "usage_share", "meter": calls, "threshold_percent": 106},
                {"kind": "projected_usage_share", "meter": calls, "threshold_percent": 100},
                # Bill so far 13,000¢: $99 base + 500 calls x 0.2¢ = $1 + 3 seats x $10.
                {"kind": "spend", "amount": 13_000, "currency": "usd"},
                {"kind": "spend", "amount": 13_001, "currency": "usd"},
                {"kind": "spend", "amount": 100, "currency": "eur"},
                {"kind": "projected_spend", "amount": 10**12, "currency": "usd"},
                {"kind": "credits_below", "amount": 100, "currency": "usd"},
            ]
        )
    ]
    [summary] = period_summaries_for_accounts(accounts=[pro_account]).values()
    answers = []
    for rule in rules:
        check = alert_check(rule=rule, summary=summary)
        assert alert_crossed(rule=rule, summary=summary) == bool(check and check.crossed)
        answers.append(bool(check and check.crossed))
    assert answers == [True, False, True, True, False, False, False, False]


def test_projections_read_alone_equal_those_read_together(pro_account, other_account):
    accounts = [pro_account, other_account]
    together = period_summaries_for_accounts(accounts=accounts)
    alone = period_summaries_for_accounts(accounts=accounts, projected=())
    batched = period_summaries_for_accounts(accounts=accounts, projected=())
    summaries_read_projections(summaries=batched, account_ids=[pro_account.pk])
    for summaries in (alone, batched):
        for account_id, summary in summaries.items():
            got = [line.projection for line in summary.lines]
            assert got == [line.projection for line in together[account_id].lines]


def test_ids_condition_selects_like_in(pro_account, other_account):
    ids = [pro_account.pk, 10**12]
    rules = AlertRule.objects.filter(ids_condition(AlertRule, "account_id", ids))
    AlertRule.objects.create(account=other_account, kind="spend", amount=1, currency="usd")
    AlertRule.objects.create(account=pro_account, kind="spend", amount=2, currency="usd")
    assert list(rules.values_list("amount", flat=True)) == [2]


@pytest.fixture
def settled(pro_account, other_account, django_capture_on_commit_callbacks):
    """Both accounts swept until neither is due; returns a sweep at ``at + minutes``."""
    at = timezone.now().replace(microsecond=0) + timedelta(minutes=1)

    def sweep(minutes: int) -> SweepStats:
        stats = SweepStats()
        moment = at + timedelta(minutes=minutes)
        with (
            time_machine.travel(moment, tick=False),
            django_capture_on_commit_callbacks(execute=True),
        ):
            alerts_evaluate_all(now=moment, stats=stats)
        return stats

    sweep(0)  # Pro's default rules alert
    sweep(1)  # their deliveries: evaluated once more
    assert sweep(2).skipped == 2
    return sweep


def _bump_subscription(account):
    """A save of the mirrored subscription (dj-stripe's sync), nothing else changed."""
    subscription = Subscription.objects.get(customer__subscriber=account)
    subscription.save()


@pytest.mark.parametrize(
    "change",
    [
        "subscription_saved",
        "rule_currency",
        "rule_added",
        "budget_levels",
        "budget_added",
        "delivery_unsent",
        "delivery_deleted",
        "top_up",
    ],
)
def test_each_input_makes_the_account_due(change, settled, pro_account):
    calls = Meter.objects.get(event_name="api_calls")
    if change == "subscription_saved":
        _bump_subscription(pro_account)
    elif change == "rule_currency":
        rule = AlertRule.objects.create(
            account=pro_account, kind="spend", amount=10**9, currency="usd"
        )
        settled(3)
        assert settled(4).skipped == 2
        AlertRule.objects.filter(pk=rule.pk).update(currency="eur")
    elif change == "rule_added":
        AlertRule.objects.create(account=pro_account, kind="spend", amount=10**9, currency="usd")
    elif change == "budget_levels":
        budget = Budget.objects.create(
            account=pro_account, kind="units", meter=calls, limit=10**9, warn_levels=[50]
        )
        settled(3)
        assert settled(4).skipped == 2
        Budget.objects.filter(pk=budget.pk).update(warn_levels=[50, 80])
    elif change == "budget_added":
        Budget.objects.create(account=pro_account, kind="units", meter=calls, limit=10**9)
    elif change == "delivery_unsent":
        AlertDelivery.objects.filter(account=pro_account).update(sent_at=None)
    elif change == "delivery_deleted":
        AlertDelivery.objects.filter(account=pro_account, threshold=8_000).delete()
    elif change == "top_up":
        AutoTopUp.objects.create(
            account=pro_account, enabled=True, threshold=0, amount=1_000, currency="usd"
        )
    stats = settled(5)
    assert (stats.evaluated, stats.skipped) == (1, 1)
    if change == "delivery_deleted":
        # The 80% rule (8,000 calls) alerts again: claimed anew, e-mailed once more.
        assert AlertDelivery.objects.filter(account=pro_account, threshold=8_000).count() == 1
        assert len(mail.outbox) == 3
