"""Billing credits: the pricing engine against the emulator's finalized invoices, to the cent.

Each case runs a customer on a test clock through one monthly period on the real
emulator (over HTTP, stripe-python): metered prices, usage as meter events, credit
grants created through ``POST /v1/billing/credit_grants``, then the clock moves past
the period end and the hour the renewal stays a draft, so the invoice is finalized and
Stripe's credits are applied ([BC] "Credits apply to invoices only at the time of
finalization", https://docs.stripe.com/billing/subscriptions/usage-based/billing-credits).

The engine rates its own lines (the prices as Stripe returns them, the quantities the
test sent) and applies the grants as Stripe returns them with
:func:`billing.pricing.apply_credits`. Its total and per-line credits must equal the
finalized invoice's ``total`` and each line's ``pretax_credit_amounts``, and both must
equal the figure worked by hand in the case. Amounts in cents.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import stripe

from billing.pricing import (
    CreditGrantSpec,
    apply_credits,
    price_spec_from_stripe,
    rate_line,
)
from stripe_emulator.testing import reset
from tests.stripe_emulator.helpers import (
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

pytestmark = pytest.mark.slow

JAN_15 = 1768435200  # 2026-01-15T00:00:00Z, mid-period
PERIOD_START = datetime.fromtimestamp(T0, UTC)
PERIOD_END = datetime.fromtimestamp(FEB_1, UTC)
NEXT_END = datetime.fromtimestamp(MAR_1, UTC)


@pytest.fixture
def client(emulator_url) -> stripe.StripeClient:
    reset(emulator_url)
    return stripe.StripeClient(
        "sk_test_credits_comparison_000000000000",
        base_addresses={"api": emulator_url, "meter_events": emulator_url},
    )


@dataclass
class Metered:
    """One metered price of the case: its per-unit amount (cents) and the usage sent."""

    key: str
    unit_amount: int
    values: list[int]


@dataclass
class Grant:
    """One credit grant of the case; ``prices`` are keys of the case's metered prices."""

    key: str
    value: int
    category: str = "paid"
    priority: int | None = None
    expires_at: int | None = None
    prices: list[str] = field(default_factory=list)


@dataclass
class Case:
    metered: list[Metered]
    grants: list[Grant]
    total: int  # worked by hand
    line_credits: dict[str, int]  # metered key -> credits on its line, by hand
    remaining: dict[str, int]  # grant key -> balance left after the invoice, by hand
    base: int | None = None  # a licensed monthly fee (cents), billed in advance


