"""Top-up amounts by currency: typed in major units, checked in the currency's terms."""

from dashboards.forms import TopUpForm


def _clean(amount: str, currency: str):
    form = TopUpForm(data={"amount": amount}, currency=currency)
    return form.is_valid(), form.cleaned_data.get("amount"), form.errors.get("amount")


def test_usd_top_up_in_cents():
    # $250.50 = 25,050 cents; the minimum is $5.00.
    assert _clean("250.50", "usd")[:2] == (True, 25_050)
    ok, _, errors = _clean("4.99", "usd")
    assert not ok and errors == ["Enter at least 5.00 USD."]


def test_jpy_top_up_limits_are_in_yen_not_cents():
    # ¥5 would be below Stripe's ¥50 minimum charge: the yen minimum is ¥500 (5 x 100).
    ok, _, errors = _clean("5", "jpy")
    assert not ok and errors == ["Enter at least 500 JPY."]
    # ¥1,234 = 1,234 minor units (jpy has no minor unit).
    assert _clean("1234", "jpy")[:2] == (True, 1_234)


def test_kwd_top_up_is_in_steps_of_ten_fils():
    # 12.345 KWD = 12,345 fils: the last digit is not 0, which Stripe refuses to charge.
    ok, _, errors = _clean("12.345", "kwd")
    assert not ok and "steps of 0.010 KWD" in errors[0]
    # 12.340 KWD = 12,340 fils.
    assert _clean("12.34", "kwd")[:2] == (True, 12_340)
