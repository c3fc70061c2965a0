"""Billing credits in the emulator, through stripe-python against the running emulator.

The rules are Stripe's as /work/notes/stripe_credits.md quotes them
(https://docs.stripe.com/billing/subscriptions/usage-based/billing-credits, the API
reference https://docs.stripe.com/api/billing/credit-grant and stripe-python 15's
generated params). Every amount is in cents and worked by hand in a comment. Time is
pinned by test clocks (T0 = 2026-01-01, FEB_1 = the first monthly period's end).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import urllib.request
import uuid
from pathlib import Path

import pytest
import stripe

from .helpers import (
    DRAFT_HOUR,
    FEB_1,
    MAR_1,
    T0,
    advance,
    clock_customer,
    meter,
    metered_price,
    product,
    renewal_invoice,
    send_usage,
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


# -- application at finalization ----------------------------------------------------------
def credited(line) -> list[int]:
    return [c.amount for c in line.pretax_credit_amounts or []]


def test_priority_decides_the_order_and_150_less_120_is_charged(client):
    clock, customer, sub, [(m, _)] = metered_setup(client)
    # Priority 10 beats priority 20 though the promotional one would win a tie.
    paid = grant(client, customer.id, 10_000, priority=10)
    promo = grant(client, customer.id, 2_000, category="promotional", priority=20)
    send_usage(client, customer.id, m.event_name, [15_000])  # 15,000 units × 1¢ = 15,000
    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    invoice = renewal_invoice(client, sub.id)
    [line] = invoice.lines.data
    # 15,000 − 10,000 (paid, priority 10) − 2,000 (promotional, priority 20) = 3,000
    assert credited(line) == [10_000, 2_000]
    assert (invoice.subtotal, invoice.total, invoice.amount_due) == (15_000, 3_000, 3_000)
    assert (invoice.total_excluding_tax, invoice.amount_paid, invoice.status) == (
        3_000, 3_000, "paid"
    )  # fmt: skip
    assert [c.amount for c in invoice.total_pretax_credit_amounts] == [10_000, 2_000]
    first = line.pretax_credit_amounts[0]
    assert (first.type, first.discount) == ("credit_balance_transaction", None)
    debit = client.v1.billing.credit_balance_transactions.retrieve(first.credit_balance_transaction)
    assert (debit.credit_grant, debit.type, debit.debit.type) == (
        paid.id, "debit", "credits_applied"
    )  # fmt: skip
    assert debit.debit.credits_applied.invoice == invoice.id
    assert debit.debit.credits_applied.invoice_line_item == line.id
    assert debit.effective_at == FEB_1 + DRAFT_HOUR  # at finalization
    assert txns(client, promo.id) == [
        ("credit", "credits_granted", 2_000), ("debit", "credits_applied", 2_000)
    ]  # fmt: skip
    assert summary(client, customer.id) == (0, 0)  # both used up


def test_promotional_first_when_priorities_tie(client):
    clock, customer, sub, [(m, _)] = metered_setup(client)
    paid = grant(client, customer.id, 10_000)  # priority 50 (default), created first
    promo = grant(client, customer.id, 10_000, category="promotional")  # priority 50
    send_usage(client, customer.id, m.event_name, [15_000])  # 15,000¢
    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    invoice = renewal_invoice(client, sub.id)
    # same priority, neither expires: promotional first, 10,000; paid takes 15,000 − 10,000
    assert credited(invoice.lines.data[0]) == [10_000, 5_000]
    assert (invoice.total, invoice.status) == (0, "paid")
    assert txns(client, promo.id)[-1] == ("debit", "credits_applied", 10_000)
    assert txns(client, paid.id)[-1] == ("debit", "credits_applied", 5_000)
    assert summary(client, customer.id) == (5_000, 5_000)  # 10,000 − 5,000 left on paid


def test_earlier_expiry_first_and_no_expiry_last(client):
    clock, customer, sub, [(m, _)] = metered_setup(client)
    never = grant(client, customer.id, 1_000, category="promotional")
    late = grant(client, customer.id, 1_000, expires_at=MAR_1 + 86400)
    soon = grant(client, customer.id, 1_000, expires_at=MAR_1)
    send_usage(client, customer.id, m.event_name, [2_500])  # 2,500¢
    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    [line] = renewal_invoice(client, sub.id).lines.data
    grants = [
        client.v1.billing.credit_balance_transactions.retrieve(
            c.credit_balance_transaction
        ).credit_grant
        for c in line.pretax_credit_amounts
    ]
    # expires MAR_1 (1,000), then MAR_1 + 1 day (1,000), then the one that never expires
    # (500 of 2,500 − 2,000) -- even though it is promotional
    assert grants == [soon.id, late.id, never.id] and credited(line) == [1_000, 1_000, 500]


def test_a_grant_expiring_mid_period_does_not_apply_and_its_rest_expires(client):
    clock, customer, sub, [(m, _)] = metered_setup(client)
    gone = grant(client, customer.id, 5_000, expires_at=JAN_20)
    # effective mid-period: period_end (FEB_1) is on or after JAN_15, so it applies
    late_start = grant(client, customer.id, 1_000, effective_at=JAN_15)
    send_usage(client, customer.id, m.event_name, [3_000])  # 3,000¢, all before JAN_20
    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    invoice = renewal_invoice(client, sub.id)
    # period_end FEB_1 is not before expires_at JAN_20: only the 1,000 grant applies
    assert credited(invoice.lines.data[0]) == [1_000]
    assert invoice.total == 2_000  # 3,000 − 1,000
    assert txns(client, gone.id) == [
        ("credit", "credits_granted", 5_000), ("debit", "credits_expired", 5_000)
    ]  # fmt: skip
    [expiry] = [
        t
        for t in client.v1.billing.credit_balance_transactions.list({"credit_grant": gone.id})
        if t.type == "debit"
    ]
    assert expiry.effective_at == JAN_20
    assert txns(client, late_start.id)[-1] == ("debit", "credits_applied", 1_000)


def test_a_price_scoped_grant_leaves_the_other_metered_line_uncredited(client):
    clock, customer, sub, pairs = metered_setup(client, prices=2)
    (m_a, price_a), (m_b, _) = pairs
    only_a = client.v1.billing.credit_grants.create(
        {"customer": customer.id,
         "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": 10_000}},
         "applicability_config": {"scope": {"prices": [{"id": price_a.id}]}}}
    )  # fmt: skip
    send_usage(client, customer.id, m_a.event_name, [5_000])  # line A: 5,000¢
    send_usage(client, customer.id, m_b.event_name, [4_000])  # line B: 4,000¢
    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    invoice = renewal_invoice(client, sub.id)
    by_price = {line.pricing.price_details.price: line for line in invoice.lines.data}
    assert credited(by_price[price_a.id]) == [5_000]
    assert credited(next(v for k, v in by_price.items() if k != price_a.id)) == []
    # 5,000 + 4,000 − 5,000 = 4,000 charged; 10,000 − 5,000 = 5,000 left on the grant
    assert (invoice.subtotal, invoice.total) == (9_000, 4_000)
    assert summary(client, customer.id, type="credit_grant", credit_grant=only_a.id) == (
        5_000, 5_000
    )  # fmt: skip


def test_a_licensed_line_is_never_credited(client):
    clock, customer = clock_customer(client)
    prod = product(client)
    m = meter(client, "mixed_units")
    metered = metered_price(client, prod.id, m.id, unit_amount=1)
    licensed = client.v1.prices.create(
        {"product": prod.id, "currency": "usd", "unit_amount": 2_000,
         "recurring": {"interval": "month"}}
    )  # fmt: skip
    sub = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": licensed.id}, {"price": metered.id}]}
    )
    first = client.v1.invoices.retrieve(sub.latest_invoice)
    assert first.total == 2_000 and first.total_pretax_credit_amounts == []  # before the grant
    g = grant(client, customer.id, 10_000)
    send_usage(client, customer.id, m.event_name, [3_000])  # 3,000¢
    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    invoice = renewal_invoice(client, sub.id)
    lines = {line.pricing.price_details.price: line for line in invoice.lines.data}
    assert credited(lines[licensed.id]) == [] and credited(lines[metered.id]) == [3_000]
    # 2,000 (licensed, next period) + 3,000 (metered) − 3,000 = 2,000 charged
    assert (invoice.subtotal, invoice.total, invoice.amount_paid) == (5_000, 2_000, 2_000)
    assert summary(client, customer.id, type="credit_grant", credit_grant=g.id) == (
        7_000, 7_000
    )  # 10,000 − 3,000  # fmt: skip


def test_voiding_the_invoice_reinstates_and_an_expired_grant_expires_at_once(client):
    clock, customer, sub, [(m, _)] = metered_setup(client, pm=None)
    short = grant(client, customer.id, 5_000, priority=0, expires_at=FEB_10)
    lasting = grant(client, customer.id, 10_000)
    send_usage(client, customer.id, m.event_name, [20_000])  # 20,000¢
    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    invoice = renewal_invoice(client, sub.id)
    # 20,000 − 5,000 (priority 0) − 10,000 = 5,000 due; no card, so it stays open
    assert credited(invoice.lines.data[0]) == [5_000, 10_000]
    assert (invoice.status, invoice.amount_due) == ("open", 5_000)
    with pytest.raises(stripe.InvalidRequestError, match="applied to an invoice"):
        client.v1.billing.credit_grants.void_grant(lasting.id)
    advance(client, clock.id, FEB_15)  # short expired on FEB_10 with nothing left
    assert txns(client, short.id)[-1] == ("debit", "credits_applied", 5_000)
    voided = client.v1.invoices.void_invoice(invoice.id)
    assert voided.status == "void"
    # reinstated: 5,000 back on the expired grant, expired at once; 10,000 back on the other
    assert txns(client, short.id)[-2:] == [
        ("credit", "credits_application_invoice_voided", 5_000),
        ("debit", "credits_expired", 5_000),
    ]
    assert txns(client, lasting.id)[-1] == (
        "credit", "credits_application_invoice_voided", 10_000
    )  # fmt: skip
    listed = client.v1.billing.credit_balance_transactions.list({"credit_grant": lasting.id})
    back = [t for t in listed if t.credit and t.credit.credits_application_invoice_voided]
    assert back[0].credit.credits_application_invoice_voided.invoice == invoice.id
    assert back[0].effective_at == FEB_15
    assert summary(client, customer.id) == (10_000, 10_000)
    # reinstated credits no longer count as applied: the grant can be voided now
    assert client.v1.billing.credit_grants.void_grant(lasting.id).voided_at == FEB_15


def test_a_pending_draft_lowers_the_available_balance_not_the_ledger(client):
    clock, customer, sub, [(m, _)] = metered_setup(client)
    g = grant(client, customer.id, 10_000)
    send_usage(client, customer.id, m.event_name, [3_000])  # 3,000¢
    preview = client.v1.invoices.create_preview({"subscription": sub.id})
    # the preview shows the credits it would take: 3,000 − 3,000 = 0
    assert credited(preview.lines.data[0]) == [3_000] and preview.total == 0
    assert preview.lines.data[0].pretax_credit_amounts[0].credit_balance_transaction is None
    assert summary(client, customer.id) == (10_000, 10_000)  # a preview holds nothing
    advance(client, clock.id, FEB_1)  # the renewal is a draft for an hour
    draft = renewal_invoice(client, sub.id)
    assert draft.status == "draft" and credited(draft.lines.data[0]) == [3_000]
    assert (draft.subtotal, draft.total, draft.amount_due) == (3_000, 0, 0)
    # available 10,000 − 3,000 shown on the draft = 7,000; the ledger keeps 10,000
    assert summary(client, customer.id) == (7_000, 10_000)
    assert txns(client, g.id) == [("credit", "credits_granted", 10_000)]
    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    final = renewal_invoice(client, sub.id)
    assert final.status == "paid" and final.amount_paid == 0
    assert final.lines.data[0].pretax_credit_amounts[0].credit_balance_transaction
    assert summary(client, customer.id) == (7_000, 7_000)  # now in the ledger


def test_a_grant_made_while_the_draft_is_pending_shows_on_it(client):
    clock, customer, sub, [(m, _)] = metered_setup(client)
    send_usage(client, customer.id, m.event_name, [3_000])  # 3,000¢
    advance(client, clock.id, FEB_1)
    assert renewal_invoice(client, sub.id).total == 3_000
    # effective now (FEB_1 + 0), on or before period_end FEB_1: eligible
    grant(client, customer.id, 1_000)
    draft = renewal_invoice(client, sub.id)
    assert (draft.total, credited(draft.lines.data[0])) == (2_000, [1_000])  # 3,000 − 1,000


# -- one-off invoices (a purchase of credits) ----------------------------------------------
def test_a_one_off_invoice_for_a_credit_purchase_takes_no_credits(client):
    _, customer, _, _ = metered_setup(client)
    g = grant(client, customer.id, 10_000)
    item = client.v1.invoice_items.create(
        {"customer": customer.id, "amount": 5_000, "currency": "usd",
         "description": "Credit pack ($50)", "metadata": {"pack": "50"}}
    )  # fmt: skip
    assert item.id.startswith("ii_") and item.object == "invoiceitem"
    assert (item.invoice, item.amount, item.quantity, item.date) == (None, 5_000, 1, T0)
    listed = client.v1.invoice_items.list({"customer": customer.id, "pending": True}).data
    assert [i.id for i in listed] == [item.id]
    invoice = client.v1.invoices.create(
        {"customer": customer.id, "currency": "usd", "collection_method": "charge_automatically",
         "auto_advance": False, "pending_invoice_items_behavior": "include"}
    )  # fmt: skip
    assert (invoice.status, invoice.total, invoice.auto_advance) == ("draft", 5_000, False)
    [line] = invoice.lines.data
    assert line.parent.type == "invoice_item_details"
    assert line.parent.invoice_item_details.invoice_item == item.id
    assert client.v1.invoice_items.retrieve(item.id).invoice == invoice.id
    finalized = client.v1.invoices.finalize_invoice(invoice.id)
    # a one-off invoice is never credited: 5,000 due, the grant untouched
    assert (finalized.status, finalized.amount_due) == ("open", 5_000)
    assert finalized.total_pretax_credit_amounts == []
    assert finalized.lines.data[0].pretax_credit_amounts == []
    paid = client.v1.invoices.pay(invoice.id)
    assert (paid.status, paid.amount_paid) == ("paid", 5_000)
    assert summary(client, customer.id, type="credit_grant", credit_grant=g.id) == (
        10_000, 10_000
    )  # fmt: skip
    # a finalized invoice's items can no longer change
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoice_items.update(item.id, {"amount": 1})


def test_invoice_items_added_to_a_draft_and_left_out_by_default(client):
    _, customer = clock_customer(client)
    pending_item = client.v1.invoice_items.create(
        {"customer": customer.id, "amount": 700, "currency": "usd"}
    )
    invoice = client.v1.invoices.create({"customer": customer.id, "currency": "usd"})
    assert invoice.total == 0  # pending_invoice_items_behavior defaults to exclude
    one_time = client.v1.prices.create(
        {"product": product(client).id, "currency": "usd", "unit_amount_decimal": "12.5"}
    )
    client.v1.invoice_items.create(
        {"customer": customer.id, "invoice": invoice.id, "pricing": {"price": one_time.id},
         "quantity": 3}
    )  # fmt: skip
    client.v1.invoice_items.create(
        {"customer": customer.id, "invoice": invoice.id, "amount": -100, "currency": "usd"}
    )
    invoice = client.v1.invoices.retrieve(invoice.id)
    # 12.5¢ × 3 = 37.5¢, rounded half up to 38¢; 38 − 100 = −62
    assert [line.amount for line in invoice.lines.data] == [38, -100]
    assert (invoice.subtotal, invoice.total) == (-62, -62)
    assert client.v1.invoice_items.retrieve(pending_item.id).invoice is None
    client.v1.invoice_items.delete(invoice.lines.data[1].parent.invoice_item_details.invoice_item)
    assert client.v1.invoices.retrieve(invoice.id).total == 38


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"customer": None}, "customer"),
        ({"amount": None}, "amount"),  # no amount source at all
        ({"amount": "ten"}, "amount"),
        ({"currency": None}, "currency"),  # the customer has no currency
        ({"colour": "red"}, "colour"),
        ({"tax_rates": ["txr_1"]}, "tax_rates"),
        ({"invoice": "in_missing"}, "invoice"),
        ({"amount": None, "pricing": {"price": "price_missing"}}, "pricing[price]"),
        ({"pricing": {"price": "price_missing"}}, "pricing"),  # and amount: two sources
    ],
)
def test_invoice_item_refusals_name_the_param(client, change, param):
    _, customer = clock_customer(client)
    params = {"customer": customer.id, "amount": 100, "currency": "usd", **change}
    params = {k: v for k, v in params.items() if v is not None}
    with pytest.raises(stripe.StripeError) as info:
        client.v1.invoice_items.create(params)
    assert info.value.http_status in (400, 404)
    assert info.value.param == param, info.value.user_message


def test_recurring_price_refused_and_invoice_item_on_finalized_invoice_refused(client):
    _, customer, sub, [(_, metered)] = metered_setup(client)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoice_items.create({"customer": customer.id, "pricing": {"price": metered.id}})
    assert info.value.param == "pricing[price]"
    first = client.v1.invoices.retrieve(sub.latest_invoice)  # the subscription's, finalized
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoice_items.create(
            {"customer": customer.id, "invoice": first.id, "amount": 1, "currency": "usd"}
        )
    assert info.value.param == "invoice"


def test_a_pending_item_joins_the_renewal_but_takes_no_credits(client):
    clock, customer, sub, [(m, _)] = metered_setup(client)
    grant(client, customer.id, 10_000)
    item = client.v1.invoice_items.create(
        {"customer": customer.id, "amount": 4_000, "currency": "usd", "description": "Setup"}
    )
    send_usage(client, customer.id, m.event_name, [1_000])  # 1,000¢
    preview = client.v1.invoices.create_preview({"subscription": sub.id})
    assert sorted(line.amount for line in preview.lines.data) == [1_000, 4_000]
    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    invoice = renewal_invoice(client, sub.id)
    by_type = {line.parent.type: line for line in invoice.lines.data}
    assert credited(by_type["subscription_item_details"]) == [1_000]
    assert credited(by_type["invoice_item_details"]) == []
    # 1,000 + 4,000 − 1,000 = 4,000 charged
    assert (invoice.subtotal, invoice.total, invoice.amount_paid) == (5_000, 4_000, 4_000)
    assert client.v1.invoice_items.retrieve(item.id).invoice == invoice.id


STRIPE = Path(importlib.util.find_spec("stripe").origin).parent


def _fields(module: str, *names: str) -> set[str]:
    """The annotated fields of a stripe-python 15 class (nested names for inner classes)."""
    body = ast.parse((STRIPE / module).read_text(encoding="utf-8")).body
    for name in names:
        (cls,) = [n for n in body if isinstance(n, ast.ClassDef) and n.name == name]
        body = cls.body
    return {s.target.id for s in body if isinstance(s, ast.AnnAssign)}


def test_every_served_key_exists_in_stripe_python_15(client):
    clock, customer, sub, [(m, _)] = metered_setup(client)
    g = grant(client, customer.id, 1_000)
    item = client.v1.invoice_items.create(
        {"customer": customer.id, "amount": 100, "currency": "usd"}
    )
    send_usage(client, customer.id, m.event_name, [500])  # 500¢, all credited
    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    invoice = renewal_invoice(client, sub.id)
    metered_line = next(x for x in invoice.lines.data if x.parent.type != "invoice_item_details")
    item_line = next(x for x in invoice.lines.data if x.parent.type == "invoice_item_details")
    txn = client.v1.billing.credit_balance_transactions.list({"credit_grant": g.id}).data
    served = {
        ("billing/_credit_grant.py", "CreditGrant"): [g],
        ("billing/_credit_balance_transaction.py", "CreditBalanceTransaction"): txn,
        ("billing/_credit_balance_transaction.py", "CreditBalanceTransaction", "Debit"): [
            t.debit for t in txn if t.debit
        ],
        ("billing/_credit_balance_summary.py", "CreditBalanceSummary"): [
            client.v1.billing.credit_balance_summary.retrieve(
                {"customer": customer.id, "filter": {"type": "credit_grant", "credit_grant": g.id}}
            )
        ],
        ("_invoice_item.py", "InvoiceItem"): [client.v1.invoice_items.retrieve(item.id)],
        ("_invoice_line_item.py", "InvoiceLineItem"): [metered_line, item_line],
        ("_invoice_line_item.py", "InvoiceLineItem", "PretaxCreditAmount"): (
            metered_line.pretax_credit_amounts
        ),
        ("_invoice.py", "Invoice"): [invoice],
    }
    assert all(served.values())
    extra = {
        key: sorted({k for obj in objs for k in obj.to_dict()} - _fields(*key) - {"id"})
        for key, objs in served.items()
    }
    assert extra == {key: [] for key in served}
    fixture = json.loads(FIXTURES.read_text())["resources"]["invoiceitem"]
    assert set(fixture) - set(client.v1.invoice_items.retrieve(item.id).to_dict()) == set()


def test_a_real_time_grant_expires_when_real_time_passes_expires_at(client, emulator):
    customer = client.v1.customers.create({"email": "no-clock@example.com"})
    g = grant(client, customer.id, 800)
    now = g.effective_at  # the emulator's real time when created
    client.v1.billing.credit_grants.update(g.id, {"expires_at": now + 3600})
    assert summary(client, customer.id) == (800, 800)
    request = urllib.request.Request(
        f"{emulator}/_emulator/time/advance", data=b"seconds=3600", method="POST"
    )
    urllib.request.urlopen(request, timeout=10).read()  # real time + 1 hour
    # expired at now + 3600 with all 800 left: 800 − 800 = 0
    assert txns(client, g.id) == [
        ("credit", "credits_granted", 800), ("debit", "credits_expired", 800)
    ]  # fmt: skip
    assert summary(client, customer.id) == (0, 0)


def test_a_one_off_draft_with_auto_advance_is_finalized_an_hour_later(client):
    clock, customer = clock_customer(client)
    client.v1.invoice_items.create({"customer": customer.id, "amount": 2_500, "currency": "usd"})
    invoice = client.v1.invoices.create(
        {"customer": customer.id, "auto_advance": True,
         "pending_invoice_items_behavior": "include"}
    )  # fmt: skip
    assert (invoice.status, invoice.automatically_finalizes_at) == ("draft", T0 + DRAFT_HOUR)
    advance(client, clock.id, T0 + DRAFT_HOUR)
    paid = client.v1.invoices.retrieve(invoice.id)
    # charged to the card: 2,500, no credits on a one-off invoice
    assert (paid.status, paid.amount_paid, paid.total_pretax_credit_amounts) == ("paid", 2_500, [])


def test_a_preview_counts_a_grant_effective_later_in_the_period(client):
    _, customer, sub, [(m, _)] = metered_setup(client)
    g = grant(client, customer.id, 600, effective_at=JAN_20)  # pending until JAN_20
    send_usage(client, customer.id, m.event_name, [1_000])  # 1,000¢
    preview = client.v1.invoices.create_preview({"subscription": sub.id})
    # JAN_20 is on or before period_end FEB_1: the preview shows it, 1,000 − 600 = 400
    assert (credited(preview.lines.data[0]), preview.total) == ([600], 400)
    # pending: neither available nor in the ledger yet
    assert summary(client, customer.id, type="credit_grant", credit_grant=g.id) == (0, 0)


def test_a_subscription_draft_cannot_be_deleted(client):
    clock, customer, sub, [(m, _)] = metered_setup(client)
    grant(client, customer.id, 500)
    send_usage(client, customer.id, m.event_name, [200])  # 200¢
    advance(client, clock.id, FEB_1)
    draft = renewal_invoice(client, sub.id)
    assert (draft.status, draft.total) == ("draft", 0)  # 200 − 200 shown provisionally
    with pytest.raises(stripe.InvalidRequestError, match="one-off"):
        client.v1.invoices.delete(draft.id)
