"""The emulator bills zero-decimal (jpy) and three-decimal (kwd) currencies in their
minor unit, takes ``currency`` on subscription create, and keeps a customer in one
currency (https://docs.stripe.com/invoicing/multi-currency-customers).

Amounts are integers in the currency's minor unit: yen for jpy (none below it), fils
for kwd (1 KWD = 1,000 fils).
"""

from __future__ import annotations

import pytest
import stripe

from .helpers import (
    DRAFT_HOUR,
    FEB_1,
    advance,
    clock_customer,
    meter,
    product,
    renewal_invoice,
    send_usage,
)

JPY_TIERS = [
    {"up_to": 1000, "unit_amount": 8, "flat_amount": 1500},
    {"up_to": 10000, "unit_amount_decimal": "4.5", "flat_amount": 750},
    {"up_to": "inf", "unit_amount_decimal": "1.5"},
]


def _metered(client, currency: str, meter_id: str, name: str, **pricing):
    return client.v1.prices.create(
        {
            "product": product(client, name).id,
            "currency": currency,
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter_id},
            **pricing,
        }
    )


def _licensed(client, currency: str, unit_amount: int, name: str = "Base fee"):
    return client.v1.prices.create(
        {
            "product": product(client, name).id,
            "currency": currency,
            "unit_amount": unit_amount,
            "recurring": {"interval": "month"},
        }
    )


def test_jpy_graduated_usage_is_billed_in_whole_yen(client):
    clock, customer = clock_customer(client)
    transactions = meter(client, "transactions")
    price = _metered(
        client,
        "jpy",
        transactions.id,
        "Scale",
        billing_scheme="tiered",
        tiers_mode="graduated",
        tiers=JPY_TIERS,
    )
    sub = client.v1.subscriptions.create(
        {"customer": customer.id, "currency": "jpy", "items": [{"price": price.id}]}
    )
    assert sub.currency == "jpy"
    # 12,345 transactions as 5 events: 4 x 3,000 + 345.
    send_usage(client, customer.id, "transactions", [3000, 3000, 3000, 3000, 345])
    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    invoice = renewal_invoice(client, sub.id)
    # tier 1: 1,000 x ¥8 = ¥8,000 + flat ¥1,500 = ¥9,500
    # tier 2: 9,000 x ¥4.5 = ¥40,500 + flat ¥750 = ¥41,250
    # tier 3: 2,345 x ¥1.5 = ¥3,517.5
    # ¥54,267.5 rounded once, half up, to the yen: ¥54,268
    assert (invoice.currency, invoice.status) == ("jpy", "paid")
    [line] = invoice.lines.data
    assert (line.quantity, line.amount, line.currency) == (12345, 54268, "jpy")
    assert invoice.total == invoice.amount_paid == 54268
    assert line.description == "12345 \u00d7 Scale (graduated tiers, per month)"


def test_kwd_per_unit_usage_is_billed_in_fils(client):
    clock, customer = clock_customer(client)
    calls = meter(client, "api_calls")
    price = _metered(client, "kwd", calls.id, "Starter", unit_amount_decimal="0.31")
    sub = client.v1.subscriptions.create(
        {"customer": customer.id, "currency": "kwd", "items": [{"price": price.id}]}
    )
    send_usage(client, customer.id, "api_calls", [2000, 1985])
    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    invoice = renewal_invoice(client, sub.id)
    # 3,985 calls x 0.31 fils = 1,235.35 fils -> 1,235 fils (KWD 1.235)
    [line] = invoice.lines.data
    assert (line.quantity, line.amount, invoice.total) == (3985, 1235, 1235)
    assert invoice.currency == "kwd"
    # 0.31 fils is 0.00031 KWD: the description shows the dinar amount, not "$0.00".
    assert line.description == "3985 \u00d7 Starter (at 0.00031 KWD / month)"


