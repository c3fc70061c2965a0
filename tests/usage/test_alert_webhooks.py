"""Alert channels (issue 16, acceptance 3): signed operator webhooks received by a real
HTTP server that checks the signature, retried with backoff after a 500, one delivery per
(rule, level, period) however many sweeps run; Slack's body; only http(s) URLs."""

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.utils import timezone

from billing.mirror.customers import customer_id_for_account
from tests.usage.webhook_receiver import Receiver
from usage.models import AlertDelivery
from usage.models_webhooks import ChannelDelivery, WebhookEndpoint
from usage.services.alert_channel_send import (
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    channel_deliveries_retry_now,
    channel_deliveries_send_due,
)
from usage.services.alert_channels import URL_REFUSED, url_allowed
from usage.services.alerts import alerts_evaluate_all
from usage.webhook_signature import signature_header, signature_valid

SECRET = "whsec_test_0123456789abcdef"
Status = ChannelDelivery.Status


@pytest.fixture
def receiver():
    server = Receiver(secret=SECRET).start()
    yield server
    server.stop()


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    # Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac k
    header = signature_header(secret="k", timestamp=1_700_000_000, body='{"a":1}')
    assert header == (
        "t=1700000000,v1=1b6ad1bc9bf48c52ce01939866d5877c6cc4e87ddad27e16673cb8c4964394a3"
    )
    assert signature_valid(secret="k", header=header, body='{"a":1}', now=1_700_000_100)
    assert not signature_valid(secret="k", header=header, body='{"a":2}', now=1_700_000_100)
    assert not signature_valid(secret="x", header=header, body='{"a":1}', now=1_700_000_100)
    # Replayed ten minutes later: outside the 5-minute tolerance.
    assert not signature_valid(secret="k", header=header, body='{"a":1}', now=1_700_000_600)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.slack.com/services/T0/B0/x", True),
        ("http://127.0.0.1:9000/hook", True),
        ("file:///etc/passwd", False),
        ("ftp://example.com/x", False),
        ("gopher://example.com:70/_", False),
        ("//example.com/x", False),
        ("http://", False),
        ("javascript:alert(1)", False),
        ("", False),
    ],
)
def test_only_http_and_https_urls_are_sent_to(url, allowed):
    assert url_allowed(url) is allowed


# Fast tests: an alert row made by hand, no Stripe emulator -------------------------------

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _alert_with_webhook(url: str, secret: str = SECRET) -> ChannelDelivery:
    from billing.models import Account

    account = Account.objects.create(name="Hooked Ltd", billing_email="h@example.com")
    alert = AlertDelivery.objects.create(
        account=account,
        period_start=T0 - timedelta(days=9),
        period_end=T0 + timedelta(days=22),
        summary="Spend budget: 80% reached",
        observed=16_000,
        threshold=16_000,
        recipients="h@example.com",
    )
    endpoint = WebhookEndpoint.objects.create(url=url, secret=secret)
    return ChannelDelivery.objects.create(
        alert=alert,
        channel="webhook",
        endpoint=endpoint,
        url=url,
        payload=json.dumps({"id": f"alert_{alert.pk}", "type": "alert.threshold_reached"}),
    )


@pytest.mark.django_db
def test_backoff_30s_2min_10min_1h_6h_then_failed_and_retry_now(receiver):
    receiver.first_answers = (500,) * 7 + (503,)
    row = _alert_with_webhook(f"{receiver.url}/hook")
    at = T0
    # Attempt n fails at `at`; the next is due RETRY_DELAYS[n-1] later, not a second sooner.
    for attempt, delay in enumerate(RETRY_DELAYS, start=1):
        with time_machine.travel(at, tick=False):
            assert channel_deliveries_send_due() == {"pending": 1}
        row.refresh_from_db()
        assert (row.attempts, row.last_status_code, row.next_attempt_at) == (
            attempt,
            500,
            at + delay,
        )
        assert row.last_response == f'{{"ok": false, "n": {attempt}}}'
        with time_machine.travel(at + delay - timedelta(seconds=1), tick=False):
            assert channel_deliveries_send_due() == {}  # not due yet
        at += delay
    assert [d.total_seconds() for d in RETRY_DELAYS] == [30, 120, 600, 3600, 21600]
    with time_machine.travel(at, tick=False):  # the 6th attempt fails too: given up
        assert channel_deliveries_send_due() == {"failed": 1}
    row.refresh_from_db()
    assert (row.status, row.attempts, row.next_attempt_at) == (Status.FAILED, MAX_ATTEMPTS, None)
    with time_machine.travel(at + timedelta(days=1), tick=False):
        assert channel_deliveries_send_due() == {}  # failed rows are not retried by beat
        # Staff's "retry now": one more attempt (the 7th answer is still 500).
        assert channel_deliveries_retry_now(ids=[row.pk]) == 1
        assert channel_deliveries_send_due() == {"failed": 1}
        channel_deliveries_retry_now(ids=[row.pk])
        assert channel_deliveries_send_due() == {"failed": 1}  # 503 on the 8th
        channel_deliveries_retry_now(ids=[row.pk])
        assert channel_deliveries_send_due() == {"delivered": 1}  # then 200
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_status_code) == (Status.DELIVERED, 9, 200)
    assert len(receiver.received) == 9
    assert all(r.signature_ok for r in receiver.received)  # re-signed each time
    assert len({r.headers["X-Meterdesk-Signature"] for r in receiver.received}) > 1


