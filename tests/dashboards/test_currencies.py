"""Pages of accounts billed in yen (no minor unit) and in Kuwaiti dinars (three decimals),
and staff pages that never add two currencies together.

Plans (billing/catalog/demo.toml):
- Scale in jpy, graduated: up to 1,000 at ¥8 + flat ¥1,500; up to 10,000 at ¥4.5 + flat
  ¥750; then ¥1.5.
- Starter in kwd: 0.31 fils a call; in usd: 0.1¢ a call.

Usage this period (Apr 1 - May 1 2026, "now" Apr 3 12:00 UTC):
- Tokyo (jpy, Scale): 1,235 transactions
  = 1,000 x ¥8 + ¥1,500 = ¥9,500, plus 235 x ¥4.5 = ¥1,057.5 + ¥750 = ¥1,807.5
  = ¥11,307.5 -> ¥11,308 (one rounding, half up, to the yen).
- Kuwait (kwd, Starter): 3,985 calls x 0.31 fils = 1,235.35 fils -> 1,235 fils = KWD 1.235.
March (closed, invoiced Apr 1): Tokyo the same 1,235 transactions (¥11,308); Globex (usd,
Starter) 4,321 calls x 0.1¢ = 432.1¢ -> 432¢ = $4.32.
"""

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.urls import reverse

from billing.models import Account
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from tests.factories import make_user
from usage.services.budgets import budget_set
from usage.services.ingest import usage_events_ingest
from usage.services.reporting import usage_report_pass

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

MAR_1 = datetime(2026, 3, 1, tzinfo=UTC)
MAR_10 = datetime(2026, 3, 10, tzinfo=UTC)
APR_1 = datetime(2026, 4, 1, tzinfo=UTC)
NOW = datetime(2026, 4, 3, 12, tzinfo=UTC)
HTMX = {"HX-Request": "true"}
# A yen amount with a decimal part ("¥11,308.00", "¥1.5" is a unit price, not an amount).
YEN_WITH_DECIMALS = re.compile(r"¥\d[\d,]*\.\d{2}\b")


def _account(name: str, currency: str) -> Account:
    return Account.objects.create(
        name=name, billing_email=f"billing@{name.lower()}.example", currency=currency
    )


def _use(account: Account, event_name: str, count: int, *, day: datetime, now: datetime):
    """``count`` events of a count meter on ``day`` from 01:00 UTC, one a second."""
    customer = account.djstripe_customers.get().id
    start = int((day + timedelta(hours=1)).timestamp())
    events = [
        {
            "event_name": event_name,
            "customer": customer,
            "timestamp": start + i,
            "identifier": f"{account.pk}-{day:%m%d}-{i}",
        }
        for i in range(count)
    ]
    for i in range(0, count, 1000):
        result = usage_events_ingest(events=events[i : i + 1000], now=now)
        assert not result.rejected, result.rejected[:3]


@pytest.fixture
def tokyo_and_globex(stripe_client, demo_catalog):
    """Tokyo (jpy, Scale) and Globex (usd, Starter) subscribed Mar 1 on one test clock;
    March usage reported and invoiced on Apr 1; Tokyo's April usage in the ledger."""
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(MAR_1.timestamp())}
    )
    tokyo, globex = _account("Tokyo", "jpy"), _account("Globex", "usd")
    subscription_create(account=tokyo, plan=demo_catalog["scale"], test_clock=clock.id)
    subscription_create(account=globex, plan=demo_catalog["starter"], test_clock=clock.id)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=MAR_10)
    _use(tokyo, "transactions", 1_235, day=MAR_1 + timedelta(days=2), now=MAR_10)
    _use(globex, "api_calls", 4_321, day=MAR_1 + timedelta(days=2), now=MAR_10)
    usage_report_pass(now=MAR_10, flush=True)
    # Past the period end and the hour the renewals stay drafts: finalized and paid.
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=NOW)
    _use(tokyo, "transactions", 1_235, day=APR_1 + timedelta(days=1), now=NOW)
    report = stripe_sync_everything()
    assert not report.errors, report.errors
    return tokyo, globex


@pytest.fixture
def kuwait(stripe_client, demo_catalog):
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(APR_1.timestamp())}
    )
    account = _account("Kuwait", "kwd")
    subscription_create(account=account, plan=demo_catalog["starter"], test_clock=clock.id)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=NOW)
    _use(account, "api_calls", 3_985, day=APR_1 + timedelta(days=1), now=NOW)
    assert not stripe_sync_everything().errors
    return account


def _testid(html: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}"[^>]*>([^<]*)<', html)
    assert match, testid
    return match.group(1).strip()


