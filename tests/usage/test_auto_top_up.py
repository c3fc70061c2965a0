"""Automatic top-ups (``usage.services.auto_top_up``): bought once when the live remaining
balance falls below the threshold, never twice at once, never when disabled; and the
alert evaluation after ingestion is what calls it.

Starter at 0.1¢ a call, a $5.00 (500¢) grant, period Mar 1 - Apr 1 (see
``test_credit_balance``). 2,000 calls = 200¢ used, so 500 - 200 = 300¢ remain.
"""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection

from billing.mirror.customers import customer_id_for_account
from billing.models_credits import AutoTopUp, CreditGrant
from tests.usage.test_credit_balance import balance_at, calls, make_grant, starter  # noqa: F401
from usage.services import alert_scheduling
from usage.services import auto_top_up as auto_top_up_module
from usage.services.alerts import alerts_evaluate_account, alerts_evaluate_all
from usage.services.auto_top_up import auto_top_up_check

T = datetime(2026, 3, 5, tzinfo=UTC)


@pytest.fixture
def used_300_left(starter):  # noqa: F811
    make_grant(starter, amount=500, stripe_id="credgr_welcome")
    with time_machine.travel(T, tick=False):
        calls(starter, 2_000, at=datetime(2026, 3, 2, tzinfo=UTC), now=T, prefix="u")
    return starter


def _settings(account, *, enabled=True, threshold=400, amount=1_000):
    # Below $4.00 (400¢) buy $10.00 (1,000¢).
    return AutoTopUp.objects.create(
        account=account, enabled=enabled, threshold=threshold, amount=amount, currency="usd"
    )


def _top_ups(account):
    return CreditGrant.objects.filter(account=account, source=CreditGrant.Source.AUTO_TOP_UP)


@pytest.mark.django_db
def test_fires_once_below_the_threshold(used_300_left):
    account = used_300_left
    _settings(account)
    _, balance = balance_at(account, T)
    assert balance.remaining == 300  # 500 - 2,000 x 0.1
    with time_machine.travel(T, tick=False):
        grant = auto_top_up_check(account=account, balance=balance)
    assert grant is not None
    assert (grant.category, grant.status, grant.amount, grant.purchase_amount, grant.currency) == (
        "paid",
        CreditGrant.Status.AWAITING_PAYMENT,
        1_000,
        1_000,
        "usd",
    )
    assert AutoTopUp.objects.get(account=account).last_triggered_at == T
    # The balance has not changed (the purchase is unpaid): nothing more is bought.
    with time_machine.travel(T, tick=False):
        assert auto_top_up_check(account=account, balance=balance) is None
    assert _top_ups(account).count() == 1


@pytest.mark.django_db
def test_not_when_disabled_or_at_the_threshold(used_300_left):
    account = used_300_left
    settings = _settings(account, enabled=False)
    _, balance = balance_at(account, T)
    with time_machine.travel(T, tick=False):
        assert auto_top_up_check(account=account, balance=balance) is None
        # Enabled, threshold 300¢: 300 is not below 300.
        settings.enabled, settings.threshold = True, 300
        settings.save()
        assert auto_top_up_check(account=account, balance=balance) is None
        # Another currency's settings never buy.
        settings.threshold, settings.currency = 400, "eur"
        settings.save()
        assert auto_top_up_check(account=account, balance=balance) is None
    assert _top_ups(account).count() == 0


@pytest.mark.django_db
def test_the_constraint_decides_when_both_pass_the_pre_check(used_300_left, monkeypatch):
    """Two evaluations that both saw no top-up in flight: the second INSERT violates
    ``credit_grant_one_auto_top_up_in_flight`` and buys nothing."""
    account = used_300_left
    _settings(account)
    _, balance = balance_at(account, T)
    monkeypatch.setattr(auto_top_up_module, "auto_top_up_in_flight", lambda **kwargs: None)
    with time_machine.travel(T, tick=False):
        first = auto_top_up_check(account=account, balance=balance)
        second = auto_top_up_check(account=account, balance=balance)
    assert first is not None and second is None
    assert _top_ups(account).count() == 1