@pytest.mark.django_db
def test_only_the_first_2000_characters_of_an_answer_are_kept(receiver):
    receiver.first_answers, receiver.answer_body = (500,), b"<html>" + b"x" * 100_000
    row = _alert_with_webhook(f"{receiver.url}/hook")
    with time_machine.travel(T0, tick=False):
        assert channel_deliveries_send_due() == {"pending": 1}
    row.refresh_from_db()
    assert row.last_response == "<html>" + "x" * 1_994  # 6 + 1,994 = 2,000 characters


@pytest.mark.django_db
def test_a_connection_error_is_retried_and_recorded():
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    row = _alert_with_webhook(f"http://127.0.0.1:{port}/hook")
    with time_machine.travel(T0, tick=False):
        assert channel_deliveries_send_due() == {"pending": 1}
    row.refresh_from_db()
    assert (row.attempts, row.last_status_code, row.next_attempt_at) == (
        1,
        None,
        T0 + timedelta(seconds=30),
    )
    assert row.last_error.startswith("ConnectionError")


@pytest.mark.django_db
def test_a_leased_delivery_is_not_sent_by_another_worker(receiver):
    row = _alert_with_webhook(f"{receiver.url}/hook")
    ChannelDelivery.objects.filter(pk=row.pk).update(lease_until=T0 + timedelta(seconds=10))
    with time_machine.travel(T0, tick=False):
        assert channel_deliveries_send_due() == {}
    with time_machine.travel(T0 + timedelta(seconds=11), tick=False):  # lease lapsed
        assert channel_deliveries_send_due() == {"delivered": 1}
    assert len(receiver.received) == 1


@pytest.mark.django_db
def test_a_url_that_is_not_http_is_never_requested():
    row = _alert_with_webhook("file:///etc/passwd")
    with time_machine.travel(T0, tick=False):
        assert channel_deliveries_send_due() == {"failed": 1}
    row.refresh_from_db()
    assert (row.status, row.last_error, row.last_status_code) == (Status.FAILED, URL_REFUSED, None)


# Through the sweep: Pro's default rules (80% and 100% of 10,000 calls; 10,500 used) ----


