"""Staff's "what if we changed this price": every account on the plan, its last closed
period now and with the change, totals per currency (never summed across them).

Three accounts on Starter since Jan 1 2026 (test clock, now Apr 4: the last closed period
is Mar 1 - Apr 1), and one on Pro that the change does not concern:
- Alpha (USD): 20,000 API calls in March -> now 20,000 x 0.1 = 2,000 cents
- Beta (USD):   5,000 calls              -> now  5,000 x 0.1 =   500 cents
- Kappa (KWD): 10,000 calls              -> now 10,000 x 0.31 = 3,100 fils (KWD 3.100);
  it pays starter_api_calls_kwd, so a change of the USD price leaves it unchanged.
- Pro Co (USD, Pro): not on Starter, not listed.
"""

import re
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import Plan
from billing.services.accounts import account_create
from tests.factories import make_user
from tests.usage.test_simulator import NOW, d, subscribe_on_jan_1, write_rollups
from usage.selectors.simulator import price_what_if

pytestmark = pytest.mark.django_db
URL = reverse("revenue:price_what_if")


@pytest.fixture
def starter_accounts(stripe_client, demo_catalog):
    accounts = {}
    for name, currency, calls in (
        ("Alpha Co", "usd", 20_000),
        ("Beta Co", "usd", 5_000),
        ("Kappa Co", "kwd", 10_000),
    ):
        account = subscribe_on_jan_1(stripe_client, demo_catalog["starter"], name, currency)
        write_rollups(account, [("api_calls", d(2026, 3, 15, 10), calls)])
        accounts[name.split()[0].lower()] = account
    pro = subscribe_on_jan_1(stripe_client, demo_catalog["pro"], "ProCo")
    write_rollups(pro, [("api_calls", d(2026, 3, 15, 10), 50_000)])
    accounts["pro"] = pro
    return accounts


def _totals(result):
    return {
        t.currency: (t.accounts, t.now_total, t.changed_total, t.difference) for t in result.totals
    }


def test_a_unit_amount_change_with_totals_per_currency(starter_accounts):
    result = price_what_if(
        lookup_key="starter_api_calls", unit_amount_decimal=Decimal("0.15"), now=NOW
    )
    rows = {
        r.account.name: (r.currency, r.now_total, r.changed_total, r.affected) for r in result.rows
    }
    assert rows == {
        "Alpha Co": ("usd", 2_000, 3_000, True),  # 20,000 x 0.1 -> 20,000 x 0.15
        "Beta Co": ("usd", 500, 750, True),  # 5,000 x 0.1 -> 5,000 x 0.15
        "Kappa Co": ("kwd", 3_100, 3_100, False),  # 10,000 x 0.31 fils, not this price
    }
    assert all(r.period == (d(2026, 3, 1), d(2026, 4, 1)) for r in result.rows)
    # USD: 2,000 + 500 = 2,500 now; 3,000 + 750 = 3,750 changed; +1,250.
    # KWD: 3,100 fils both ways. Never one total across the two.
    assert _totals(result) == {"kwd": (1, 3_100, 3_100, 0), "usd": (2, 2_500, 3_750, 1_250)}


def test_a_tier_table_change(starter_accounts):
    # Starter as a hybrid: the first 10,000 calls free, then 0.2 each (graduated).
    tiers = '[{"up_to": 10000, "unit_amount": 0}, {"up_to": "inf", "unit_amount_decimal": "0.2"}]'
    result = price_what_if(lookup_key="starter_api_calls", tiers=tiers, now=NOW)
    assert result.new_spec.tiers_mode == "graduated" and result.new_spec.included_units == 10_000
    rows = {r.account.name: (r.now_total, r.changed_total) for r in result.rows}
    # Alpha: (20,000 - 10,000) x 0.2 = 2,000 (was 2,000); Beta: 5,000 within the free tier = 0.
    assert rows == {"Alpha Co": (2_000, 2_000), "Beta Co": (500, 0), "Kappa Co": (3_100, 3_100)}
    assert _totals(result)["usd"] == (2, 2_500, 2_000, -500)


def test_the_kwd_price_changes_only_kwd(starter_accounts):
    # 10,000 x 0.5 fils = 5,000 fils (KWD 5.000), up from 3,100: +1,900.
    result = price_what_if(
        lookup_key="starter_api_calls_kwd", unit_amount_decimal=Decimal("0.5"), now=NOW
    )
    assert _totals(result) == {"kwd": (1, 3_100, 5_000, 1_900), "usd": (2, 2_500, 2_500, 0)}


