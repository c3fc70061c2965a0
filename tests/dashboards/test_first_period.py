"""Issue 14 item 3 (fixed in issue 11 by ``SubscriptionState.past_periods``): an account
whose subscription started inside the current month is offered that period only, and a
period before it is a 404 that shows no charge (it used to show $99.00 at 0 calls)."""

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from billing.services.accounts import account_create
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from tests.factories import make_user

pytestmark = pytest.mark.django_db

STARTED = datetime(2026, 3, 14, 10, 30, tzinfo=UTC)  # mid-month
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)


@pytest.fixture
def mid_month(stripe_client, demo_catalog):
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(STARTED.timestamp())}
    )
    account = account_create(name="Midmonth Ltd", billing_email="m@example.com")
    subscription_create(account=account, plan=demo_catalog["pro"], test_clock=clock.id)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=NOW)
    assert not stripe_sync_everything().errors
    return account


def test_only_the_first_period_is_offered_and_none_before_it_is_charged(client, mid_month):
    client.force_login(make_user(mid_month, "ada"))
    with time_machine.travel(NOW, tick=False):
        html = client.get(reverse("dashboards:home")).content.decode()
        select = html[html.index('<select id="period"') : html.index("</select>")]
        assert re.findall(r'<option value="(-?\d+)"', select) == ["0"]
        label = " ".join(re.search(r"<option[^>]*>(.*?)</option>", select, re.S)[1].split())
        assert label == "Mar 14 – Apr 14, 2026 (current)"
        # The month before the subscription (Feb 14 - Mar 14) does not exist: no page, chart
        # or CSV, and nothing on the 404 that reads like a charge (Pro's base is $99.00).
        for url in (
            reverse("dashboards:home"),
            reverse("dashboards:chart", args=["api_calls"]),
            reverse("dashboards:usage_csv"),
        ):
            response = client.get(url, {"period": "-1"})
            assert response.status_code == 404, url
            assert b"$99.00" not in response.content and b"$0.00" not in response.content, url
