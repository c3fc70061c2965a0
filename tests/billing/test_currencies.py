"""Multi-currency plans: the catalog's per-currency prices, subscriptions in the account's
currency, and a JPY and a KWD account billed end to end through the emulator.

The demo catalog (billing/catalog/demo.toml) sells Scale in jpy and Starter in kwd:

- ``scale_transactions_jpy``, graduated, in yen (jpy has no minor unit):
  tier 1 up to 1,000 at ¥8 + flat ¥1,500; tier 2 up to 10,000 at ¥4.5 + flat ¥750;
  tier 3 at ¥1.5.
- ``starter_api_calls_kwd``, per unit, 0.31 fils a call (kwd: 1 dinar = 1,000 fils).

Usage goes the real way: Meterdesk's ledger (``usage_events_ingest``), reported to the
emulator by ``usage_report_pass``; the test clock closes the period and the renewal is
finalized an hour later; the pricing engine's estimate of the period (the dashboard's
``period_summary``) must equal the finalized invoice.
"""

from datetime import UTC, datetime, timedelta

import pytest
import stripe
from django.core.management import call_command

from billing.catalog.spec import CatalogError, parse_catalog
from billing.mirror.subscriptions import subscription_state_for_account
from billing.models import Account, PlanPrice
from billing.money import format_money
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import (
    SubscriptionError,
    plans_for_account,
    plans_priced_in,
    subscription_change_plan,
    subscription_create,
)
from billing.services.test_clocks import test_clock_advance
from tests.conftest import ROOT
from usage.selectors.summaries import period_summary
from usage.services.ingest import usage_events_ingest
from usage.services.reporting import usage_report_pass

JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)
FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)
JAN_11 = JAN_1 + timedelta(days=10)


def _account(name: str, currency: str) -> Account:
    return Account.objects.create(
        name=name, billing_email=f"{currency}@{name.lower()}.example", currency=currency
    )


def _ingest_count(customer_id: str, event_name: str, count: int, *, now: datetime) -> None:
    """``count`` events of a count meter, one a second from Jan 2 00:00 UTC."""
    start = int((JAN_1 + timedelta(days=1)).timestamp())
    events = [
        {
            "event_name": event_name,
            "customer": customer_id,
            "timestamp": start + i,
            "identifier": f"{customer_id}-{event_name}-{i}",
        }
        for i in range(count)
    ]
    for i in range(0, count, 1000):
        result = usage_events_ingest(events=events[i : i + 1000], now=now)
        assert not result.rejected, result.rejected[:3]


def _bill_one_period(stripe_client, *, account: Account, plan, event_name: str, count: int):
    """Subscribe on a clock at Jan 1, use ``count`` units on Jan 2, report them on Jan 11,
    close the period (Feb 1) and pass the hour the renewal stays a draft. Returns the
    engine's estimate of the period on Jan 31 (a ``PeriodSummary``) and the finalized
    renewal invoice as Stripe returns it."""
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(JAN_1.timestamp())}
    )
    subscription = subscription_create(account=account, plan=plan, test_clock=clock.id)
    customer_id = account.djstripe_customers.get().id
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=JAN_11)
    _ingest_count(customer_id, event_name, count, now=JAN_11)
    usage_report_pass(now=JAN_11, flush=True)
    state = subscription_state_for_account(account=account)
    estimate = period_summary(account=account, state=state, now=FEB_1 - timedelta(hours=1))
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=FEB_1 + timedelta(hours=2))
    report = stripe_sync_everything()
    assert not report.errors, report.errors
    invoices = stripe_client.v1.invoices.list({"subscription": subscription.id}).data
    [renewal] = [i for i in invoices if i.billing_reason == "subscription_cycle"]
    return estimate, renewal


