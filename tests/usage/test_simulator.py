"""Acceptance 2: one account's usage history costed on other plans, every cost by hand.

The account subscribes to Pro on a test clock frozen at Jan 1 2026 00:00 UTC, advanced
to Apr 4 00:00: its periods are Jan 1 - Feb 1, Feb 1 - Mar 1, Mar 1 - Apr 1 (closed) and
Apr 1 - May 1 (current, three days in). Its usage, written as hourly rollups:

              api_calls (count)  transactions (count)  seats (last)  data transfer GB (sum)
  Jan              8,000                 500            2 then 3 -> 3        50
  Feb             12,000               4,000                 3              150
  Mar             25,000              12,500            5 then 4 -> 4      1,200
  Apr 1-3          3,000               1,500                 2               30
  (1,000 / 500 / 10 a day on Apr 1, 2 and 3)

Projection (linear: Mar 31 plus Apr 1-3 is under 7 daily observations, so the run rate
of the period so far; every day equal, so the 80% range is the point): api_calls
1,000/day x 30 days = 30,000; transactions 500 x 30 = 15,000; data transfer 10 x 30 =
300 GB; seats (last) stay 2. The March usage sits on Mar 31 and the February usage on
Feb 2, so the 56 days of history before Apr 1 (from Feb 4) hold one day only.

The demo catalog's plans (amounts in cents):
- Starter (per-unit): 0.1 per API call.
- Scale (graduated with flat fees): transactions 1-1,000 at 5 + flat 1,000; 1,001-10,000
  at 3 + flat 500; above at 1.
- Pro (hybrid with allowance): 9,900 base; API calls 10,000 included then 0.2 each;
  seats 1,000 each.
- Bulk: 50 per started pack of 1,000 API calls. Growth (volume): all GB at 10 + flat 500
  up to 100 GB, at 8 + flat 1,000 up to 1,000 GB, at 5 + flat 2,000 above.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Account, Meter, Plan
from billing.services.accounts import account_create
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from usage.models import UsageRollup
from usage.selectors.simulator import WhatIfError, plan_simulation, price_what_if

pytestmark = pytest.mark.django_db


def d(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


JAN_1, FEB_1, MAR_1, APR_1, MAY_1 = (
    d(2026, 1, 1),
    d(2026, 2, 1),
    d(2026, 3, 1),
    d(2026, 4, 1),
    d(2026, 5, 1),
)
NOW = d(2026, 4, 4)

# (meter, hour, value): a count meter's value is its event count, a last meter's the
# value of the row's last event.
HISTORY = [
    ("api_calls", d(2026, 1, 15, 10), 8_000),
    ("transactions", d(2026, 1, 15, 10), 500),
    ("seats", d(2026, 1, 10, 9), 2),
    ("seats", d(2026, 1, 20, 9), 3),
    ("data_transfer_gb", d(2026, 1, 15, 10), 50),
    ("api_calls", d(2026, 2, 2, 10), 12_000),
    ("transactions", d(2026, 2, 2, 10), 4_000),
    ("seats", d(2026, 2, 2, 9), 3),
    ("data_transfer_gb", d(2026, 2, 2, 10), 150),
    ("api_calls", d(2026, 3, 31, 23), 25_000),
    ("transactions", d(2026, 3, 31, 23), 12_500),
    ("seats", d(2026, 3, 31, 22), 5),
    ("seats", d(2026, 3, 31, 23), 4),
    ("data_transfer_gb", d(2026, 3, 31, 23), 1_200),
    *[("api_calls", d(2026, 4, day, 12), 1_000) for day in (1, 2, 3)],
    *[("transactions", d(2026, 4, day, 12), 500) for day in (1, 2, 3)],
    *[("data_transfer_gb", d(2026, 4, day, 12), 10) for day in (1, 2, 3)],
    ("seats", d(2026, 4, 2, 9), 2),
]


def write_rollups(account: Account, history=HISTORY) -> None:
    meters = {m.event_name: m for m in Meter.objects.all()}
    for event_name, hour, value in history:
        meter = meters[event_name]
        count = value if meter.aggregation == Meter.Aggregation.COUNT else 1
        UsageRollup.objects.create(
            account=account,
            meter=meter,
            hour=hour,
            sum_value=value,
            event_count=count,
            last_value=value,
            last_timestamp=hour + timedelta(minutes=30),
            last_event_id=0,
        )


def subscribe_on_jan_1(stripe_client, plan: Plan, name: str = "Replay Co", currency="usd"):
    """``plan`` on a test clock frozen at Jan 1 2026, advanced to Apr 4: three renewals."""
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(JAN_1.timestamp())}
    )
    account = account_create(
        name=name, billing_email=f"{name.split()[0].lower()}@example.com", currency=currency
    )
    subscription_create(account=account, plan=plan, test_clock=clock.id)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=NOW)
    report = stripe_sync_everything()
    assert not report.errors, report.errors
    return account


@pytest.fixture
def replay_account(stripe_client, demo_catalog):
    account = subscribe_on_jan_1(stripe_client, demo_catalog["pro"])
    write_rollups(account)
    return account


def _by_key(simulation):
    return {p.plan.key: p for p in simulation.plans}


def test_one_history_costed_on_every_plan_by_hand(replay_account):
    simulation = plan_simulation(account=replay_account, now=NOW)

    assert simulation.currency == "usd"
    assert simulation.current_plan.key == "pro"
    assert simulation.closed_periods == ((MAR_1, APR_1), (FEB_1, MAR_1), (JAN_1, FEB_1))
    assert simulation.current_period == (APR_1, MAY_1)
    meters = {m.event_name: m.pk for m in Meter.objects.all()}
    assert simulation.usage[(JAN_1, FEB_1)][meters["seats"]] == 3  # last, not 2 + 3
    assert simulation.usage[(MAR_1, APR_1)][meters["seats"]] == 4  # last, not max 5
    assert simulation.usage[(APR_1, MAY_1)][meters["api_calls"]] == 3_000  # so far

    plans = _by_key(simulation)
    assert list(plans) == ["starter", "bulk", "growth", "scale", "pro"]  # catalog order
    closed = {key: [c.total for c in p.closed] for key, p in plans.items()}  # Mar, Feb, Jan
    expected = {
        key: (p.projection.low, p.projection.expected, p.projection.high)
        for key, p in plans.items()
    }

    # Starter, per unit: 0.1 a call.
    # Mar 25,000 x 0.1 = 2,500; Feb 12,000 x 0.1 = 1,200; Jan 8,000 x 0.1 = 800.
    # Projection 30,000 x 0.1 = 3,000. (Seats, transactions, GB: no price, not billed.)
    assert closed["starter"] == [2_500, 1_200, 800]
    assert expected["starter"] == (3_000, 3_000, 3_000)

    # Scale, graduated with flat fees (transactions only):
    # Mar 12,500: 1,000 x 5 + 1,000 flat + 9,000 x 3 + 500 flat + 2,500 x 1
    #           = 5,000 + 1,000 + 27,000 + 500 + 2,500 = 36,000
    # Feb 4,000: 1,000 x 5 + 1,000 + 3,000 x 3 + 500 = 5,000 + 1,000 + 9,000 + 500 = 15,500
    # Jan 500: 500 x 5 + 1,000 (the first tier's flat fee) = 3,500
    # Projection 15,000: 5,000 + 1,000 + 27,000 + 500 + 5,000 x 1 = 38,500
    assert closed["scale"] == [36_000, 15_500, 3_500]
    assert expected["scale"] == (38_500, 38_500, 38_500)

    # Pro, hybrid: 9,900 base + (calls - 10,000 included) x 0.2 + seats x 1,000:
    # Mar: 9,900 + 15,000 x 0.2 + 4 x 1,000 = 9,900 + 3,000 + 4,000 = 16,900
    # Feb: 9,900 +  2,000 x 0.2 + 3 x 1,000 = 9,900 +   400 + 3,000 = 13,300
    # Jan: 9,900 + 0 (8,000 within the allowance) + 3 x 1,000 = 12,900
    # Projection: 9,900 + 20,000 x 0.2 + 2 x 1,000 = 9,900 + 4,000 + 2,000 = 15,900
    assert closed["pro"] == [16_900, 13_300, 12_900]
    assert expected["pro"] == (15_900, 15_900, 15_900)

    # Bulk, packages of 1,000 rounded up at 50: Mar 25 x 50 = 1,250; Feb 12 x 50 = 600;
    # Jan 8 x 50 = 400; projection 30 x 50 = 1,500.
    assert closed["bulk"] == [1_250, 600, 400]
    assert expected["bulk"][1] == 1_500
    # Growth, volume on GB: Mar 1,200 x 5 + 2,000 = 8,000; Feb 150 x 8 + 1,000 = 2,200;
    # Jan 50 x 10 + 500 = 1,000; projection 300 x 8 + 1,000 = 3,400.
    assert closed["growth"] == [8_000, 2_200, 1_000]
    assert expected["growth"][1] == 3_400

    # What the account pays: Pro, the same prices, so the same costs.
    assert [c.total for c in simulation.actual.closed] == [16_900, 13_300, 12_900]
    assert plans["pro"].is_current and not plans["starter"].is_current
    assert plans["pro"].differences == (0, 0, 0)
    # Starter vs Pro: 2,500 - 16,900 = -14,400; 1,200 - 13,300 = -12,100;
    # 800 - 12,900 = -12,100; over the three: 4,500 - 43,100 = -38,600 ($386 less).
    assert plans["starter"].differences == (-14_400, -12_100, -12_100)
    assert plans["starter"].closed_difference == -38_600
    assert plans["starter"].projection_difference == 3_000 - 15_900  # -12,900
    # Scale vs Pro: 36,000 - 16,900 = 19,100; 15,500 - 13,300 = 2,200;
    # 3,500 - 12,900 = -9,400; over the three: 55,000 - 43,100 = 11,900 ($119 more).
    assert plans["scale"].differences == (19_100, 2_200, -9_400)
    assert plans["scale"].closed_difference == 11_900
    assert plans["scale"].projection_difference == 38_500 - 15_900  # 22,600
    # The cheapest over the closed periods: Bulk, 1,250 + 600 + 400 = 2,250.
    assert simulation.cheapest().plan.key == "bulk"


def test_lines_show_what_each_price_charged(replay_account):
    simulation = plan_simulation(account=replay_account, now=NOW)
    pro_march = _by_key(simulation)["pro"].closed[0]
    assert [(line.label, line.kind, line.quantity, line.amount) for line in pro_march.lines] == [
        ("Pro base fee", "licensed", 1, 9_900),
        ("API calls", "metered", 25_000, 3_000),  # 15,000 over the allowance x 0.2
        ("Seats", "metered", 4, 4_000),
    ]


def test_queries_do_not_grow_with_the_number_of_plans(replay_account):
    with CaptureQueriesContext(connection) as five:
        simulation = plan_simulation(account=replay_account, now=NOW)
        for plan in simulation.plans:
            _ = plan.projection
    assert len(simulation.plans) == 5
    Plan.objects.filter(key__in=["bulk", "growth", "starter"]).update(active=False)
    with CaptureQueriesContext(connection) as two:
        simulation = plan_simulation(account=replay_account, now=NOW)
    assert len(simulation.plans) == 2  # Scale and Pro
    assert len(five) == len(two), [q["sql"] for q in five.captured_queries]
    assert len(five) <= 20


def test_only_plans_priced_in_the_accounts_currency(stripe_client, demo_catalog):
    # A yen account on Scale: only Scale is priced in JPY, so it is the only plan.
    # Yen has no minor unit: Jan's 500 transactions cost 500 x 8 + 1,500 = 5,500 yen.
    account = subscribe_on_jan_1(stripe_client, demo_catalog["scale"], "Yen Co", "jpy")
    write_rollups(account, [("transactions", d(2026, 1, 15, 10), 500)])
    simulation = plan_simulation(account=account, now=NOW)
    assert simulation.currency == "jpy"
    assert [p.plan.key for p in simulation.plans] == ["scale"]
    assert [c.total for c in simulation.plans[0].closed] == [
        1_500,  # Mar: no usage, the first tier's flat fee is still reached: 1,500
        1_500,  # Feb: the same
        5_500,  # Jan: 500 x 8 + 1,500
    ]


def test_no_subscription_no_simulation(demo_catalog):
    account = account_create(name="Nobody", billing_email="n@example.com")
    assert plan_simulation(account=account, now=NOW) is None


def test_what_if_refuses_an_unknown_key_and_bad_tiers(demo_catalog):
    with pytest.raises(WhatIfError, match="no price"):
        price_what_if(lookup_key="nope", unit_amount_decimal=1)
    with pytest.raises(WhatIfError, match="JSON"):
        price_what_if(lookup_key="starter_api_calls", tiers="[{")
    with pytest.raises(WhatIfError, match="unbounded"):
        price_what_if(lookup_key="starter_api_calls", tiers='[{"up_to": 10, "unit_amount": 1}]')
