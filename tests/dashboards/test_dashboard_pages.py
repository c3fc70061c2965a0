import csv
import io
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from billing.models import Membership
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_dashboard_numbers_for_the_current_period(client, pro_account):
    client.force_login(make_user(pro_account, "ada"))
    html = client.get(reverse("dashboards:home")).content.decode()
    assert 'data-testid="usage-api_calls">10,500<' in html
    assert 'data-testid="usage-seats">3<' in html  # a `last` meter shows the last value
    # Usage charges so far: (10,500 − 10,000) × 0.2¢ = 100¢; seats 3 × 1,000¢ = 3,000¢
    # → 3,100¢ = $31.00
    assert 'data-testid="cost-so-far">$31.00<' in html
    # 10,500 / 10,000 = 105.0% of the allowance, bar capped at 100
    assert "105.0% of the allowance" in html
    assert 'aria-valuenow="100"' in html
    assert "$99.00" in html  # the base fee
    assert 'data-testid="portal-button"' in html  # owners manage billing


def test_member_does_not_see_the_portal_button(client, pro_account):
    client.force_login(make_user(pro_account, "mem", Membership.Role.MEMBER))
    html = client.get(reverse("dashboards:home")).content.decode()
    assert 'data-testid="usage-api_calls">10,500<' in html
    assert 'data-testid="portal-button"' not in html


def test_chart_json_reads_the_period(client, pro_account):
    client.force_login(make_user(pro_account, "ada"))
    data = client.get(reverse("dashboards:chart", args=["api_calls"])).json()
    assert data["total"] == 10_500
    assert data["cumulative"][-1] == 10_500
    assert sum(data["usage"]) == 10_500
    assert data["allowance"] == 10_000
    assert data["period"]["closed"] is False
    projection = data["projection"]
    assert projection["low"] <= projection["expected"] <= projection["high"]
    assert projection["low"] >= 10_500  # usage never goes down
    # The chart reuses its daily series for the projection: the same as the summary's.
    from billing.mirror.subscriptions import subscription_state_for_account
    from usage.selectors.summaries import period_summary

    state = subscription_state_for_account(account=pro_account)
    line = next(
        line
        for line in period_summary(account=pro_account, state=state).lines
        if line.meter.event_name == "api_calls"
    )
    assert (projection["expected"], projection["low"], projection["high"]) == (
        line.projection.projected, line.projection.low, line.projection.high,
    )  # fmt: skip
    hourly = client.get(reverse("dashboards:chart", args=["api_calls"]), {"granularity": "hour"})
    assert sum(hourly.json()["usage"]) == 10_500
    bad = client.get(reverse("dashboards:chart", args=["api_calls"]), {"granularity": "week"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_granularity"


def _started_a_month_earlier(account) -> None:
    """Tell the mirror the account's subscription started (and is anchored) one billing
    month before its current period, so that a closed previous period exists."""
    from dateutil.relativedelta import relativedelta
    from djstripe.models import Subscription

    subscription = Subscription.objects.get(customer__subscriber=account)
    data = subscription.stripe_data
    start = data["items"]["data"][0]["current_period_start"]
    earlier = int((datetime.fromtimestamp(start, UTC) - relativedelta(months=1)).timestamp())
    data = dict(data, start_date=earlier, billing_cycle_anchor=earlier)
    Subscription.objects.filter(pk=subscription.pk).update(stripe_data=data)


def test_htmx_refresh_returns_the_partial_and_stops_for_closed_periods(client, pro_account):
    client.force_login(make_user(pro_account, "ada"))
    live = client.get(reverse("dashboards:home"), headers={"HX-Request": "true"})
    assert live.status_code == 200
    body = live.content.decode()
    assert body.lstrip().startswith('<div id="summary"')
    assert "every 5s" in body
    # Acme subscribed just now: it has no previous period (asking for one is a 404)
    # until the mirror says it started one month earlier.
    assert client.get(reverse("dashboards:home"), {"period": -1}).status_code == 404
    _started_a_month_earlier(pro_account)
    closed = client.get(reverse("dashboards:home"), {"period": -1}, headers={"HX-Request": "true"})
    assert closed.status_code == 286  # htmx: stop polling
    assert "every 5s" not in closed.content.decode()


def test_csv_export_has_the_period_usage(client, pro_account):
    client.force_login(make_user(pro_account, "ada"))
    response = client.get(reverse("dashboards:usage_csv"))
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    calls = sum(int(r["usage"]) for r in rows if r["event_name"] == "api_calls")
    assert calls == 10_500


def test_every_dashboard_url_of_another_account_is_404(client, pro_account, other_account):
    intruder = make_user(other_account, "mallory")
    client.force_login(intruder)
    target = {"account": str(pro_account.pk)}
    urls = [
        reverse("dashboards:home"),
        reverse("dashboards:chart", args=["api_calls"]),
        reverse("dashboards:invoices"),
        reverse("dashboards:usage_csv"),
    ]
    for url in urls:
        assert client.get(url, target).status_code == 404, url
        assert client.get(url, {**target, "period": "-1"}).status_code == 404, url
    # Their own dashboard works and never shows Acme's numbers.
    own = client.get(reverse("dashboards:home")).content.decode()
    assert "Globex" in own and "Acme" not in own
    assert client.get(reverse("dashboards:chart", args=["api_calls"])).json()["total"] == 0


def test_no_subscription_empty_state(client, stripe_emulator):
    from billing.services.accounts import account_create

    account = account_create(name="Newco", billing_email="a@newco.example")
    client.force_login(make_user(account, "newbie"))
    html = client.get(reverse("dashboards:home")).content.decode()
    assert 'data-testid="no-subscription"' in html
    assert client.get(reverse("dashboards:usage_csv")).status_code == 404


def test_events_before_the_period_start_in_the_same_hour_are_not_counted(client, pro_account):
    """Rollups are hourly but periods start mid-hour: the edge comes from the ledger."""
    from datetime import timedelta

    from billing.mirror.subscriptions import subscription_state_for_account
    from tests.factories import ingest

    state = subscription_state_for_account(account=pro_account)
    customer_id = pro_account.djstripe_customers.get().id
    from usage.services.ingest import usage_events_ingest

    before = (state.period_start - timedelta(seconds=1)).isoformat()
    result = usage_events_ingest(
        events=[
            {
                "event_name": "api_calls",
                "customer": customer_id,
                "identifier": "early-1",
                "timestamp": before,
            }
        ]
    )
    assert result.as_dict()["accepted"] == 1
    ingest(customer_id, "api_calls", [1, 1], "late")  # two more inside the period
    client.force_login(make_user(pro_account, "ada"))
    html = client.get(reverse("dashboards:home")).content.decode()
    # 10,500 + 2 inside the period; the one a second before the start is excluded.
    assert 'data-testid="usage-api_calls">10,502<' in html
    data = client.get(reverse("dashboards:chart", args=["api_calls"])).json()
    assert data["total"] == 10_502