@pytest.mark.django_db
@pytest.mark.slow
def test_jpy_graduated_plan_billed_in_yen_and_the_engine_agrees(stripe_client, demo_catalog):
    account = _account("Tokyo", "jpy")
    estimate, invoice = _bill_one_period(
        stripe_client,
        account=account,
        plan=demo_catalog["scale"],
        event_name="transactions",
        count=12_345,
    )
    # 12,345 transactions on the jpy graduated tiers:
    #   tier 1: 1,000 x ¥8 = ¥8,000 + flat ¥1,500            = ¥9,500
    #   tier 2: 9,000 x ¥4.5 = ¥40,500 + flat ¥750           = ¥41,250
    #   tier 3: 2,345 x ¥1.5                                 = ¥3,517.5
    #   total ¥54,267.5, rounded once to the yen, half up    = ¥54,268
    assert invoice.status == "paid"
    assert invoice.currency == "jpy"
    [line] = invoice.lines.data
    assert (line.quantity, line.amount, line.currency) == (12_345, 54_268, "jpy")
    assert invoice.total == 54_268
    assert (
        line.pricing.price_details.price
        == PlanPrice.objects.get(lookup_key="scale_transactions_jpy").stripe_price_id
    )
    # The engine, from the ledger and the mirrored jpy price, on Jan 31: the same yen.
    assert estimate.currency == "jpy"
    assert [ln.usage for ln in estimate.lines] == [12_345]
    assert estimate.usage_cost_so_far == 54_268 == invoice.total
    assert estimate.base_fee == 0
    assert format_money(invoice.total, invoice.currency) == "¥54,268"


@pytest.mark.django_db
@pytest.mark.slow
def test_kwd_per_unit_plan_billed_in_fils_and_the_engine_agrees(stripe_client, demo_catalog):
    account = _account("Kuwait", "kwd")
    estimate, invoice = _bill_one_period(
        stripe_client,
        account=account,
        plan=demo_catalog["starter"],
        event_name="api_calls",
        count=3_985,
    )
    # 3,985 calls x 0.31 fils = 1,235.35 fils, rounded once to the fils (half up):
    # 1,235 fils = KWD 1.235. (Stripe asks for charged three-decimal amounts to end in 0;
    # how Billing rounds a KWD invoice is not documented, so neither side invents it.)
    assert invoice.currency == "kwd"
    [line] = invoice.lines.data
    assert (line.quantity, line.amount) == (3_985, 1_235)
    assert invoice.total == 1_235
    assert estimate.currency == "kwd"
    assert estimate.usage_cost_so_far == 1_235 == invoice.total
    assert format_money(invoice.total, "kwd") == "KWD 1.235"


@pytest.mark.django_db
def test_subscription_uses_the_accounts_currency_and_passes_it(stripe_client, demo_catalog):
    account = _account("Osaka", "jpy")
    subscription = subscription_create(account=account, plan=demo_catalog["scale"])
    remote = stripe_client.v1.subscriptions.retrieve(subscription.id)
    assert remote.currency == "jpy"
    jpy = PlanPrice.objects.get(lookup_key="scale_transactions_jpy")
    assert jpy.currency == "jpy"
    assert [item.price.id for item in remote["items"].data] == [jpy.stripe_price_id]
    # The usd twin exists but is not on the subscription.
    usd = PlanPrice.objects.get(lookup_key="scale_transactions")
    assert usd.currency == "usd" and usd.stripe_price_id != jpy.stripe_price_id


@pytest.mark.django_db
def test_a_plan_without_the_accounts_currency_is_a_clear_error(stripe_client, demo_catalog):
    account = _account("Nagoya", "jpy")
    with pytest.raises(
        SubscriptionError, match=r"plan pro has no prices in JPY \(it is priced in USD\)"
    ):
        subscription_create(account=account, plan=demo_catalog["pro"])
    assert not account.djstripe_customers.exists()  # refused before Stripe was called
    subscription_create(account=account, plan=demo_catalog["scale"])
    with pytest.raises(SubscriptionError, match="has no prices in JPY"):
        subscription_change_plan(account=account, plan=demo_catalog["growth"])


@pytest.mark.django_db
def test_change_plan_stays_in_the_accounts_currency(stripe_client, demo_catalog):
    account = _account("Kuwait City", "kwd")
    subscription_create(account=account, plan=demo_catalog["starter"])
    with pytest.raises(SubscriptionError, match="has no prices in KWD"):
        subscription_change_plan(account=account, plan=demo_catalog["scale"])


