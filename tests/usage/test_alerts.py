"""Alert rules, evaluation and delivery: once per (account, rule, period)."""

import threading

import pytest
from django.core import mail
from django.db import connection, transaction
from django.urls import reverse

from billing.mirror.subscriptions import subscription_state_for_account
from billing.models import Membership
from tests.factories import make_user
from usage.models import AlertDelivery, AlertRule
from usage.selectors.alerts import alert_check
from usage.selectors.summaries import period_summary
from usage.services.alerts import alert_deliver, alerts_evaluate_account, alerts_evaluate_all


@pytest.fixture
def contacts(pro_account):
    return (
        make_user(pro_account, "olga", email="olga@acme.example"),
        make_user(pro_account, "bill", Membership.Role.BILLING, email="bill@acme.example"),
        make_user(pro_account, "mo", Membership.Role.MEMBER, email="mo@acme.example"),
    )


@pytest.mark.django_db
def test_default_rules_fire_once_each_to_owner_and_billing(
    pro_account, contacts, django_capture_on_commit_callbacks
):
    # Pro includes 10,000 API calls; 10,500 were used: the default 80% (8,000) and 100%
    # (10,000) rules both fire. Seats have no allowance, so no default rule for them.
    with django_capture_on_commit_callbacks(execute=True):
        sent = alerts_evaluate_account(account=pro_account)
        assert mail.outbox == []  # nothing goes out before the delivery rows commit
    assert sorted(d.threshold for d in sent) == [8_000, 10_000]
    rules = AlertRule.objects.filter(account=pro_account, is_default=True)
    assert sorted(rules.values_list("threshold_percent", flat=True)) == [80, 100]
    assert len(mail.outbox) == 2
    for message in mail.outbox:
        # Every member who receives alerts (the default; issue 18), the viewer too.
        assert sorted(message.to) == ["bill@acme.example", "mo@acme.example", "olga@acme.example"]
        assert "10,500" in message.body
        html = message.alternatives[0][0]
        assert "10,500" in html and "<table" in html
        assert "http://127.0.0.1:8000/dashboard/alerts/" in message.body
        assert 'href="http://127.0.0.1:8000/dashboard/"' in html
    # 10,500 of 10,000 is 105% (not the rule's 100%); the rule's own share in brackets.
    subjects = mail.outbox[1].subject + mail.outbox[0].subject
    assert "reached 10,500 calls, 105% of the 10,000 included (alert at 100%)" in subjects
    assert "reached 10,500 calls, 105% of the 10,000 included (alert at 80%)" in subjects
    # The spend the alert e-mail talks about, as base + usage: Pro's base $99.00 and
    # 500 calls over the allowance at 0.2¢ = $1.00, plus 3 seats at $10 = $30.00.
    assert "Spend so far: $130.00 = $99.00 base + $31.00 usage" in mail.outbox[0].body
    assert all(d.sent_at is not None for d in AlertDelivery.objects.all())
    # Evaluating again changes nothing.
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            assert alerts_evaluate_account(account=pro_account) == []
        assert callbacks == []
    assert len(mail.outbox) == 2
    assert AlertDelivery.objects.filter(account=pro_account).count() == 2


@pytest.mark.django_db
def test_spend_and_projected_rules(pro_account, contacts):
    # Spend so far: base fee 9,900¢ + usage (500 × 0.2¢ = 100¢) + seats (3 × 1,000¢)
    # = 13,000¢. A $130.00 rule fires (13,000 ≥ 13,000); a $130.01 rule does not.
    fires = AlertRule.objects.create(
        account=pro_account, kind="spend", amount=13_000, currency="usd"
    )
    quiet = AlertRule.objects.create(
        account=pro_account, kind="spend", amount=13_001, currency="usd"
    )
    state = subscription_state_for_account(account=pro_account)
    summary = period_summary(account=pro_account, state=state)
    assert alert_check(rule=fires, summary=summary).observed == 13_000
    assert alert_check(rule=fires, summary=summary).crossed
    assert not alert_check(rule=quiet, summary=summary).crossed
    # Projected usage is at least what was used: 10,500 ≥ 105% of 10,000 (10,500).
    api_calls = next(line.meter for line in summary.lines if line.meter.event_name == "api_calls")
    projected = AlertRule.objects.create(
        account=pro_account, kind="projected_usage_share", meter=api_calls, threshold_percent=105
    )
    assert alert_check(rule=projected, summary=summary).crossed


