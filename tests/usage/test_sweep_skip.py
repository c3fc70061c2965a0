"""The sweep's steady-state skip (issue 19, ``usage.services.alert_sweep``): an account
is skipped only when a full evaluation would have produced nothing new.

The property test drives random small histories (usage, seats, rules added, edited and
deleted, budgets set, raised and lowered, deliveries deleted, SMTP failing and back, the
clock moving) over two accounts, and after every step compares the skipping sweep with
"evaluate everything" run on the same database state (in a savepoint rolled back
afterwards): the same alerts claimed, the same e-mails and channel sends queued, the
same count returned. The tests after it pin each kind of input on its own.

Pro (conftest ``pro_account``): 10,000 API calls included, 10,500 used, 3 seats; the
default rules (80% and 100% of the allowance) fire on the first sweep.
"""

import random
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.mirror.customers import customer_id_for_account
from billing.models import Meter
from billing.models_credits import AutoTopUp
from usage.models import AlertDelivery, AlertRule, UsageRollup
from usage.models_budgets import Budget
from usage.models_sweep import SweepTouch, SweepWatermark
from usage.services.alert_resolution import budget_changed
from usage.services.alert_sweep import sweep_inputs_digest
from usage.services.alerts import SweepStats, alerts_evaluate_all
from usage.services.ingest import usage_events_ingest

pytestmark = pytest.mark.django_db

_counter = iter(range(10**9))


def _ingest(account, event_name: str, value: int, at, count: int = 1) -> None:
    """``count`` events of ``value`` at ``at`` (API calls is a count meter, seats last)."""
    events = [
        {
            "event_name": event_name,
            "customer": customer_id_for_account(account=account),
            "value": value,
            "identifier": f"sweep-{event_name}-{next(_counter)}",
            "timestamp": int(at.timestamp()),
        }
        for _ in range(count)
    ]
    for start in range(0, count, 1000):
        result = usage_events_ingest(events=events[start : start + 1000], now=at).as_dict()
        assert result["rejected"] == []


def _delivery_keys() -> set:
    """The deliveries, their rules named by content (on PostgreSQL a rolled-back run's
    default rules used up sequence values: the same rule has another id afterwards)."""
    return set(
        AlertDelivery.objects.values_list(
            "account_id",
            "rule__kind",
            "rule__meter_id",
            "rule__threshold_percent",
            "rule__amount",
            "budget_id",
            "level",
            "sent_at",
        )
    )


def _sweep(at, capture, *, skip: bool, execute: bool) -> tuple:
    """(count returned, deliveries after, callbacks queued, stats) of one sweep at ``at``."""
    stats = SweepStats()
    with time_machine.travel(at, tick=False):
        with capture(execute=execute) as callbacks:
            sent = alerts_evaluate_all(now=at, skip_unchanged=skip, stats=stats)
        return sent, _delivery_keys(), len(callbacks), stats


def _compare(at, capture) -> SweepStats:
    """The skipping sweep against a full one from the same state; returns its stats."""
    sid = transaction.savepoint()
    full = _sweep(at, capture, skip=False, execute=False)
    transaction.savepoint_rollback(sid)
    sid = transaction.savepoint()
    skipping = _sweep(at, capture, skip=True, execute=False)
    assert skipping[:3] == full[:3]
    transaction.savepoint_rollback(sid)
    # Now for real (e-mails sent, watermarks kept): the same outcome again.
    real = _sweep(at, capture, skip=True, execute=True)
    assert real[0] == full[0] and real[2] == full[2]
    return real[3]


class _Smtp:
    def __init__(self, monkeypatch):
        self.real = EmailMultiAlternatives.send
        self.monkeypatch = monkeypatch

    def down(self):
        def refuse(message, fail_silently=False):
            raise ConnectionRefusedError("smtp down")

        self.monkeypatch.setattr(EmailMultiAlternatives, "send", refuse)

    def up(self):
        self.monkeypatch.setattr(EmailMultiAlternatives, "send", self.real)