@pytest.mark.django_db
def test_the_plan_picker_offers_only_plans_priced_in_the_accounts_currency(demo_catalog):
    # demo.toml: every plan in usd; Scale also in jpy; Starter also in kwd.
    keys = lambda qs: sorted(p.key for p in qs)  # noqa: E731
    assert keys(plans_priced_in("usd")) == ["bulk", "growth", "pro", "scale", "starter"]
    assert keys(plans_for_account(account=_account("Kobe", "jpy"))) == ["scale"]
    assert keys(plans_for_account(account=_account("Salmiya", "kwd"))) == ["starter"]
    assert keys(plans_priced_in("eur")) == []


@pytest.mark.django_db
def test_the_emulator_refuses_a_second_live_subscription_in_another_currency(
    stripe_client, demo_catalog
):
    usd = PlanPrice.objects.get(lookup_key="scale_transactions").stripe_price_id
    jpy = PlanPrice.objects.get(lookup_key="scale_transactions_jpy").stripe_price_id
    customer = stripe_client.v1.customers.create({"name": "Two currencies"})
    stripe_client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": usd}]})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe_client.v1.subscriptions.create(
            {"customer": customer.id, "currency": "jpy", "items": [{"price": jpy}]}
        )
    assert refused.value.param == "currency"
    assert "cannot combine currencies" in refused.value.user_message


# --- the catalog ------------------------------------------------------------------

BASE = """
currency = "usd"
[meters.calls]
display_name = "Calls"
aggregation = "count"
[plans.p]
name = "P"
[[plans.p.prices]]
lookup_key = "p_calls"
meter = "calls"
tiers_mode = "graduated"
tiers = [{ up_to = 100, unit_amount = 2 }, { up_to = "inf", unit_amount = 1 }]
"""


JPY = "[plans.p.prices.currencies.jpy]\n"
TIERS = 'tiers = [{ up_to = 100, unit_amount = 3 }, { up_to = "inf", unit_amount = 1 }]'


def test_catalog_makes_one_price_per_currency_with_the_currency_in_its_lookup_key():
    catalog = parse_catalog(
        BASE
        + """
[plans.p.prices.currencies.jpy]
tiers = [{ up_to = 100, unit_amount = 3 }, { up_to = "inf", unit_amount_decimal = "1.5" }]
[plans.p.prices.currencies.kwd]
tiers = [{ up_to = 100, unit_amount = 6, flat_amount = 10 }, { up_to = "inf", unit_amount = 3 }]
"""
    )
    [plan] = catalog.plans
    assert plan.currencies == ("usd", "jpy", "kwd")
    by_key = {p.lookup_key: p for p in plan.prices}
    assert list(by_key) == ["p_calls", "p_calls_jpy", "p_calls_kwd"]
    jpy = by_key["p_calls_jpy"].params
    assert (jpy["currency"], jpy["lookup_key"], jpy["tiers_mode"]) == (
        "jpy",
        "p_calls_jpy",
        "graduated",
    )
    assert jpy["tiers"] == [
        {"up_to": 100, "unit_amount_decimal": "3"},
        {"up_to": "inf", "unit_amount_decimal": "1.5"},
    ]
    assert jpy["recurring"]["usage_type"] == "metered"
    assert by_key["p_calls_kwd"].params["tiers"][0]["flat_amount_decimal"] == "10"
    # The base price is what it was before currencies existed (same spec hash input).
    assert "currencies" not in by_key["p_calls"].params
    assert by_key["p_calls"].params["currency"] == "usd"
    assert [p.lookup_key for p in plan.prices_in("jpy")] == ["p_calls_jpy"]


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [
        (
            "[plans.p.prices.currencies.JPY]\n" + TIERS,
            "plans.p.prices[0].currencies.JPY",
            "3 lowercase letters",
        ),
        (
            "[plans.p.prices.currencies.yen1]\n" + TIERS,
            "plans.p.prices[0].currencies.yen1",
            "3 lowercase letters",
        ),
        (
            "[plans.p.prices.currencies.usd]\n" + TIERS,
            "plans.p.prices[0].currencies.usd",
            "is the catalog's currency already",
        ),
        (
            JPY + TIERS.replace("100", "200"),
            "plans.p.prices[0].currencies.jpy.tiers[0].up_to",
            "the base price's tier 0 ends at 100",
        ),
        (
            JPY
            + TIERS.replace('{ up_to = "inf"', '{ up_to = 500, unit_amount = 2 }, { up_to = "inf"'),
            "plans.p.prices[0].currencies.jpy.tiers",
            "has 3 tiers; the base price has 2",
        ),
        (
            "[plans.p.prices.currencies.jpy]\nunit_amount = 3",
            "plans.p.prices[0].currencies.jpy.tiers",
            "the base price is tiered",
        ),
        (
            '[plans.p.prices.currencies.jpy]\ntiers_mode = "volume"\n' + TIERS,
            "plans.p.prices[0].currencies.jpy.tiers_mode",
            "must be the base price's tiers_mode",
        ),
        (
            '[plans.p.prices.currencies.jpy]\nmeter = "calls"\n' + TIERS,
            "plans.p.prices[0].currencies.jpy.meter",
            "is taken from the base price",
        ),
        (
            "[plans.p.prices.currencies.jpy]\nunit_amount = 2\n" + TIERS,
            "plans.p.prices[0].currencies.jpy.unit_amount",
            "amounts go in tiers",
        ),
        (
            JPY + TIERS.replace("unit_amount = 3", "unit_amount = 1.5"),
            "plans.p.prices[0].currencies.jpy.tiers[0].unit_amount",
            "never a float",
        ),
    ],
)
def test_bad_currency_prices_name_the_field(extra, where, message):
    with pytest.raises(CatalogError) as raised:
        parse_catalog(BASE + extra)
    assert raised.value.where == where
    assert message in str(raised.value)