def test_a_jpy_account_sees_whole_yen_everywhere(client, tokyo_and_globex):
    tokyo, _ = tokyo_and_globex
    owner = make_user(tokyo, "kenji")
    client.force_login(owner)
    with time_machine.travel(NOW, tick=False):
        home = client.get(reverse("dashboards:home")).content.decode()
        invoices = client.get(reverse("dashboards:invoices")).content.decode()
        usage_csv = client.get(reverse("dashboards:usage_csv")).content.decode()
        # ¥20,000 spend budget (jpy has no minor unit: 20,000 minor units = ¥20,000).
        budget_set(account=tokyo, kind="spend", limit=20_000, warn_levels=[80],
                   hard_cap=False, user=owner, source="customer")  # fmt: skip
        budgets = client.get(reverse("dashboards:budgets"), headers=HTMX).content.decode()

    # Dashboard: 1,235 transactions so far this period = ¥11,308 (worked above).
    assert _testid(home, "cost-so-far") == "¥11,308"
    assert _testid(home, "cost-transactions") == "¥11,308"
    # Invoices: the first, at subscribing (¥0: the plan has no licensed price and a
    # metered item bills in arrears, so Stripe charges nothing for it in advance -- not
    # even graduated tier 1's flat fee), and March's renewal, ¥11,308.
    totals = re.findall(r'data-testid="invoice-total">([^<]*)<', invoices)
    assert sorted(totals) == ["¥0", "¥11,308"]
    assert "¥11,308" in re.findall(r'data-testid="line-amount">([^<]*)<', invoices)
    # The usage CSV: the cost column is in yen, with no decimals.
    reader = csv.reader(io.StringIO(usage_csv))
    header = next(reader)
    assert header[-1] == "usage cost to date (JPY)"
    rows = [r for r in reader if r[2] == "transactions"]
    assert rows[-1][-2:] == ["1235", "11308"]
    # Budgets: ¥11,308 of ¥20,000 spent; ¥20,000 - ¥11,308 = ¥8,692 left.
    card = " ".join(budgets.split())
    assert "<strong>¥11,308</strong> of ¥20,000 spent" in card
    assert "¥8,692 left" in card
    assert "Whole bill (JPY)" in card
    for page in (home, invoices, budgets):
        assert not YEN_WITH_DECIMALS.search(page), YEN_WITH_DECIMALS.search(page)
        assert not re.search(r"\$\d", page)  # nothing in dollars on a yen account


def test_a_kwd_account_sees_three_decimals(client, kuwait):
    owner = make_user(kuwait, "fatima")
    client.force_login(owner)
    with time_machine.travel(NOW, tick=False):
        home = client.get(reverse("dashboards:home")).content.decode()
        usage_csv = client.get(reverse("dashboards:usage_csv")).content.decode()
        # KWD 5.000 = 5,000 fils.
        budget_set(account=kuwait, kind="spend", limit=5_000, warn_levels=[80],
                   hard_cap=False, user=owner, source="customer")  # fmt: skip
        budgets = client.get(reverse("dashboards:budgets"), headers=HTMX).content.decode()
    # 3,985 calls x 0.31 fils = 1,235.35 -> 1,235 fils = KWD 1.235.
    assert _testid(home, "cost-so-far") == "KWD 1.235"
    assert _testid(home, "cost-api_calls") == "KWD 1.235"
    rows = [r for r in csv.reader(io.StringIO(usage_csv)) if r[2] == "api_calls"]
    assert rows[-1][-2:] == ["3985", "1.235"]
    # 5,000 - 1,235 = 3,765 fils left = KWD 3.765.
    card = " ".join(budgets.split())
    assert "<strong>KWD 1.235</strong> of KWD 5.000 spent" in card
    assert "KWD 3.765 left" in card
    for page in (home, budgets):
        # Every KWD amount has exactly three decimals.
        assert re.findall(r"KWD \d[\d,]*\.\d{3}(?!\d)", page)
        assert not re.search(r"KWD \d[\d,]*\.\d{2}(?!\d)", page)
        assert not re.search(r"KWD \d[\d,]*(?![\d.,])", page)


def test_staff_revenue_shows_each_currency_and_never_their_sum(client, tokyo_and_globex):
    staff = get_user_model().objects.create_superuser("finance", "f@x.test", "pw")
    client.force_login(staff)
    with time_machine.travel(NOW, tick=False):
        html = client.get(reverse("revenue:waterfall")).content.decode()
        accounts = client.get(reverse("admin:billing_account_changelist")).content.decode()
    assert accounts.count("Tokyo") and accounts.count("Globex")
    tables = dict(
        re.findall(
            r'<table class="revenue-waterfall" data-currency="(\w+)">(.*?)</table>', html, re.S
        )
    )
    assert sorted(tables) == ["jpy", "usd"]
    # Each currency's March renewal is billed in its own table, in its own money:
    # Tokyo ¥11,308, Globex $4.32 (432¢).
    assert "¥11,308" in tables["jpy"] and "$" not in tables["jpy"]
    assert "$4.32" in tables["usd"] and "¥" not in tables["usd"]
    jpy_minor = {int(v) for v in re.findall(r'data-minor="(-?\d+)"', tables["jpy"])}
    usd_minor = {int(v) for v in re.findall(r'data-minor="(-?\d+)"', tables["usd"])}
    assert 11_308 in jpy_minor and 432 in usd_minor
    # No figure anywhere adds yen to cents: 11,308 + 432 = 11,740 (as minor units, as
    # "11,740", "117.40" or "¥11,740"); nor the two tables' billed figures together.
    everything = html + accounts
    for combined in ("11,740", "117.40", "11740"):
        assert combined not in everything
    assert 11_740 not in jpy_minor | usd_minor