def _staff(username, *permissions):
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(
        *[
            Permission.objects.get(content_type__app_label=app, codename=codename)
            for app, codename in (p.split(".") for p in permissions)
        ]
    )
    return user


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_staff_page_is_guarded_and_shows_totals_per_currency(client, starter_accounts):
    query = {"lookup_key": "starter_api_calls", "unit_amount_decimal": "0.15"}
    client.force_login(make_user(starter_accounts["alpha"], "ada"))  # a customer, not staff
    response = client.get(URL, query)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(_staff("sam"))  # staff without billing.view_account
    assert client.get(URL, query).status_code == 403
    client.force_login(_staff("vera", "billing.view_account"))
    with time_machine.travel(NOW, tick=False):
        response = client.get(URL, query)
    assert response.status_code == 200
    html = response.content.decode()
    usd = html[html.index('data-testid="what-if-total-usd"') :]
    assert _text(usd[usd.index(">") + 1 : usd.index("</tr>")]) == "USD 2 $25.00 $37.50 $12.50"
    kwd = html[html.index('data-testid="what-if-total-kwd"') :]
    assert _text(kwd[kwd.index(">") + 1 : kwd.index("</tr>")]) == (
        "KWD 1 KWD 3.100 KWD 3.100 KWD 0.000"
    )
    assert "ProCo" not in html  # not on Starter


def test_the_staff_page_refuses_a_change_it_cannot_price(client, starter_accounts):
    client.force_login(_staff("vera", "billing.view_account"))
    # Neither an amount nor tiers; both; tiers that are not a table.
    for query in (
        {"lookup_key": "starter_api_calls"},
        {"lookup_key": "starter_api_calls", "unit_amount_decimal": "1", "tiers": "[]"},
        {"lookup_key": "starter_api_calls", "tiers": '[{"up_to": 5, "unit_amount": 1}]'},
    ):
        response = client.get(URL, query)
        assert response.status_code == 400, query
        assert 'data-testid="what-if-totals"' not in response.content.decode()


def test_queries_do_not_grow_with_the_number_of_accounts(stripe_client, starter_accounts):
    change = {"lookup_key": "starter_api_calls", "unit_amount_decimal": Decimal("0.15"), "now": NOW}
    with CaptureQueriesContext(connection) as four:
        result = price_what_if(**change)
    assert len(result.rows) == 3
    # Two more USD accounts on Starter: 1,000 calls each in March, 1,000 x 0.1 = 100 now,
    # 1,000 x 0.15 = 150 changed; USD totals 2,500 + 200 = 2,700 and 3,750 + 300 = 4,050.
    for name in ("Gamma Co", "Delta Co"):
        account = subscribe_on_jan_1(stripe_client, Plan.objects.get(key="starter"), name)
        write_rollups(account, [("api_calls", d(2026, 3, 15, 10), 1_000)])
    with CaptureQueriesContext(connection) as six:
        result = price_what_if(**change)
    assert len(result.rows) == 5
    assert _totals(result)["usd"] == (4, 2_700, 4_050, 1_350)
    assert len(four) == len(six), [q["sql"] for q in six.captured_queries]


def test_the_staff_simulator_page_for_an_account_without_subscription(client, demo_catalog):
    account = account_create(name="Nobody Co", billing_email="n@example.com")
    client.force_login(_staff("vera", "billing.view_account"))
    response = client.get(reverse("revenue:simulator"), {"account": account.pk})
    assert response.status_code == 200
    assert "Nobody Co has no live subscription." in _text(response.content.decode())
    # Without an account chosen: the picker only.
    response = client.get(reverse("revenue:simulator"))
    assert (
        response.status_code == 200
        and 'data-testid="simulator-table"' not in response.content.decode()
    )


def test_an_account_without_plan_metadata_is_found_by_its_prices(starter_accounts):
    from djstripe.models import Subscription

    subscription = Subscription.objects.get(customer__subscriber=starter_accounts["beta"])
    data = dict(subscription.stripe_data, metadata={})
    Subscription.objects.filter(pk=subscription.pk).update(stripe_data=data)
    result = price_what_if(
        lookup_key="starter_api_calls", unit_amount_decimal=Decimal("0.15"), now=NOW
    )
    # Beta still counted: 5,000 x 0.1 = 500 -> 5,000 x 0.15 = 750.
    assert {r.account.name: (r.now_total, r.changed_total) for r in result.rows}["Beta Co"] == (
        500,
        750,
    )