PER_UNIT = """
currency = "usd"
[meters.calls]
display_name = "Calls"
aggregation = "count"
[plans.p]
name = "P"
[[plans.p.prices]]
lookup_key = "p_base"
unit_amount = 900
[[plans.p.prices]]
lookup_key = "p_calls"
meter = "calls"
unit_amount = 50
package = { size = 1000, round = "up" }
"""


def test_per_unit_currency_prices_keep_the_package_and_need_every_price():
    with pytest.raises(CatalogError) as raised:
        parse_catalog(
            PER_UNIT + "[plans.p.prices.currencies.kwd]\nunit_amount = 150\npackage = { size = 10 }"
        )
    assert raised.value.where == "plans.p.prices[1].currencies.kwd.package"
    with pytest.raises(CatalogError) as raised:
        parse_catalog(PER_UNIT + "[plans.p.prices.currencies.kwd]\nunit_amount = 150")
    # The base fee (prices[0]) has no kwd amount while the calls price has one.
    assert raised.value.where == "plans.p.prices[0].currencies"
    assert "has no kwd amounts" in str(raised.value)

    catalog = parse_catalog(
        PER_UNIT.replace(
            "unit_amount = 900\n",
            "unit_amount = 900\n[plans.p.prices.currencies.kwd]\nunit_amount = 2770\n",
        )
        + "[plans.p.prices.currencies.kwd]\nunit_amount = 150"
    )
    kwd = {p.lookup_key: p.params for p in catalog.plans[0].prices_in("kwd")}
    assert kwd["p_base_kwd"]["unit_amount_decimal"] == "2770"
    assert kwd["p_calls_kwd"]["unit_amount_decimal"] == "150"
    # The package is the base price's: 1,000 calls a pack, rounded up.
    assert kwd["p_calls_kwd"]["transform_quantity"] == {"divide_by": 1000, "round": "up"}


def test_generated_lookup_keys_cannot_collide_with_declared_ones():
    text = (
        BASE
        + "[plans.p.prices.currencies.jpy]\n"
        + TIERS
        + "\n"
        + '[[plans.p.prices]]\nlookup_key = "p_calls_jpy"\nunit_amount = 5\n'
    )
    with pytest.raises(CatalogError, match="'p_calls_jpy' is used twice"):
        parse_catalog(text)


def test_check_subcommand_counts_every_currency_price(capsys):
    call_command("billing_catalog", "check", str(ROOT / "billing" / "catalog" / "demo.toml"))
    # 7 usd prices + starter_api_calls_kwd + scale_transactions_jpy = 9
    assert "4 meters, 5 plans, 9 prices (in usd, kwd, jpy), all valid" in capsys.readouterr().out