CASES = {
    # (a) $150 of usage (1,000 x 15 = 15,000); $100 paid at priority 10 goes first, then
    # $20 promotional at 50: 15,000 - 10,000 - 2,000 = 3,000 ($30); both used up
    "paid_priority_first": Case(
        metered=[Metered("calls", 15, [600, 400])],
        grants=[
            Grant("promo", 2_000, "promotional", priority=50),
            Grant("paid", 10_000, "paid", priority=10),
        ],
        total=3_000,
        line_credits={"calls": 12_000},
        remaining={"paid": 0, "promo": 0},
    ),
    # (a') the same with the priorities swapped: promo 2,000 first, then paid 10,000;
    # the same $30, reached in the other order
    "promotional_priority_first": Case(
        metered=[Metered("calls", 15, [1_000])],
        grants=[
            Grant("paid", 10_000, "paid", priority=50),
            Grant("promo", 2_000, "promotional", priority=10),
        ],
        total=3_000,
        line_credits={"calls": 12_000},
        remaining={"paid": 0, "promo": 0},
    ),
    # (a'') $110 of usage (1,000 x 11 = 11,000), paid priority 10 first: paid 10,000, then
    # promo 11,000 - 10,000 = 1,000 of its 2,000 -> promo left with 1,000; total 0
    "priority_decides_what_is_left": Case(
        metered=[Metered("calls", 11, [1_000])],
        grants=[
            Grant("promo", 2_000, "promotional", priority=50),
            Grant("paid", 10_000, "paid", priority=10),
        ],
        total=0,
        line_credits={"calls": 11_000},
        remaining={"paid": 0, "promo": 1_000},
    ),
    # (b) $100 paid expiring Jan 15, before the invoice's period_end (Feb 1): not applied;
    # $20 promotional without expiry is: 15,000 - 2,000 = 13,000 ($130)
    "expired_mid_period": Case(
        metered=[Metered("calls", 15, [1_000])],
        grants=[
            Grant("paid", 10_000, "paid", expires_at=JAN_15),
            Grant("promo", 2_000, "promotional"),
        ],
        total=13_000,
        line_credits={"calls": 2_000},
        remaining={"promo": 0},  # the expired grant's balance is Stripe's business
    ),
    # (c) two metered prices, calls 300 x 10 = 3,000 and storage 200 x 20 = 4,000; a $50
    # grant restricted to storage: storage 4,000 credited, calls none;
    # 7,000 - 4,000 = 3,000 ($30), grant left with 5,000 - 4,000 = 1,000
    "restricted_to_one_price": Case(
        metered=[Metered("calls", 10, [300]), Metered("storage", 20, [200])],
        grants=[Grant("storage_only", 5_000, "paid", prices=["storage"])],
        total=3_000,
        line_credits={"calls": 0, "storage": 4_000},
        remaining={"storage_only": 1_000},
    ),
    # (d) a $99 licensed base fee (next month, in advance) and $150 of usage; a $200 grant
    # only credits the usage ([BC]: not "Line items ... that use licensed prices"):
    # 9,900 + 15,000 - 15,000 = 9,900 ($99); grant left 20,000 - 15,000 = 5,000
    "licensed_line_untouched": Case(
        metered=[Metered("calls", 15, [1_000])],
        grants=[Grant("big", 20_000, "paid")],
        total=9_900,
        line_credits={"base": 0, "calls": 15_000},
        remaining={"big": 5_000},
        base=9_900,
    ),
}


def _dt(timestamp: int | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def _grant_spec(remote) -> CreditGrantSpec:
    """The engine's view of a credit grant as Stripe returns it (nothing applied yet)."""
    scope = remote.applicability_config.scope
    prices = scope.get("prices") or []
    return CreditGrantSpec(
        id=remote.id,
        currency=remote.amount.monetary.currency,
        category=remote.category,
        balance=remote.amount.monetary.value,
        created=_dt(remote.created),
        # [API-CG] priority "If not specified, it will be set to the default value of 50"
        priority=remote.priority if remote.priority is not None else 50,
        effective_at=_dt(remote.effective_at),
        expires_at=_dt(remote.expires_at),
        price_ids=frozenset(price["id"] for price in prices),
    )


def _line_price(line) -> str:
    return line.pricing.price_details.price


def _pretax_credits(line) -> int:
    return sum(
        credit.amount
        for credit in (line.pretax_credit_amounts or [])
        if credit.type == "credit_balance_transaction"
    )


def _available(client: stripe.StripeClient, customer_id: str, grant_id: str) -> int:
    """The grant's available balance per Stripe's credit balance summary (usd)."""
    summary = client.v1.billing.credit_balance_summary.retrieve(
        {"customer": customer_id, "filter": {"type": "credit_grant", "credit_grant": grant_id}}
    )
    return sum(
        entry.available_balance.monetary.value
        for entry in summary.balances
        if entry.available_balance.monetary.currency == "usd"
    )


def _run(client: stripe.StripeClient, case: Case):
    clock, customer = clock_customer(client)
    prod = product(client, "Credits comparison")
    prices = {}
    for item in case.metered:
        m = meter(client, f"{item.key}_{uuid.uuid4().hex[:8]}")
        prices[item.key] = (metered_price(client, prod.id, m.id, unit_amount=item.unit_amount), m)
    items = [{"price": price.id} for price, _ in prices.values()]
    if case.base is not None:
        base = client.v1.prices.create(
            {
                "product": prod.id,
                "currency": "usd",
                "unit_amount": case.base,
                "recurring": {"interval": "month", "usage_type": "licensed"},
            }
        )
        prices["base"] = (base, None)
        items.append({"price": base.id})
    subscription = client.v1.subscriptions.create({"customer": customer.id, "items": items})
    grants = {}
    for grant in case.grants:
        scope = (
            {"prices": [{"id": prices[key][0].id} for key in grant.prices]}
            if grant.prices
            else {"price_type": "metered"}
        )
        params = {
            "customer": customer.id,
            "name": grant.key,
            "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": grant.value}},
            "applicability_config": {"scope": scope},
            "category": grant.category,
        }
        if grant.priority is not None:
            params["priority"] = grant.priority
        if grant.expires_at is not None:
            params["expires_at"] = grant.expires_at
        grants[grant.key] = client.v1.billing.credit_grants.create(params)
    for item in case.metered:
        send_usage(client, customer.id, prices[item.key][1].event_name, item.values)
    advance(client, clock.id, FEB_1 + DRAFT_HOUR)
    invoice = renewal_invoice(client, subscription.id)
    return invoice, prices, grants


