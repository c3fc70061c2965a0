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
