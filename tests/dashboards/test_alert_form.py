"""The alert form converts the amount a person types into minor units of the account's
currency (billing.money.major_to_minor, half up)."""

import pytest

from dashboards.forms import AlertRuleForm


@pytest.mark.parametrize(
    ("typed", "currency", "expected"),
    [
        # $250.50 = 25,050 cents; $250.505 = 25,050.5 cents, half up -> 25,051
        ("250.50", "usd", 25_050),
        ("250.505", "usd", 25_051),
        # yen have no minor unit: ¥5,000 = 5,000; ¥5,000.5 half up -> 5,001
        ("5000", "jpy", 5_000),
        ("5000.5", "jpy", 5_001),
        # dinar: 12.345 KWD = 12,345 fils
        ("12.345", "kwd", 12_345),
    ],
)
def test_amount_is_cleaned_to_minor_units(typed: str, currency: str, expected: int) -> None:
    form = AlertRuleForm({"kind": "spend", "amount": typed}, currency=currency)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["amount"] == expected


def test_usage_rules_carry_no_amount() -> None:
    form = AlertRuleForm({"kind": "usage_share", "threshold_percent": "90"}, currency="usd")
    form.is_valid()
    assert form.cleaned_data["amount"] is None


@pytest.mark.parametrize("kind", ["spend", "projected_spend"])
@pytest.mark.parametrize("share", ["0", "-5", "abc", "5000"])
def test_spend_rules_ignore_the_usage_fields(kind: str, share: str) -> None:
    # A share left at 0 (or junk) in the hidden usage fields does not block a spend rule.
    form = AlertRuleForm(
        {"kind": kind, "amount": "150", "threshold_percent": share, "meter": "999"},
        currency="usd",
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["amount"] == 15_000  # $150 = 15,000 cents
    assert form.cleaned_data["threshold_percent"] is None
    assert not form.cleaned_data["meter"]


@pytest.mark.parametrize("kind", ["usage_share", "projected_usage_share"])
def test_usage_rules_ignore_the_amount(kind: str) -> None:
    meter = type("M", (), {"pk": 7, "display_name": "API calls"})()
    form = AlertRuleForm(
        {"kind": kind, "meter": "7", "threshold_percent": "80", "amount": "-1"},
        meters=[meter],
        currency="usd",
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["amount"] is None
    assert form.cleaned_data["threshold_percent"] == 80


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"kind": "spend", "amount": ""}, "amount", "Enter an amount above zero."),
        ({"kind": "spend", "amount": "0"}, "amount", "Enter an amount above zero."),
        ({"kind": "spend", "amount": "ten"}, "amount", "Enter an amount like 150 or 150.50."),
        ({"kind": "usage_share", "meter": "7"}, "threshold_percent", "between 1% and 1000%"),
        (
            {"kind": "usage_share", "meter": "7", "threshold_percent": "0"},
            "threshold_percent",
            "between 1% and 1000%",
        ),
        ({"kind": "usage_share", "threshold_percent": "80"}, "meter", "Choose a meter."),
    ],
)
def test_the_chosen_kinds_fields_are_validated(data: dict, field: str, message: str) -> None:
    meter = type("M", (), {"pk": 7, "display_name": "API calls"})()
    form = AlertRuleForm(data, meters=[meter], currency="usd")
    assert not form.is_valid()
    assert list(form.errors) == [field]
    assert message in form.errors[field][0]
    # The fields skipped during validation are not left disabled for the re-rendered form.
    assert not any(f.disabled for f in form.fields.values())