@pytest.mark.django_db
def test_webhook_500_then_200_delivered_on_the_second_attempt_30s_later(
    pro_account, receiver, django_capture_on_commit_callbacks
):
    WebhookEndpoint.objects.create(url=f"{receiver.url}/meterdesk", secret=SECRET)
    receiver.first_answers = (500,)
    t0 = timezone.now().replace(microsecond=0) + timedelta(minutes=1)
    with time_machine.travel(t0, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate_all() == 2
    rows = list(ChannelDelivery.objects.order_by("alert__threshold"))
    assert [(r.status, r.attempts, r.last_status_code) for r in rows] == [
        (Status.PENDING, 1, 500),
        (Status.PENDING, 1, 500),
    ]
    assert {r.next_attempt_at for r in rows} == {t0 + timedelta(seconds=30)}
    assert len(receiver.received) == 2 and all(r.signature_ok for r in receiver.received)
    first = rows[0].alert
    body = next(r.json for r in receiver.received if r.json["id"] == f"alert_{first.pk}")
    period = {
        "start": int(first.period_start.timestamp()),
        "end": int(first.period_end.timestamp()),
    }
    assert body == {
        "id": f"alert_{first.pk}",
        "type": "alert.threshold_reached",
        "created": int(t0.timestamp()),
        "account": {"id": pro_account.pk, "name": "Acme Analytics"},
        "customer": customer_id_for_account(account=pro_account),
        "budget": None,
        "rule": {"id": first.rule_id, "kind": "usage_share"},
        "level": 100,
        "used": 10_500,
        "limit": 8_000,  # 80% of the 10,000 included calls
        "currency": "",
        "period": period,
        "summary": "API calls: reached 10,500 calls, 105% of the 10,000 included (alert at 80%)",
    }
    assert receiver.received[0].headers["Content-Type"] == "application/json"
    with time_machine.travel(t0 + timedelta(seconds=29), tick=False):
        assert channel_deliveries_send_due() == {}
    with time_machine.travel(t0 + timedelta(seconds=30), tick=False):
        assert channel_deliveries_send_due() == {Status.DELIVERED: 2}
    for row in ChannelDelivery.objects.all():
        assert (row.status, row.attempts, row.last_status_code) == (Status.DELIVERED, 2, 200)
        assert row.delivered_at == t0 + timedelta(seconds=30)
        assert row.last_response == '{"ok": true, "n": 2}'
    # Later sweeps and retry passes send nothing more: one delivery per (rule, level, period).
    with time_machine.travel(t0 + timedelta(minutes=5), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert alerts_evaluate_all() == 0
        assert channel_deliveries_send_due() == {}
    assert len(receiver.received) == 4
    assert sorted(r.status for r in receiver.received) == [200, 200, 500, 500]
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_slack_gets_a_text_body_without_a_signature(
    pro_account, django_capture_on_commit_callbacks
):
    slack = Receiver().start()  # Slack checks no signature
    try:
        pro_account.slack_webhook_url = f"{slack.url}/services/T000/B000/XXXX"
        pro_account.save(update_fields=["slack_webhook_url"])
        with django_capture_on_commit_callbacks(execute=True):
            assert alerts_evaluate_all() == 2
        assert len(slack.received) == 2
        for request in slack.received:
            assert request.path == "/services/T000/B000/XXXX"
            assert list(request.json) == ["text"]
            assert "X-Meterdesk-Signature" not in request.headers
        texts = sorted(r.json["text"] for r in slack.received)
        assert texts[0].startswith(
            "*Acme Analytics*: API calls: reached 10,500 calls, 105% of the 10,000 included "
            "(alert at 100%). Resets "
        )
        assert texts[0].endswith("<http://127.0.0.1:8000/dashboard/|See usage>")
        assert set(ChannelDelivery.objects.values_list("channel", "status", "attempts")) == {
            ("slack", "delivered", 1)
        }
    finally:
        slack.stop()


@pytest.mark.django_db
def test_an_account_slack_url_that_is_not_http_is_recorded_failed_and_never_sent(
    pro_account, django_capture_on_commit_callbacks
):
    pro_account.slack_webhook_url = "ftp://files.example.com/hook"
    pro_account.save(update_fields=["slack_webhook_url"])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        alerts_evaluate_all()
    assert len(callbacks) == 2  # the two e-mails; no channel send queued
    assert set(ChannelDelivery.objects.values_list("status", "last_error")) == {
        (Status.FAILED, URL_REFUSED)
    }


def _sweep(barrier, errors):
    try:
        barrier.wait(timeout=10)
        alerts_evaluate_all()
    except Exception as exc:  # surfaced by the test
        errors.append(exc)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_deliver_each_rule_and_budget_level_once_per_endpoint(
    pro_account, receiver
):
    from usage.models_budgets import Budget

    WebhookEndpoint.objects.create(url=f"{receiver.url}/a", secret=SECRET)
    # And a $200.00 spend budget: 13,000¢ so far reaches its 50% level (10,000), not 80%.
    budget = Budget.objects.create(account=pro_account, kind="spend", currency="usd", limit=20_000)
    barrier, errors = threading.Barrier(2), []
    sweeps = [threading.Thread(target=_sweep, args=(barrier, errors)) for _ in range(2)]
    for sweep in sweeps:
        sweep.start()
    for sweep in sweeps:
        sweep.join(timeout=120)
    assert errors == []
    alerts = AlertDelivery.objects.filter(account=pro_account)
    assert alerts.count() == 3
    assert set(alerts.values_list("budget", "level", "threshold")) == {
        (None, 100, 8_000),  # the default rules: 80% and 100% of 10,000 calls
        (None, 100, 10_000),
        (budget.pk, 50, 10_000),
    }
    assert ChannelDelivery.objects.count() == 3
    assert set(ChannelDelivery.objects.values_list("status", "attempts")) == {("delivered", 1)}
    ids = sorted(r.json["id"] for r in receiver.received)
    assert ids == sorted(f"alert_{pk}" for pk in alerts.values_list("pk", flat=True))
    assert all(r.signature_ok for r in receiver.received)
    assert len(mail.outbox) == 3
    alerts_evaluate_all()  # a third sweep: nothing new
    assert len(receiver.received) == 3 and len(mail.outbox) == 3


def test_slack_text_escapes_what_people_typed():
    from usage.services.alert_channels import slack_escape

    assert slack_escape("<!channel> R&D <b>") == "&lt;!channel&gt; R&amp;D &lt;b&gt;"


def test_beat_retries_channel_deliveries_at_the_configured_interval(settings):
    from config.celery import beat_schedule

    settings.USAGE_ALERT_CHANNEL_RETRY_SECONDS = 45
    entry = beat_schedule()["usage-send-alert-channels"]
    assert entry == {
        "task": "usage.tasks.send_alert_channels",
        "schedule": 45.0,
        "options": {"expires": 45.0},
    }