@pytest.mark.parametrize("name", list(CASES))
def test_engine_credits_equal_the_emulators_finalized_invoice(client, name):
    case = CASES[name]
    invoice, prices, grants = _run(client, case)
    assert invoice.status == "paid"  # finalized (and charged, or $0)
    assert invoice.period_end == FEB_1

    # The engine rates its own lines, in the invoice's order ([BC]: "the credit applies
    # to the lines in the order they appear on the invoice"), from the prices as Stripe
    # returns them and the usage the test sent.
    # Metered usage is billed for January (in arrears), the licensed fee for February
    # (in advance), as billing.pricing.rate_period does.
    key_of_price = {price.id: key for key, (price, _) in prices.items()}
    quantities = {item.key: sum(item.values) for item in case.metered}
    if case.base is not None:
        quantities["base"] = 1
    order = [key_of_price[_line_price(line)] for line in invoice.lines.data]
    assert sorted(order) == sorted(quantities)
    lines = []
    for key in order:
        spec = price_spec_from_stripe(
            client.v1.prices.retrieve(prices[key][0].id, {"expand": ["tiers"]})
        )
        start, end = (PERIOD_END, NEXT_END) if key == "base" else (PERIOD_START, PERIOD_END)
        lines.append(
            rate_line(price=spec, quantity=quantities[key], period_start=start, period_end=end)
        )
    specs = [_grant_spec(client.v1.billing.credit_grants.retrieve(g.id)) for g in grants.values()]
    credited = apply_credits(lines=lines, grants=specs, period_end=PERIOD_END)

    # totals: engine == emulator == hand
    assert credited.total == invoice.total == case.total
    assert credited.subtotal == invoice.subtotal
    # per line: engine == emulator == hand
    engine_line_credits = dict(zip(order, credited.line_credits(), strict=True))
    emulator_line_credits = {
        key_of_price[_line_price(line)]: _pretax_credits(line) for line in invoice.lines.data
    }
    for line, ours in zip(invoice.lines.data, lines, strict=True):
        assert line.amount == ours.amount, _line_price(line)
    assert engine_line_credits == emulator_line_credits == case.line_credits
    # what the engine says is left of each grant the hand figures name
    grant_key = {g.id: key for key, g in grants.items()}
    left = {grant_key[gid]: amount for gid, amount in credited.remaining.items()}
    assert {key: left[key] for key in case.remaining} == case.remaining
    # and what Stripe (the emulator) says is available after finalization
    emulator_left = {
        key: _available(client, invoice.customer, grants[key].id) for key in case.remaining
    }
    assert emulator_left == case.remaining