def _race(account, balance, barrier, results, errors):
    try:
        barrier.wait(timeout=10)
        results.append(auto_top_up_check(account=account, balance=balance))
    except Exception as exc:  # surfaced by the test
        errors.append(exc)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_not_twice_concurrently(used_300_left, monkeypatch):
    """Four workers at once, all past the pre-check: one purchase. The purchase's Stripe
    calls (after the commit) are left out so the top-up stays in flight."""
    account = used_300_left
    _settings(account)
    _, balance = balance_at(account, T)
    monkeypatch.setattr(auto_top_up_module, "auto_top_up_in_flight", lambda **kwargs: None)
    monkeypatch.setattr("billing.services.credits.credit_grant_queue", lambda **kwargs: None)
    barrier, results, errors = threading.Barrier(4), [], []
    workers = [
        threading.Thread(target=_race, args=(account, balance, barrier, results, errors))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    assert len([r for r in results if r is not None]) == 1
    assert _top_ups(account).count() == 1


@pytest.mark.django_db
def test_the_evaluation_after_ingestion_and_the_sweep_buy_it(used_300_left):
    account = used_300_left
    _settings(account)
    with time_machine.travel(T, tick=False):
        alerts_evaluate_account(account=account, now=T)
        assert _top_ups(account).count() == 1
        alerts_evaluate_all(now=T)  # in flight: not again
    assert _top_ups(account).count() == 1


@pytest.mark.django_db
def test_the_sweep_buys_it_without_any_alert_rule(used_300_left):
    account = used_300_left
    _settings(account)
    with time_machine.travel(T, tick=False):
        alerts_evaluate_all(now=T)
    [grant] = _top_ups(account)
    assert (grant.amount, grant.status) == (1_000, CreditGrant.Status.AWAITING_PAYMENT)


@pytest.mark.django_db
def test_a_declined_top_up_is_not_bought_again_until_the_settings_are_saved(used_300_left):
    account = used_300_left
    with time_machine.travel(T - timedelta(days=1), tick=False):
        settings = _settings(account)  # saved Mar 4
    _, balance = balance_at(account, T)
    with time_machine.travel(T, tick=False):
        grant = auto_top_up_check(account=account, balance=balance)
    # The purchase invoice was voided (card declined): the grant is canceled.
    CreditGrant.objects.filter(pk=grant.pk).update(status=CreditGrant.Status.CANCELED)
    with time_machine.travel(T + timedelta(minutes=1), tick=False):
        assert auto_top_up_check(account=account, balance=balance) is None
    with time_machine.travel(T + timedelta(minutes=2), tick=False):
        settings.save()  # the customer saves the settings again
        assert auto_top_up_check(account=account, balance=balance) is not None
    assert _top_ups(account).count() == 2


def _post_calls(api, account, n: int, *, at: datetime, prefix: str) -> None:
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
    response = api.post({"events": events})
    assert response.status_code == 202, response.content


@pytest.mark.django_db
def test_ingestion_through_the_api_alone_buys_it(
    starter,  # noqa: F811
    api,
    django_capture_on_commit_callbacks,
):
    """The evaluation the ingestion API queues after a batch commits
    (``alerts_schedule_evaluation``, Celery eager in tests) runs the check."""
    make_grant(starter, amount=500, stripe_id="credgr_welcome")
    _settings(starter)
    with time_machine.travel(T, tick=False), django_capture_on_commit_callbacks(execute=True):
        _post_calls(api, starter, 1_000, at=datetime(2026, 3, 2, tzinfo=UTC), prefix="i1")
    assert _top_ups(starter).count() == 0  # 1,000 calls = 100¢: 400¢ left, not below 400¢
    # The debounce (5 s, this process and the shared cache) has passed.
    alert_scheduling._recently_scheduled.clear()
    cache.delete(f"alerts:scheduled:{starter.pk}")
    with time_machine.travel(T, tick=False), django_capture_on_commit_callbacks(execute=True):
        _post_calls(api, starter, 1_000, at=datetime(2026, 3, 3, tzinfo=UTC), prefix="i2")
    # 2,000 calls = 200¢: 300¢ left < 400¢. The purchase ran after the commit too (the
    # customer's card pays the invoice at once): the grant is active.
    [grant] = _top_ups(starter)
    assert (grant.amount, grant.purchase_amount, grant.status) == (
        1_000,
        1_000,
        CreditGrant.Status.ACTIVE,
    )
    assert grant.stripe_id.startswith("credgr_")
    # 500 + 1,000 = 1,500¢ available, 200¢ used: 1,300¢ left, above the threshold.
    _, balance = balance_at(starter, T)
    assert (balance.available_before_period, balance.remaining) == (1_500, 1_300)