@pytest.mark.parametrize(
    ("currency", "unit_amount", "shown"),
    [
        ("jpy", 1500, "\u00a51,500"),  # 1,500 yen: no decimals
        ("kwd", 2770, "2.770 KWD"),  # 2,770 fils = 2.770 KWD: three decimals
        ("bhd", 5, "0.005 BHD"),  # 5 fils of a Bahraini dinar
        ("usd", 9900, "$99.00"),  # 9,900 cents
        ("eur", 123456, "\u20ac1,234.56"),
    ],
)
def test_licensed_line_descriptions_use_the_currencys_exponent(
    client, currency, unit_amount, shown
):
    _, customer = clock_customer(client)
    price = _licensed(client, currency, unit_amount)
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    assert sub.currency == currency  # no currency given: the price's
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    [line] = invoice.lines.data
    assert line.description == f"1 \u00d7 Base fee (at {shown} / month)"
    assert (line.amount, invoice.total, invoice.currency) == (unit_amount,) * 2 + (currency,)


def test_subscription_currency_must_be_that_of_every_price(client):
    _, customer = clock_customer(client)
    usd = _licensed(client, "usd", 9900)
    jpy = _licensed(client, "jpy", 1500)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.subscriptions.create(
            {"customer": customer.id, "currency": "jpy", "items": [{"price": usd.id}]}
        )
    assert refused.value.http_status == 400
    assert refused.value.param == "currency"
    assert f"({usd.id}) is in `usd`" in refused.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.subscriptions.create(
            {
                "customer": customer.id,
                "currency": "jpy",
                "items": [{"price": jpy.id}, {"price": usd.id}],
            }
        )
    assert refused.value.param == "currency"
    assert "items[1][price]" in refused.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.subscriptions.create(
            {"customer": customer.id, "currency": "yen!", "items": [{"price": jpy.id}]}
        )
    assert refused.value.param == "currency"
    # Nothing was created by the refused calls.
    assert client.v1.subscriptions.list({"customer": customer.id}).data == []
    # Upper case is Stripe's lower case.
    sub = client.v1.subscriptions.create(
        {"customer": customer.id, "currency": "JPY", "items": [{"price": jpy.id}]}
    )
    assert sub.currency == "jpy"


def test_a_customer_cannot_have_live_subscriptions_in_two_currencies(client):
    _, customer = clock_customer(client)
    usd = _licensed(client, "usd", 9900)
    jpy = _licensed(client, "jpy", 1500)
    first = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": usd.id}]})
    # "You can't have two active subscriptions with different currencies."
    # (https://docs.stripe.com/invoicing/multi-currency-customers)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": jpy.id}]})
    assert refused.value.http_status == 400
    assert refused.value.param == "currency"
    assert "cannot combine currencies" in refused.value.user_message
    assert "currency usd" in refused.value.user_message
    # A second one in the same currency is fine.
    second_usd = _licensed(client, "usd", 500, "Add-on")
    client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": second_usd.id}]})
    # Once every usd subscription has ended, the customer may subscribe in jpy.
    for sub in client.v1.subscriptions.list({"customer": customer.id}).data:
        client.v1.subscriptions.cancel(sub.id)
    assert first.id in {
        s.id for s in client.v1.subscriptions.list({"customer": customer.id, "status": "canceled"})
    }
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": jpy.id}]})
    assert sub.currency == "jpy"


def test_an_item_in_another_currency_cannot_be_added_later(client):
    _, customer = clock_customer(client)
    jpy = _licensed(client, "jpy", 1500)
    kwd = _licensed(client, "kwd", 2770)
    sub = client.v1.subscriptions.create(
        {"customer": customer.id, "currency": "jpy", "items": [{"price": jpy.id}]}
    )
    with pytest.raises(stripe.InvalidRequestError, match="same currency") as refused:
        client.v1.subscriptions.update(sub.id, {"items": [{"price": kwd.id}]})
    assert refused.value.param == "items[0][price]"
