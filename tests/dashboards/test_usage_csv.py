"""The usage CSV (issue 14, item 8): a cost column from the pricing engine, no future
days, UTC said in the header, the account's name and the period in the filename."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from billing.mirror.customers import customer_id_for_account
from billing.services.accounts import account_create
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from tests.factories import make_user
from usage.services.ingest import usage_events_ingest

pytestmark = pytest.mark.django_db

# Pro subscribed Mar 1 2026 00:00 UTC: the period is Mar 1 - Apr 1; "now" is Mar 3, 12:00.
START = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 3, 12, tzinfo=UTC)


def _subscribe(stripe_client, demo_catalog, *, advance_to: datetime):
    """Pro on a test clock frozen at Mar 1 2026 00:00 UTC, advanced to ``advance_to``."""
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(START.timestamp())}
    )
    account = account_create(name="Acme Analytics, Inc.", billing_email="b@acme.example")
    subscription_create(account=account, plan=demo_catalog["pro"], test_clock=clock.id)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=advance_to)
    report = stripe_sync_everything()
    assert not report.errors, report.errors
    return account


@pytest.fixture
def acme(stripe_client, demo_catalog):
    account = _subscribe(stripe_client, demo_catalog, advance_to=NOW)
    customer = customer_id_for_account(account=account)
    # API calls are counted (one event, one call). Mar 1: 6,000 calls; Mar 2: 5,000;
    # Mar 3 (so far): 1,000. Seats (last value): 2 on Mar 1, 4 on Mar 2.
    events = []
    for day, count in ((0, 6_000), (1, 5_000), (2, 1_000)):
        at = int((START + timedelta(days=day, hours=1)).timestamp())
        events += [{"event_name": "api_calls", "customer": customer, "timestamp": at + i % 3600,
                    "identifier": f"calls-{day}-{i}"} for i in range(count)]  # fmt: skip
    for day, seats in ((0, 2), (1, 4)):
        at = int((START + timedelta(days=day, hours=2)).timestamp())
        events.append({"event_name": "seats", "customer": customer, "value": seats,
                       "timestamp": at, "identifier": f"seats-{day}"})  # fmt: skip
    for i in range(0, len(events), 1_000):
        result = usage_events_ingest(events=events[i : i + 1_000], now=NOW)
        assert not result.rejected, result.rejected
    return account


def test_csv_has_cost_to_date_stops_at_now_and_names_the_account(client, acme):
    client.force_login(make_user(acme, "ada"))
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("dashboards:usage_csv"))
    assert response["Content-Disposition"] == (
        'attachment; filename="usage-acme-analytics-inc-2026-03-01-to-2026-04-01.csv"'
    )
    reader = csv.reader(io.StringIO(response.content.decode()))
    header = next(reader)
    assert header == [
        "day (UTC)", "meter", "event_name", "unit", "usage", "usage to date",
        "usage cost to date (USD)",
    ]  # fmt: skip
    rows = list(reader)
    calls = [r for r in rows if r[2] == "api_calls"]
    seats = [r for r in rows if r[2] == "seats"]
    # Mar 1, 2, 3 only: nothing for the 28 days still to come.
    assert [r[0] for r in calls] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert [r[0] for r in seats] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    # Pro: 10,000 calls included, then 0.2¢ a call. To date 6,000 -> $0.00;
    # 11,000 -> 1,000 over x 0.2¢ = 200¢ = $2.00; 12,000 -> 2,000 x 0.2¢ = $4.00.
    assert [r[3:] for r in calls] == [
        ["calls", "6000", "6000", "0.00"],
        ["calls", "5000", "11000", "2.00"],
        ["calls", "1000", "12000", "4.00"],
    ]
    # Seats are a last-value meter at $10 a seat: 2 seats $20.00, then 4 seats $40.00
    # (carried into Mar 3), never summed to 6 or 10.
    assert [r[4:] for r in seats] == [["2", "2", "20.00"], ["4", "4", "40.00"], ["4", "4", "40.00"]]
    assert calls[0][1] == "API calls"  # the meter's display name


def test_closed_period_csv_has_every_day(client, stripe_client, demo_catalog):
    acme = _subscribe(stripe_client, demo_catalog, advance_to=datetime(2026, 4, 2, 12, tzinfo=UTC))
    client.force_login(make_user(acme, "ada"))
    with time_machine.travel(datetime(2026, 4, 2, 12, tzinfo=UTC), tick=False):
        response = client.get(reverse("dashboards:usage_csv"), {"period": "-1"})
    assert "2026-03-01-to-2026-04-01.csv" in response["Content-Disposition"]
    days = [r["day (UTC)"] for r in csv.DictReader(io.StringIO(response.content.decode()))
            if r["event_name"] == "api_calls"]  # fmt: skip
    assert len(days) == 31 and days[-1] == "2026-03-31"  # March has 31 days


@pytest.mark.parametrize("name", ["!!!", "Ünïcödé GmbH"])
def test_filename_never_falls_back_to_the_id(name, stripe_emulator):
    from dashboards.usage_export import usage_csv_filename

    account = account_create(name=name, billing_email="x@example.com")
    filename = usage_csv_filename(account=account, start=START, end=START + timedelta(days=31))
    assert str(account.pk) not in filename.split("-")[1]
    assert filename.endswith("-2026-03-01-to-2026-04-01.csv")