def _step(rng: random.Random, accounts, at, smtp: _Smtp) -> str:
    account = rng.choice(accounts)
    api_calls = Meter.objects.get(event_name="api_calls")
    rules = list(AlertRule.objects.filter(account=account))
    budgets = list(Budget.objects.filter(account=account))
    op = rng.choice(
        [
            "usage",
            "usage",
            "seats",
            "add_rule",
            "edit_rule",
            "delete_rule",
            "budget",
            "budget",
            "delete_delivery",
            "smtp",
            "nothing",
            "nothing",
        ]
    )
    if op == "usage":
        _ingest(account, "api_calls", 1, at, count=rng.choice([1, 30, 300, 1_500]))
    elif op == "seats":
        _ingest(account, "seats", rng.randint(1, 40), at)
    elif op == "add_rule":
        kind = rng.choice(AlertRule.Kind.values)
        fields = {"account": account, "kind": kind}
        if kind in AlertRule.USAGE_KINDS:
            fields.update(meter=api_calls, threshold_percent=rng.choice([50, 110, 130, 200]))
        elif kind != AlertRule.Kind.CREDITS_RUN_OUT:
            fields.update(amount=rng.choice([5_000, 13_500, 20_000, 60_000]), currency="usd")
        AlertRule.objects.create(**fields)
    elif op == "edit_rule" and rules:
        rule = rng.choice(rules)
        if rule.threshold_percent:
            AlertRule.objects.filter(pk=rule.pk).update(
                threshold_percent=rng.choice([60, 105, 150, 300])
            )
        elif rule.amount:
            AlertRule.objects.filter(pk=rule.pk).update(amount=rng.choice([9_000, 15_000, 40_000]))
    elif op == "delete_rule" and rules:
        rng.choice(rules).delete()
    elif op == "budget":
        limit = rng.choice([5_000, 11_000, 13_000, 16_000, 40_000])
        budget = next((b for b in budgets if b.kind == Budget.Kind.UNITS), None)
        if budget is None:
            Budget.objects.create(
                account=account, kind="units", meter=api_calls, limit=limit, warn_levels=[50, 100]
            )
        else:
            old, budget.limit = budget.limit, limit
            budget.save()
            budget_changed(budget=budget, old_limit=old, now=at)
    elif op == "delete_delivery":
        delivery = AlertDelivery.objects.filter(account=account).order_by("?").first()
        if delivery is not None:
            delivery.delete()
    elif op == "smtp":
        rng.choice([smtp.down, smtp.up])()
    return op


@pytest.mark.parametrize("seed", [1, 2])
def test_skipping_never_changes_what_a_sweep_does(
    seed, pro_account, other_account, monkeypatch, django_capture_on_commit_callbacks
):
    rng = random.Random(seed)
    smtp = _Smtp(monkeypatch)
    accounts = [pro_account, other_account]
    at = timezone.now().replace(microsecond=0) + timedelta(minutes=1)
    skipped = 0
    for _ in range(20):
        _step(rng, accounts, at, smtp)
        if rng.random() < 0.3:  # the clock moves (projections), inside the period
            at += timedelta(hours=rng.choice([1, 6, 30]))
        stats = _compare(at, django_capture_on_commit_callbacks)
        assert stats.accounts == 2
        skipped += stats.skipped
    # Not vacuous: the skip happened in this history.
    assert skipped > 0


# Each kind on its own ------------------------------------------------------------------


@pytest.fixture
def swept(pro_account, other_account, django_capture_on_commit_callbacks):
    """Both accounts swept once (Pro's default rules fire), then once more to record
    their watermarks; returns a function sweeping at the same moment + ``minutes``."""
    at = timezone.now().replace(microsecond=0) + timedelta(minutes=1)

    def sweep(minutes: int = 0) -> tuple[int, SweepStats]:
        stats = SweepStats()
        moment = at + timedelta(minutes=minutes)
        with (
            time_machine.travel(moment, tick=False),
            django_capture_on_commit_callbacks(execute=True),
        ):
            sent = alerts_evaluate_all(now=moment, stats=stats)
        return sent, stats

    assert sweep()[0] == 2  # Pro's 80% and 100% of the allowance
    # Pro claimed: evaluated again (a no-op now); Globex's no-op was recorded already.
    assert (sweep()[1].evaluated, SweepWatermark.objects.count()) == (1, 2)
    return sweep


