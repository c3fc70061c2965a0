"""Billing credits in the emulator, through stripe-python against the running emulator.

The rules are Stripe's as /work/notes/stripe_credits.md quotes them
(https://docs.stripe.com/billing/subscriptions/usage-based/billing-credits, the API
reference https://docs.stripe.com/api/billing/credit-grant and stripe-python 15's
generated params). Every amount is in cents and worked by hand in a comment. Time is
pinned by test clocks (T0 = 2026-01-01, FEB_1 = the first monthly period's end).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import stripe

from .helpers import (
    FEB_1,
    MAR_1,
    T0,
    advance,
    clock_customer,
    meter,
    metered_price,
    product,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "fixtures3.json"
JAN_15 = T0 + 14 * 86400  # 2026-01-15T00:00:00Z
JAN_20 = T0 + 19 * 86400  # 2026-01-20T00:00:00Z
FEB_10 = FEB_1 + 9 * 86400  # 2026-02-10T00:00:00Z
FEB_15 = FEB_1 + 14 * 86400  # 2026-02-15T00:00:00Z


def grant(client, customer_id: str, value: int, **extra):
    return client.v1.billing.credit_grants.create(
        {
            "customer": customer_id,
            "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": value}},
            "applicability_config": {"scope": {"price_type": "metered"}},
            **extra,
        }
    )


def summary(client, customer_id: str, **filt) -> tuple[int, int]:
    """(available, ledger) in USD for the customer, all metered-scoped credits."""
    answer = client.v1.billing.credit_balance_summary.retrieve(
        {
            "customer": customer_id,
            "filter": filt or {"type": "applicability_scope",
                               "applicability_scope": {"price_type": "metered"}},
        }
    )  # fmt: skip
    assert answer.object == "billing.credit_balance_summary"
    [usd] = [b for b in answer.balances if b.ledger_balance.monetary.currency == "usd"]
    return usd.available_balance.monetary.value, usd.ledger_balance.monetary.value


def txns(client, grant_id: str) -> list[tuple[str, str, int]]:
    """(type, credit/debit type, amount) oldest first."""
    data = client.v1.billing.credit_balance_transactions.list(
        {"credit_grant": grant_id, "limit": 100}
    ).data
    out = []
    for t in reversed(data):
        detail = t.credit if t.type == "credit" else t.debit
        out.append((t.type, detail.type, detail.amount.monetary.value))
    return out


def metered_setup(client, *, pm="pm_card_visa", unit_amount=1, prices=1):
    """A customer on a clock at T0 subscribed to ``prices`` metered prices (each on its own
    meter) at ``unit_amount`` cents a unit. Returns (clock, customer, sub, [(meter, price)])."""
    clock, customer = clock_customer(client, pm)
    prod = product(client)
    pairs = []
    for _ in range(prices):
        m = meter(client, f"units_{uuid.uuid4().hex[:8]}")
        pairs.append((m, metered_price(client, prod.id, m.id, unit_amount=unit_amount)))
    sub = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": p.id} for _, p in pairs]}
    )
    return clock, customer, sub, pairs


def bad(call, *args) -> stripe.InvalidRequestError:
    with pytest.raises(stripe.InvalidRequestError) as info:
        call(*args)
    assert info.value.http_status == 400
    return info.value


# -- the credit grant resource ------------------------------------------------------------
def test_create_retrieve_list_update_expire_void(client):
    clock, customer = clock_customer(client)
    first = grant(client, customer.id, 10_000, name="Welcome credit", metadata={"k": "v"})
    assert first.id.startswith("credgr_") and first.object == "billing.credit_grant"
    assert (first.category, first.priority, first.name) == ("paid", 50, "Welcome credit")
    # effective_at defaults to now: the customer's clock time, T0
    assert (first.effective_at, first.expires_at, first.voided_at) == (T0, None, None)
    assert (first.created, first.updated, first.test_clock) == (T0, T0, clock.id)
    assert first.customer == customer.id and first.metadata.to_dict() == {"k": "v"}
    assert first.amount.to_dict() == {
        "type": "monetary", "monetary": {"currency": "usd", "value": 10_000}
    }  # fmt: skip
    assert first.applicability_config.scope.price_type == "metered"
    # the grant is credited to its ledger when created, effective at effective_at
    [created] = client.v1.billing.credit_balance_transactions.list({"customer": customer.id}).data
    assert created.id.startswith("cbtxn_") and created.effective_at == T0
    assert (created.type, created.credit.type, created.debit) == ("credit", "credits_granted", None)
    assert created.credit.amount.monetary.value == 10_000
    again = client.v1.billing.credit_balance_transactions.retrieve(created.id)
    assert again.credit_grant == first.id

    second = grant(client, customer.id, 2_000, category="promotional", priority=0)
    assert (second.category, second.priority) == ("promotional", 0)
    assert client.v1.billing.credit_grants.retrieve(first.id).to_dict() == first.to_dict()
    listed = client.v1.billing.credit_grants.list({"customer": customer.id}).data
    assert [g.id for g in listed] == [second.id, first.id]  # newest first
    page = client.v1.billing.credit_grants.list({"customer": customer.id, "limit": 1})
    assert page.has_more and [g.id for g in page.data] == [second.id]
    # 10,000 + 2,000 = 12,000 available and in the ledger
    assert summary(client, customer.id) == (12_000, 12_000)

    updated = client.v1.billing.credit_grants.update(
        first.id, {"expires_at": MAR_1, "metadata": {"k": "", "note": "renewed"}}
    )
    assert (updated.expires_at, updated.metadata.to_dict()) == (MAR_1, {"note": "renewed"})
    cleared = client.v1.billing.credit_grants.update(first.id, {"expires_at": ""})
    assert cleared.expires_at is None  # "If set to empty, the billing credits never expire"

    advance(client, clock.id, JAN_15)
    expired = client.v1.billing.credit_grants.expire(first.id)
    assert (expired.expires_at, expired.voided_at, expired.updated) == (JAN_15, None, JAN_15)
    # the 10,000 left is debited: 10,000 − 10,000 = 0
    assert txns(client, first.id) == [
        ("credit", "credits_granted", 10_000), ("debit", "credits_expired", 10_000)
    ]  # fmt: skip
    voided = client.v1.billing.credit_grants.void_grant(second.id)
    assert voided.voided_at == JAN_15
    assert txns(client, second.id) == [
        ("credit", "credits_granted", 2_000), ("debit", "credits_voided", 2_000)
    ]  # fmt: skip
    assert summary(client, customer.id) == (0, 0)
    assert bad(client.v1.billing.credit_grants.void_grant, second.id).param == "id"
    assert bad(client.v1.billing.credit_grants.expire, first.id).param == "id"
    assert (
        bad(client.v1.billing.credit_grants.update, first.id, {"expires_at": MAR_1}).param
        == "expires_at"
    )


def test_credit_grant_events(client, webhook_receiver):
    client.v1.webhook_endpoints.create({"url": webhook_receiver.url, "enabled_events": ["*"]})
    _, customer = clock_customer(client)
    g = grant(client, customer.id, 500)
    client.v1.billing.credit_grants.update(g.id, {"metadata": {"a": "b"}})

    def types(deliveries):
        return [d["type"] for d in deliveries if g.id in d["body"]]

    webhook_receiver.wait_for(lambda d: "billing.credit_grant.updated" in types(d))
    assert types(webhook_receiver.deliveries) == [
        "billing.credit_grant.created",
        "billing.credit_balance_transaction.created",
        "billing.credit_grant.updated",
    ]
    updated = [d for d in webhook_receiver.deliveries if d["type"].endswith("grant.updated")]
    body = json.loads(updated[0]["body"])
    assert body["data"]["previous_attributes"]["metadata"] == {}


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"amount": {"type": "custom_pricing_unit"}}, "amount[type]"),
        ({"amount": {"type": "monetary", "monetary": {"currency": "usd", "value": 0}}},
         "amount[monetary][value]"),
        ({"amount": {"type": "monetary", "monetary": {"currency": "usd", "value": -5}}},
         "amount[monetary][value]"),
        ({"amount": {"type": "monetary", "monetary": {"currency": "dollars", "value": 5}}},
         "amount[monetary][currency]"),
        ({"amount": {"type": "monetary"}}, "amount[monetary]"),
        ({"applicability_config": {"scope": {"price_type": "licensed"}}},
         "applicability_config[scope][price_type]"),
        ({"category": "gift"}, "category"),
        ({"priority": 101}, "priority"),
        ({"priority": -1}, "priority"),
        ({"expires_at": T0}, "expires_at"),  # not after effective_at (T0)
        ({"effective_at": FEB_1, "expires_at": JAN_15}, "expires_at"),
        ({"colour": "gold"}, "colour"),
        ({"customer": "cus_missing"}, "customer"),
        ({"customer": ""}, "customer"),
    ],
)  # fmt: skip
def test_create_refusals_name_the_param(client, change, param):
    _, customer = clock_customer(client)
    params = {
        "customer": customer.id,
        "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": 100}},
        "applicability_config": {"scope": {"price_type": "metered"}},
        **change,
    }
    with pytest.raises(stripe.StripeError) as info:
        client.v1.billing.credit_grants.create(params)
    assert info.value.http_status in (400, 404)
    assert info.value.param == param, info.value.user_message


def test_scope_must_be_one_form_of_metered_prices(client):
    _, customer = clock_customer(client)
    prod = product(client)
    m = meter(client, "scope_units")
    metered = metered_price(client, prod.id, m.id, unit_amount=1)
    licensed = client.v1.prices.create(
        {"product": prod.id, "currency": "usd", "unit_amount": 100,
         "recurring": {"interval": "month"}}
    )  # fmt: skip
    base = {
        "customer": customer.id,
        "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": 100}},
    }

    def scope(value):
        return bad(
            client.v1.billing.credit_grants.create,
            {**base, "applicability_config": {"scope": value}},
        ).param

    both = {"price_type": "metered", "prices": [{"id": metered.id}]}
    assert scope(both) == "applicability_config[scope][prices]"
    assert scope({"prices": [{"id": licensed.id}]}) == "applicability_config[scope][prices][0][id]"
    assert (
        scope({"prices": [{"id": metered.id}, {"id": licensed.id}]})
        == "applicability_config[scope][prices][1][id]"
    )
    twenty_one = {"prices": [{"id": metered.id}] * 21}  # "Limit 20 prices"
    assert scope(twenty_one) == "applicability_config[scope][prices]"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.billing.credit_grants.create(
            {**base, "applicability_config": {"scope": {"prices": [{"id": "price_nope"}]}}}
        )
    assert missing.value.param == "applicability_config[scope][prices][0][id]"
    ok = client.v1.billing.credit_grants.create(
        {**base, "applicability_config": {"scope": {"prices": [{"id": metered.id}]}}}
    )
    assert [p.id for p in ok.applicability_config.scope.prices] == [metered.id]


def test_update_takes_only_expires_at_and_metadata(client):
    _, customer = clock_customer(client)
    g = grant(client, customer.id, 100)
    for field, value in (("priority", 1), ("category", "promotional"), ("name", "x")):
        assert bad(client.v1.billing.credit_grants.update, g.id, {field: value}).param == field
    assert (
        bad(client.v1.billing.credit_grants.update, g.id, {"expires_at": T0 - 1}).param
        == "expires_at"
    )  # before effective_at


def test_summary_and_transactions_refusals(client):
    _, customer = clock_customer(client)
    summaries = client.v1.billing.credit_balance_summary.retrieve
    assert bad(summaries, {"customer": customer.id}).param == "filter"
    assert (
        bad(summaries, {"customer": customer.id, "filter": {"type": "credit_grant"}}).param
        == "filter[credit_grant]"
    )
    assert (
        bad(summaries, {"customer": customer.id, "filter": {"type": "applicability_scope"}}).param
        == "filter[applicability_scope]"
    )
    assert bad(
        summaries, {"filter": {"type": "applicability_scope",
                               "applicability_scope": {"price_type": "metered"}}}
    ).param == "customer"  # fmt: skip
    assert bad(client.v1.billing.credit_balance_transactions.list, {}).param == "customer"
    assert (
        bad(
            client.v1.billing.credit_balance_transactions.list, {"customer": customer.id, "x": 1}
        ).param
        == "x"
    )


def test_at_most_100_unused_grants_per_customer(client):
    _, customer = clock_customer(client)
    grants = [grant(client, customer.id, 1) for _ in range(100)]
    with pytest.raises(stripe.InvalidRequestError, match="100 unused credit grants"):
        grant(client, customer.id, 1)
    client.v1.billing.credit_grants.void_grant(grants[0].id)  # a voided grant is not unused
    assert grant(client, customer.id, 1).id


def test_shapes_have_every_fixture_key(client):
    _, customer = clock_customer(client)
    g = grant(client, customer.id, 100)
    [t] = client.v1.billing.credit_balance_transactions.list({"credit_grant": g.id}).data
    s = client.v1.billing.credit_balance_summary.retrieve(
        {"customer": customer.id, "filter": {"type": "credit_grant", "credit_grant": g.id}}
    )
    fixtures = json.loads(FIXTURES.read_text())["resources"]
    for served in (g, t, s):
        assert set(fixtures[served.object]) <= set(served.to_dict()), served.object
    assert s.balances[0].available_balance.monetary.value == 100