def _evaluate_in_thread(account, times, barrier, errors):
    try:
        barrier.wait(timeout=10)
        for _ in range(times):
            alerts_evaluate_account(account=account)
    except Exception as exc:  # surfaced by the test
        errors.append(exc)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_ten_evaluations_from_two_workers_at_once_send_each_email_once(pro_account, contacts):
    barrier, errors = threading.Barrier(2), []
    workers = [
        threading.Thread(target=_evaluate_in_thread, args=(pro_account, 5, barrier, errors))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert errors == []
    assert AlertDelivery.objects.filter(account=pro_account).count() == 2
    assert len(mail.outbox) == 2


def _race(account, check, summary, barrier, results):
    try:
        barrier.wait(timeout=10)
        results.append(alert_deliver(account=account, check=check, summary=summary))
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_the_database_constraint_decides_a_direct_race(pro_account, contacts):
    """Both racers skip the 'already sent' pre-check and go straight to the INSERT."""
    state = subscription_state_for_account(account=pro_account)
    summary = period_summary(account=pro_account, state=state)
    rule = AlertRule.objects.create(account=pro_account, kind="spend", amount=100, currency="usd")
    check = alert_check(rule=rule, summary=summary)
    barrier, results = threading.Barrier(4), []
    racers = [
        threading.Thread(target=_race, args=(pro_account, check, summary, barrier, results))
        for _ in range(4)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    assert len([r for r in results if r is not None]) == 1
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_alert_form_adds_and_removes_rules_with_inline_errors(client, pro_account):
    client.force_login(make_user(pro_account, "ada"))
    htmx = {"HX-Request": "true"}
    url = reverse("dashboards:alert_add")
    missing_meter = client.post(
        url, {"kind": "usage_share", "threshold_percent": "90"}, headers=htmx
    )
    assert missing_meter.status_code == 422
    assert 'id="id_meter-error"' in missing_meter.content.decode()
    assert "Choose a meter." in missing_meter.content.decode()
    bad_amount = client.post(url, {"kind": "spend", "amount": "-5"}, headers=htmx)
    assert bad_amount.status_code == 422
    # Issue 14: the form's own wording instead of "greater than or equal to 0.01".
    assert 'id="id_amount-error"' in bad_amount.content.decode()
    assert "Enter an amount above zero." in bad_amount.content.decode()
    assert AlertRule.objects.filter(account=pro_account).count() == 0

    ok = client.post(url, {"kind": "spend", "amount": "250.50"}, headers=htmx)
    assert ok.status_code == 200
    rule = AlertRule.objects.get(account=pro_account, kind="spend")
    assert (rule.amount, rule.currency) == (25_050, "usd")  # $250.50 = 25,050¢
    assert "Spend this period reaches $250.50" in ok.content.decode()

    removed = client.post(reverse("dashboards:alert_remove", args=[rule.pk]), headers=htmx)
    assert removed.status_code == 200
    assert not AlertRule.objects.filter(pk=rule.pk).exists()


@pytest.mark.django_db
def test_rules_of_another_account_cannot_be_touched(client, pro_account, other_account):
    rule = AlertRule.objects.create(account=pro_account, kind="spend", amount=100, currency="usd")
    client.force_login(make_user(other_account, "mallory"))
    response = client.post(reverse("dashboards:alert_remove", args=[rule.pk]))
    assert response.status_code == 404
    assert AlertRule.objects.filter(pk=rule.pk).exists()
    page = client.get(reverse("dashboards:alerts"), {"account": str(pro_account.pk)})
    assert page.status_code == 404


@pytest.mark.django_db
def test_ingestion_through_the_api_triggers_alerts(
    client, pro_account, contacts, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    from usage.services.keys import ingest_key_create

    cache.clear()
    _, raw_key = ingest_key_create(name="backend")
    customer = pro_account.djstripe_customers.get().id
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            "/api/v1/usage/events",
            {"event_name": "api_calls", "customer": customer, "identifier": "trigger-1"},
            content_type="application/json",
            headers={"Authorization": f"Bearer {raw_key}"},
        )
    assert response.status_code == 202
    from usage.tasks import evaluate_accounts_alerts

    queued = [c for c in callbacks if c.func == evaluate_accounts_alerts.delay]
    assert [c.args for c in queued] == [([pro_account.pk],)]  # one message, its one account
    assert len(callbacks) == 3  # and, run eagerly, its two e-mails after their claims commit
    # 10,501 calls: past 80% (8,000) and 100% (10,000) of the allowance.
    assert sorted(d.threshold for d in AlertDelivery.objects.all()) == [8_000, 10_000]
    assert len(mail.outbox) == 2
    cache.clear()  # the shared key is gone; this process still remembers asking
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        client.post(
            "/api/v1/usage/events",
            {"event_name": "api_calls", "customer": customer, "identifier": "trigger-2"},
            content_type="application/json",
            headers={"Authorization": f"Bearer {raw_key}"},
        )
    assert callbacks == []  # debounced in process, without a cache round trip
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_the_sweep_sends_each_crossed_rule_once_across_accounts(
    pro_account, other_account, contacts, django_capture_on_commit_callbacks
):
    # Pro: 10,500 of 10,000 included calls crosses the default 80% and 100% rules.
    # Starter has no allowance, so no default rules and nothing to send.
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate_all(chunk_size=1) == 2
    assert AlertRule.objects.filter(account=other_account).count() == 0
    assert sorted(d.threshold for d in AlertDelivery.objects.all()) == [8_000, 10_000]
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate_all() == 0
    assert len(mail.outbox) == 2


@pytest.mark.django_db(transaction=True)
def test_no_email_when_the_surrounding_transaction_rolls_back(pro_account, contacts):
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        claimed = alerts_evaluate_account(account=pro_account)
        assert len(claimed) == 2  # 80% and 100% of the allowance, claimed inside
        raise Abort
    assert mail.outbox == []
    assert AlertDelivery.objects.count() == 0
    # Nothing was lost: the next evaluation claims and sends both.
    assert len(alerts_evaluate_account(account=pro_account)) == 2
    assert len(mail.outbox) == 2


@pytest.mark.django_db(transaction=True)
def test_a_failed_send_stays_pending_and_the_next_evaluation_sends_it_once(
    pro_account, contacts, monkeypatch
):
    from django.core.mail import EmailMultiAlternatives

    real_send = EmailMultiAlternatives.send

    def smtp_down(self, fail_silently=False):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr(EmailMultiAlternatives, "send", smtp_down)
    alerts_evaluate_account(account=pro_account)  # autocommit: sends right after each claim
    assert mail.outbox == []
    pending = AlertDelivery.objects.filter(account=pro_account)
    assert sorted(pending.values_list("threshold", "sent_at", "lease_until")) == [
        (8_000, None, None),
        (10_000, None, None),
    ]
    assert list(alerts_sent_this_period_for(pro_account)) == []  # not shown as sent

    monkeypatch.setattr(EmailMultiAlternatives, "send", real_send)
    retried = alerts_evaluate_account(account=pro_account)
    assert sorted(d.threshold for d in retried) == [8_000, 10_000]
    assert len(mail.outbox) == 2
    assert AlertDelivery.objects.filter(sent_at__isnull=True).count() == 0
    assert len(alerts_sent_this_period_for(pro_account)) == 2
    # Sent now: a third evaluation and the sweep send nothing more.
    assert alerts_evaluate_account(account=pro_account) == []
    assert alerts_evaluate_all() == 0
    assert len(mail.outbox) == 2


@pytest.mark.django_db(transaction=True)
def test_a_pending_delivery_another_worker_is_sending_is_not_sent_twice(pro_account, contacts):
    from datetime import timedelta

    from django.utils import timezone

    from usage.services.alerts import alert_delivery_send

    state = subscription_state_for_account(account=pro_account)
    summary = period_summary(account=pro_account, state=state)
    rule = AlertRule.objects.create(account=pro_account, kind="spend", amount=100, currency="usd")
    check = alert_check(rule=rule, summary=summary)
    with transaction.atomic():  # claim only: the send waits for the commit
        delivery = alert_deliver(account=pro_account, check=check, summary=summary)
        # Another worker took the send lease in between.
        AlertDelivery.objects.filter(pk=delivery.pk).update(
            lease_until=timezone.now() + timedelta(minutes=5)
        )
    assert mail.outbox == []
    assert alert_delivery_send(delivery=delivery, check=check, summary=summary) is False
    # Once its lease lapsed (the worker died), the delivery is sent, once.
    AlertDelivery.objects.filter(pk=delivery.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert alert_delivery_send(delivery=delivery, check=check, summary=summary) is True
    assert alert_delivery_send(delivery=delivery, check=check, summary=summary) is False
    assert len(mail.outbox) == 1


def alerts_sent_this_period_for(account):
    from usage.selectors.alerts import alerts_sent_this_period

    summary = period_summary(account=account, state=subscription_state_for_account(account=account))
    return alerts_sent_this_period(account=account, period_start=summary.period_start)


@pytest.mark.django_db
def test_a_batch_queues_one_message_per_fifty_accounts(django_capture_on_commit_callbacks):
    from usage.services.alert_scheduling import alerts_schedule_evaluation
    from usage.tasks import evaluate_accounts_alerts

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = alerts_schedule_evaluation(account_ids=range(1000, 1120), debounce_seconds=0)
    assert queued == 120
    assert [c.func for c in callbacks] == [evaluate_accounts_alerts.delay] * 3
    # 120 accounts: 50 + 50 + 20, in order, each once.
    assert [c.args[0] for c in callbacks] == [
        list(range(1000, 1050)),
        list(range(1050, 1100)),
        list(range(1100, 1120)),
    ]


@pytest.mark.django_db
def test_one_account_failing_does_not_stop_the_others(pro_account, other_account, monkeypatch):
    from usage.services import alerts
    from usage.tasks import evaluate_accounts_alerts

    seen = []

    def evaluate(*, account):
        seen.append(account.pk)
        if account.pk == min(pro_account.pk, other_account.pk):
            raise RuntimeError("boom")
        return ["claimed"]

    monkeypatch.setattr(alerts, "alerts_evaluate_account", evaluate)
    assert evaluate_accounts_alerts([pro_account.pk, other_account.pk]) == 1
    assert seen == sorted([pro_account.pk, other_account.pk])