def test_an_unchanged_account_is_skipped(swept):
    sent, stats = swept(5)
    assert (sent, stats.evaluated, stats.skipped) == (0, 0, 2)
    assert len(mail.outbox) == 2


def test_new_usage_is_evaluated_and_alerts(swept, other_account):
    # A spend rule at $1,000: nothing Globex (Starter) uses here reaches it.
    AlertRule.objects.create(account=other_account, kind="spend", amount=100_000, currency="usd")
    sent, stats = swept(1)
    assert (sent, stats.evaluated) == (0, 1)  # the new rule: evaluated, recorded
    assert swept(2)[1].skipped == 2
    _ingest(other_account, "api_calls", 1, timezone.now(), count=5)
    sent, stats = swept(3)
    assert (sent, stats.evaluated, stats.skipped) == (0, 1, 1)
    assert swept(4)[1].skipped == 2


def test_a_crossing_after_new_usage_alerts_once(swept, pro_account):
    # A 130% rule: 13,000 calls; 10,500 used, 2,500 more cross it.
    AlertRule.objects.create(
        account=pro_account,
        kind="usage_share",
        meter=Meter.objects.get(event_name="api_calls"),
        threshold_percent=130,
    )
    assert swept(1)[0] == 0
    assert swept(2)[1].skipped == 2
    _ingest(pro_account, "api_calls", 1, timezone.now(), count=2_500)
    sent, stats = swept(3)
    assert (sent, stats.evaluated) == (1, 1)
    assert "13,000" in mail.outbox[-1].subject


def test_a_projected_rule_is_evaluated_every_sweep_until_sent(swept, pro_account):
    rule = AlertRule.objects.create(
        account=pro_account, kind="projected_spend", amount=10**12, currency="usd"
    )  # ten billion dollars: not reached at any pace here
    for minutes in (1, 2, 3):
        assert swept(minutes)[1].evaluated == 1  # time-driven: never skipped
    AlertRule.objects.filter(pk=rule.pk).update(amount=100)
    assert swept(4)[0] == 1  # $1.00: projected past it, sent
    swept(5)
    assert swept(6)[1].skipped == 2  # sent this period: nothing more it can do


def test_a_pending_delivery_is_retried(swept, pro_account, monkeypatch):
    AlertRule.objects.create(account=pro_account, kind="spend", amount=100, currency="usd")
    smtp = _Smtp(monkeypatch)
    smtp.down()
    assert swept(1)[0] == 1  # claimed, its e-mail failed: pending
    for minutes in (2, 3):
        sent, stats = swept(minutes)
        assert stats.evaluated == 1 and sent == 1  # retried each sweep while pending
    smtp.up()
    assert swept(4)[0] == 1
    assert AlertDelivery.objects.filter(sent_at__isnull=True).count() == 0
    swept(5)
    assert swept(6)[1].skipped == 2


def test_an_edited_rule_is_evaluated(swept, pro_account):
    rule = AlertRule.objects.create(
        account=pro_account, kind="spend", amount=99_999_00, currency="usd"
    )
    swept(1)
    assert swept(2)[1].skipped == 2
    # Bill so far 13,000¢ (conftest); lowering the rule to 12,000¢ crosses it.
    AlertRule.objects.filter(pk=rule.pk).update(amount=12_000)
    sent, stats = swept(3)
    assert (sent, stats.evaluated) == (1, 1)


