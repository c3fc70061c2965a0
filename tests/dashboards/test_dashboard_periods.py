"""The dashboard's periods are Stripe's: stepped from the anchor, none before the start.

The subscription (see ``tests.billing.test_mirror_periods``) is anchored Jan 31 2026
00:00 UTC, monthly, current period Mar 31 - Apr 30. Its periods are Mar 31 - Apr 30
(0), Feb 28 - Mar 31 (-1), Jan 31 - Feb 28 (-2); none before (-3 would be Dec 31 - Jan 31).
"""

import csv
import io
import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django.utils.text import slugify

from billing.mirror.customers import customer_id_for_account
from tests.billing.test_mirror_periods import subscribe_on_jan_31
from tests.factories import make_user
from usage.services.ingest import usage_events_ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def jan_31_subscription(stripe_client, demo_catalog):
    return subscribe_on_jan_31(stripe_client, demo_catalog)


def test_period_selector_offers_no_period_before_the_subscription_started(
    client, jan_31_subscription
):
    client.force_login(make_user(jan_31_subscription, "ada"))
    html = client.get(reverse("dashboards:home")).content.decode()
    select = html[html.index('<select id="period"') : html.index("</select>")]
    assert re.findall(r'<option value="(-?\d+)"', select) == ["0", "-1", "-2"]
    labels = [" ".join(t.split()) for t in re.findall(r"<option[^>]*>(.*?)</option>", select, re.S)]
    assert labels == [
        "Mar 31 – Apr 30, 2026 (current)",
        "Feb 28 – Mar 31, 2026",
        "Jan 31 – Feb 28, 2026",
    ]
    # The previous period's page is Feb 28 - Mar 31 (not Feb 28 - Mar 30).
    assert client.get(reverse("dashboards:home"), {"period": "-1"}).status_code == 200
    # A period before the subscription started does not exist: 404, page, chart and CSV.
    assert client.get(reverse("dashboards:home"), {"period": "-3"}).status_code == 404
    assert client.get(reverse("dashboards:usage_csv"), {"period": "-3"}).status_code == 404
    chart = reverse("dashboards:chart", args=["api_calls"])
    assert client.get(chart, {"period": "-3"}).status_code == 404
    assert client.get(chart, {"period": "-2"}).status_code == 200


def test_previous_period_csv_keeps_the_last_day_stripe_billed(client, jan_31_subscription):
    customer = customer_id_for_account(account=jan_31_subscription)
    at = int(datetime(2026, 3, 30, 12, tzinfo=UTC).timestamp())
    result = usage_events_ingest(
        events=[{"event_name": "api_calls", "customer": customer, "value": 1,
                 "timestamp": at + i, "identifier": f"mar30-{i}"} for i in range(7)],
        now=datetime(2026, 4, 2, tzinfo=UTC),
    )  # fmt: skip
    assert not result.rejected, result.rejected
    client.force_login(make_user(jan_31_subscription, "ada"))
    response = client.get(reverse("dashboards:usage_csv"), {"period": "-1"})
    # The account's name and the period (Feb 28 - Mar 31), not the internal id.
    name = slugify(jan_31_subscription.name)
    assert f"usage-{name}-2026-02-28-to-2026-03-31.csv" in response["Content-Disposition"]
    rows = [r for r in csv.DictReader(io.StringIO(response.content.decode()))]
    calls = [(r["day (UTC)"], int(r["usage"])) for r in rows if r["event_name"] == "api_calls"]
    # Feb 28 .. Mar 30 inclusive: 1 day of February + 30 of March = 31 days; the 7 calls
    # of Mar 30 are on its last row (shifting the current period back would end it on
    # Mar 30 00:00 and drop that day).
    assert len(calls) == 31
    assert calls[0] == ("2026-02-28", 0)
    assert calls[-1] == ("2026-03-30", 7)
