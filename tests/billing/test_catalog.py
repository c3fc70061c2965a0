import pytest
from django.core.management import CommandError, call_command
from djstripe.models import Price, Product

from billing.catalog.spec import CatalogError, parse_catalog
from billing.models import Meter, Plan, PlanPrice
from tests.conftest import ROOT

DEMO = ROOT / "billing" / "catalog" / "demo.toml"


def _remote_counts(client):
    prices = list(client.v1.prices.list({"limit": 100}).auto_paging_iter())
    products = list(client.v1.products.list({"limit": 100}).auto_paging_iter())
    meters = list(client.v1.billing.meters.list({"limit": 100}).auto_paging_iter())
    return len(prices), len(products), len(meters)


@pytest.mark.django_db
def test_apply_twice_creates_nothing_the_second_time(stripe_client, capsys):
    call_command("billing_catalog", "apply", str(DEMO))
    first = _remote_counts(stripe_client)
    # demo.toml: 4 meters, 5 plans (products), 9 prices (7 in usd, one in kwd, one in jpy).
    assert first == (9, 5, 4)

    call_command("billing_catalog", "apply", str(DEMO))
    out = capsys.readouterr().out
    assert "0 created, 0 updated, 0 archived, 18 unchanged" in out
    assert _remote_counts(stripe_client) == first
    # Mirrored into dj-stripe's tables and Meterdesk's own.
    assert Price.objects.count() == 9
    assert Product.objects.count() == 5
    assert Meter.objects.exclude(stripe_id="").count() == 4
    pro = Plan.objects.get(key="pro")
    assert sorted(pro.prices.values_list("lookup_key", flat=True)) == [
        "pro_api_calls",
        "pro_base",
        "pro_seats",
    ]
    api_calls = Price.objects.get(lookup_key="pro_api_calls")
    assert (
        api_calls.stripe_data["recurring"]["meter"]
        == Meter.objects.get(event_name="api_calls").stripe_id
    )
    assert api_calls.stripe_data["tiers"][1]["unit_amount_decimal"] == "0.2"


@pytest.mark.django_db
def test_count_meters_are_created_as_sum_in_stripe(stripe_client):
    call_command("billing_catalog", "apply", str(DEMO))
    remote = {
        m.event_name: m.default_aggregation.formula
        for m in stripe_client.v1.billing.meters.list({"limit": 100}).auto_paging_iter()
    }
    assert remote == {
        "api_calls": "sum",  # a count meter: counts are sent as values
        "transactions": "sum",
        "data_transfer_gb": "sum",
        "seats": "last",
    }


@pytest.mark.django_db
def test_changed_price_becomes_a_new_price_and_the_old_is_archived(stripe_client, tmp_path):
    call_command("billing_catalog", "apply", str(DEMO))
    old_id = PlanPrice.objects.get(lookup_key="starter_api_calls").stripe_price_id
    changed = tmp_path / "changed.toml"
    changed.write_text(DEMO.read_text().replace('unit_amount_decimal = "0.1"', "unit_amount = 1"))
    call_command("billing_catalog", "apply", str(changed))

    new_id = PlanPrice.objects.get(lookup_key="starter_api_calls").stripe_price_id
    assert new_id != old_id
    assert stripe_client.v1.prices.retrieve(old_id).active is False
    current = stripe_client.v1.prices.list({"lookup_keys": ["starter_api_calls"]}).data
    assert [p.id for p in current] == [new_id]
    assert current[0].unit_amount == 1
    assert Price.objects.get(id=old_id).active is False


BASE = """
currency = "usd"
[meters.api_calls]
display_name = "API calls"
aggregation = "count"
[plans.p]
name = "P"
[[plans.p.prices]]
lookup_key = "p1"
meter = "api_calls"
"""


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [
        ("unit_amount = 1.5", "plans.p.prices[0]", "never a float"),
        ("unit_amount = -1", "plans.p.prices[0]", "zero or more"),
        (
            'tiers_mode = "volume"\ntiers = [{up_to = 5, unit_amount = 1}]',
            "plans.p.prices[0].tiers[0].up_to",
            "last tier must be 'inf'",
        ),
        (
            'tiers_mode = "stairs"\ntiers = [{up_to = "inf", unit_amount = 1}]',
            "plans.p.prices[0].tiers_mode",
            "graduated",
        ),
        ("unit_amount = 1\npackage = { size = 0 }", "plans.p.prices[0].package.size", "positive"),
        ("", "plans.p.prices[0].unit_amount", "required"),
    ],
)
def test_bad_catalog_names_the_field(extra, where, message):
    with pytest.raises(CatalogError) as excinfo:
        parse_catalog(BASE + extra)
    assert excinfo.value.where == where
    assert message in str(excinfo.value)


def test_unknown_meter_and_bad_aggregation_are_named():
    with pytest.raises(CatalogError, match=r"plans\.p\.prices\[0\]\.meter: no meter named 'x'"):
        parse_catalog(BASE.replace('meter = "api_calls"', 'meter = "x"') + "unit_amount = 1")
    with pytest.raises(CatalogError, match=r"meters\.api_calls\.aggregation: must be one of"):
        parse_catalog(BASE.replace('"count"', '"avg"') + "unit_amount = 1")


@pytest.mark.django_db
def test_check_subcommand_reports_errors_without_calling_stripe(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE + "unit_amount = 1.5")
    with pytest.raises(CommandError, match="never a float"):
        call_command("billing_catalog", "check", str(bad))


def test_the_readme_catalog_example_is_a_valid_catalog():
    readme = (ROOT / "README.md").read_text()
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    catalog = parse_catalog(example)
    pro = next(plan for plan in catalog.plans if plan.key == "pro")
    assert [p.lookup_key for p in pro.prices] == ["pro_base", "pro_api_calls"]
    calls = pro.prices[1].params
    assert calls["recurring"]["usage_type"] == "metered"
    assert calls["tiers"][1] == {"up_to": "inf", "unit_amount_decimal": "0.2"}