def test_a_lowered_budget_is_evaluated(swept, pro_account):
    budget = Budget.objects.create(
        account=pro_account,
        kind="units",
        meter=Meter.objects.get(event_name="api_calls"),
        limit=100_000,
        warn_levels=[50, 100],
    )
    swept(1)
    assert swept(2)[1].skipped == 2
    Budget.objects.filter(pk=budget.pk).update(limit=20_000)  # 10,500 ≥ 50% of 20,000
    sent, stats = swept(3)
    assert (sent, stats.evaluated) == (1, 1)
    assert list(AlertDelivery.objects.filter(budget=budget).values_list("level", flat=True)) == [50]


def test_a_deleted_delivery_is_claimed_again(swept, pro_account):
    AlertDelivery.objects.filter(account=pro_account, threshold=10_000).delete()
    sent, stats = swept(1)
    assert (sent, stats.evaluated) == (1, 1)
    assert len(mail.outbox) == 3


def test_an_automatic_top_up_is_evaluated_every_sweep(swept, pro_account):
    AutoTopUp.objects.create(
        account=pro_account, enabled=True, threshold=0, amount=1_000, currency="usd"
    )
    for minutes in (1, 2):
        assert swept(minutes)[1].evaluated == 1


def test_skip_off_evaluates_everyone(swept):
    stats = SweepStats()
    alerts_evaluate_all(skip_unchanged=False, stats=stats)
    assert (stats.evaluated, stats.skipped) == (2, 0)


def test_the_digest_moves_with_each_input(pro_account):
    """Every input of an evaluation besides usage (the touch rows) is in the digest: the
    subscription's stamp (a rollover, a plan or quantity change is a save of the
    mirrored subscription), a rule, a budget, a delivery sent or not, or gone."""
    now = timezone.now()
    rule = AlertRule(pk=1, account=pro_account, kind="spend", amount=100, currency="usd")
    budget = Budget(pk=2, account=pro_account, kind="spend", limit=5, currency="usd")
    delivery = AlertDelivery(pk=3, account=pro_account, rule=rule, level=100, sent_at=None)
    base = {
        "subscriptions": (("sub_1", now),),
        "rules": [rule],
        "budgets": [budget],
        "deliveries": [delivery],
    }
    digest = sweep_inputs_digest(**base)
    assert sweep_inputs_digest(**base) == digest
    changes = [
        {"subscriptions": (("sub_1", now + timedelta(microseconds=1)),)},
        {"subscriptions": (("sub_1", now), ("sub_2", now))},
        {"subscriptions": ()},
        {"rules": [_copy(rule, amount=101)]},
        {"rules": [_copy(rule, kind="projected_spend")]},
        {"rules": []},
        {"budgets": [_copy(budget, limit=6)]},
        {"budgets": [_copy(budget, warn_levels=[80])]},
        {"budgets": []},
        {"deliveries": [_copy(delivery, sent_at=now)]},
        {"deliveries": []},
    ]
    digests = {sweep_inputs_digest(**{**base, **change}) for change in changes}
    assert digest not in digests and len(digests) == len(changes)


def test_every_rollup_write_leaves_a_touch(pro_account, other_account):
    """The triggers on the rollups (usage.sweep_triggers), whoever writes them: the
    ingest statement, an ORM update, a delete; each is consumed by the next sweep."""
    assert SweepTouch.objects.filter(account_id=pro_account.pk).exists()  # the fixture's
    alerts_evaluate_all()
    assert not SweepTouch.objects.exists()
    _ingest(other_account, "api_calls", 1, timezone.now())
    assert set(SweepTouch.objects.values_list("account_id", flat=True)) == {other_account.pk}
    alerts_evaluate_all()
    UsageRollup.objects.filter(account=pro_account).update(sum_value=F("sum_value") + 1)
    assert set(SweepTouch.objects.values_list("account_id", flat=True)) == {pro_account.pk}
    alerts_evaluate_all()
    UsageRollup.objects.filter(account=other_account).delete()
    assert set(SweepTouch.objects.values_list("account_id", flat=True)) == {other_account.pk}


def _copy(instance, **fields):
    values = {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}
    return type(instance)(**{**values, **fields})
