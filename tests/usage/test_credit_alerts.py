"""Credit alerts: ``credits_below`` (the live remaining balance below an amount) and
``credits_run_out`` (credits projected to run out before the period ends), each once per
period, with the figures and currency in the e-mail; and the alert form offers them.

Starter at 0.1¢ a call, a $5.00 (500¢) grant, period Mar 1 - Apr 1; at Mar 5 00:00
2,000 calls have used 200¢, leaving 300¢, and the projection (15,500 calls, 1,550¢)
runs the credits out on Mar 11 (worked in ``test_credit_balance``).
"""

from datetime import UTC, datetime

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from billing.models import Membership
from tests.factories import make_user
from tests.usage.test_credit_balance import balance_at, calls, make_grant, starter  # noqa: F401
from usage.models import AlertDelivery, AlertRule
from usage.services.alerts import alerts_evaluate_account, alerts_evaluate_all
from usage.services.credit_alerts import credit_alert_check

pytestmark = pytest.mark.django_db

T = datetime(2026, 3, 5, tzinfo=UTC)


@pytest.fixture
def used_300_left(starter):  # noqa: F811
    make_grant(starter, amount=500, stripe_id="credgr_welcome")
    with time_machine.travel(T, tick=False):
        calls(starter, 2_000, at=datetime(2026, 3, 2, tzinfo=UTC), now=T, prefix="u")
    return starter


def _evaluate(account, capture, *, sweep=False):
    with time_machine.travel(T, tick=False), capture(execute=True):
        if sweep:
            return alerts_evaluate_all(now=T)
        return len(alerts_evaluate_account(account=account, now=T))


def test_credits_below_alerts_once_with_the_figures(
    used_300_left, django_capture_on_commit_callbacks
):
    account = used_300_left
    rule = AlertRule.objects.create(
        account=account, kind="credits_below", amount=400, currency="usd"
    )
    assert _evaluate(account, django_capture_on_commit_callbacks) == 1
    # Again, and by the sweep: claimed already this period.
    assert _evaluate(account, django_capture_on_commit_callbacks) == 0
    assert _evaluate(account, django_capture_on_commit_callbacks, sweep=True) == 0
    [delivery] = AlertDelivery.objects.filter(rule=rule)
    # Remaining 500 - 200 = 300¢ against the rule's 400¢.
    assert (delivery.observed, delivery.threshold) == (300, 400)
    assert delivery.sent_at is not None
    [message] = mail.outbox
    text = (
        "Credit balance is $3.00 USD, below your alert at $4.00: usage so far this period "
        "uses $2.00 of $5.00"
    )
    assert message.subject == f"[Meterdesk] Credit Co: {text}"
    assert text in message.body
    # The credit figures, before the dashboard link: 500 available, 200 used, 300 left;
    # the projection runs them out on Mar 11.
    assert (
        "Credits for this period: $5.00 USD available, $2.00 used by your usage so far, "
        "$3.00 left.\nAt the current pace they run out around Mar 11, before the period "
        "ends on Apr 1.\nThe estimated invoice above is before credits"
    ) in message.body
    assert "See your credits: http://" in message.body
    assert message.body.index("See your credits") < message.body.index("See your usage")
    html = message.alternatives[0][0]
    assert "<p>Credits for this period: $5.00 USD available" in html


def test_credits_below_is_quiet_above_the_amount(used_300_left, django_capture_on_commit_callbacks):
    # 300¢ left is not below 300¢, nor below 200¢.
    for amount in (300, 200):
        AlertRule.objects.create(
            account=used_300_left, kind="credits_below", amount=amount, currency="usd"
        )
    assert _evaluate(used_300_left, django_capture_on_commit_callbacks, sweep=True) == 0
    assert mail.outbox == []


def test_credits_run_out_alerts_once_naming_the_date(
    used_300_left, django_capture_on_commit_callbacks
):
    account = used_300_left
    rule = AlertRule.objects.create(account=account, kind="credits_run_out", currency="usd")
    assert _evaluate(account, django_capture_on_commit_callbacks, sweep=True) == 1
    assert _evaluate(account, django_capture_on_commit_callbacks) == 0
    [delivery] = AlertDelivery.objects.filter(rule=rule)
    # Projected usage would use 1,550¢ of credits; 500¢ available this period.
    assert (delivery.observed, delivery.threshold) == (1_550, 500)
    [message] = mail.outbox
    assert message.subject == (
        "[Meterdesk] Credit Co: Credits are projected to run out on Mar 11, before the "
        "period ends on Apr 1: $3.00 USD left of $5.00, and the projected usage for this "
        "period would use $15.50"
    )


def test_credits_run_out_is_quiet_when_credits_last(starter, django_capture_on_commit_callbacks):  # noqa: F811
    make_grant(starter, amount=2_000, stripe_id="credgr_big")  # 2,000¢ > 1,550¢ projected
    with time_machine.travel(T, tick=False):
        calls(starter, 2_000, at=datetime(2026, 3, 2, tzinfo=UTC), now=T, prefix="q")
    AlertRule.objects.create(account=starter, kind="credits_run_out", currency="usd")
    assert _evaluate(starter, django_capture_on_commit_callbacks) == 0
    _, balance = balance_at(starter, T)
    rule = AlertRule.objects.get(account=starter)
    check = credit_alert_check(rule=rule, balance=balance)
    assert (check.crossed, check.summary) == (False, "Credits last beyond this period")


def test_no_credits_no_credit_alerts(starter, django_capture_on_commit_callbacks):  # noqa: F811
    AlertRule.objects.create(account=starter, kind="credits_below", amount=400, currency="usd")
    AlertRule.objects.create(account=starter, kind="credits_run_out", currency="usd")
    assert _evaluate(starter, django_capture_on_commit_callbacks) == 0


def test_the_alert_form_offers_credit_rules(client, used_300_left):
    client.force_login(make_user(used_300_left, "ada", Membership.Role.OWNER))
    with time_machine.travel(T, tick=False):
        page = client.get(reverse("dashboards:alerts")).content.decode()
    assert '<option value="credits_below">Credit balance falls below an amount</option>' in page
    assert '<option value="credits_run_out">Credits are projected to run out</option>' in page
    assert "your credit balance falls below an amount" in page
    # What credit rules compare with: 500 - 200 = 300¢ left, run out around Mar 11.
    assert (
        "Credit balance: <strong>$3.00</strong> left of $5.00 for this period, projected to "
        "run out around Mar 11"
    ) in " ".join(page.split())
    url = reverse("dashboards:alert_add")
    missing = client.post(url, {"kind": "credits_below", "amount": ""})
    assert missing.status_code == 422
    assert "Enter an amount above zero." in missing.content.decode()
    assert client.post(url, {"kind": "credits_below", "amount": "4.5"}).status_code == 302
    # A run-out rule needs no amount (a stray one is ignored).
    assert client.post(url, {"kind": "credits_run_out", "amount": "junk"}).status_code == 302
    rules = AlertRule.objects.filter(account=used_300_left).order_by("kind")
    # 4.5 USD = 450¢.
    assert [(r.kind, r.amount, r.currency) for r in rules] == [
        ("credits_below", 450, "usd"),
        ("credits_run_out", None, "usd"),
    ]
    listed = client.get(reverse("dashboards:alerts")).content.decode()
    assert "Credit balance falls below $4.50" in listed
    assert "Credits are projected to run out before the period ends" in listed
