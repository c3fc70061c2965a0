"""Invoices of each pricing model Meterdesk's catalog offers, billed through a test clock
period close, and renewal invoices as drafts for the finalization grace period.

The cases and their arithmetic are the emulator's own (tests/stripe_emulator/
test_pricing_models.py, test_hybrid_plan.py); amounts in cents, each line rounded once,
half up, as billing/pricing/ assumes."""

from __future__ import annotations

import pytest

from .backends import DRAFT_GRACE

pytestmark = pytest.mark.contract

VOLUME_TIERS = [
    {"up_to": 1000, "unit_amount": 5, "flat_amount": 1000},
    {"up_to": 10000, "unit_amount": 3, "flat_amount": 2000},
    {"up_to": "inf", "unit_amount": 1, "flat_amount": 5000},
]
GRADUATED_TIERS = [
    {"up_to": 1000, "unit_amount": 0, "flat_amount": 500},
    {"up_to": 5000, "unit_amount_decimal": "0.5", "flat_amount": 1000},
    {"up_to": "inf", "unit_amount_decimal": "0.25", "flat_amount": 2500},
]
VOLUME = {"billing_scheme": "tiered", "tiers_mode": "volume", "tiers": VOLUME_TIERS}
GRADUATED = {"billing_scheme": "tiered", "tiers_mode": "graduated", "tiers": GRADUATED_TIERS}

CASES = [
    # per unit, sub-cent: 12,345 x 0.015 = 185.175 -> 185
    pytest.param({"unit_amount_decimal": "0.015"}, [12000, 345], 185, id="per_unit"),
    # per unit: 100 x 0.125 = 12.5 -> half up: 13
    pytest.param({"unit_amount_decimal": "0.125"}, [100], 13, id="per_unit_half_up"),
    # package, round up: 2,001 / 1,000 = 2.001 packages -> 3 x 250 = 750
    pytest.param(
        {"unit_amount": 250, "transform_quantity": {"divide_by": 1000, "round": "up"}},
        [2000, 1],
        750,
        id="package_up",
    ),
    # package, round down: 2,999 / 1,000 = 2.999 packages -> 2 x 250 = 500
    pytest.param(
        {"unit_amount": 250, "transform_quantity": {"divide_by": 1000, "round": "down"}},
        [2999],
        500,
        id="package_down",
    ),
    # volume: 2,500 units all in tier 2: 2,500 x 3 + flat 2,000 = 9,500
    pytest.param(VOLUME, [1000, 1500], 9500, id="volume"),
    # volume: 10,001 units all in tier 3: 10,001 x 1 + flat 5,000 = 15,001
    pytest.param(VOLUME, [10000, 1], 15001, id="volume_next_tier"),
    # graduated: tier 1 1,000 x 0 + flat 500 = 500; tier 2 4,000 x 0.5 = 2,000 + flat
    # 1,000 = 3,000; tier 3 1,001 x 0.25 = 250.25 + flat 2,500 = 2,750.25;
    # total 6,250.25 -> 6,250
    pytest.param(GRADUATED, [5000, 1001], 6250, id="graduated"),
    # graduated: 1,001 units: 500 + (1 x 0.5 + 1,000) = 1,500.5 -> half up: 1,501
    pytest.param(GRADUATED, [1001], 1501, id="graduated_half_up"),
]


def _subscribed(backend, purpose: str, **pricing):
    clock, customer = backend.clock_customer()
    meter = backend.meter(purpose)
    price = backend.metered_price(backend.product().id, meter.id, **pricing)
    sub = backend.subscribe(customer.id, [price.id])
    period_end = sub["items"].data[0].current_period_end
    return clock, customer, meter, sub, period_end


@pytest.mark.parametrize(("pricing", "values", "expected"), CASES)
def test_metered_invoice_of_each_pricing_model(backend, pricing, values, expected):
    clock, customer, meter, sub, period_end = _subscribed(backend, "priced", **pricing)
    backend.send_usage(customer.id, meter.event_name, values, start=clock.frozen_time)
    backend.wait_for_usage(meter.id, customer.id, start=clock.frozen_time, expected=sum(values))
    backend.advance(clock.id, period_end + DRAFT_GRACE + 1)
    invoice = backend.cycle_invoice(sub.id)
    assert invoice.status == "paid"
    assert invoice.total == invoice.amount_paid == expected
    [line] = invoice.lines.data
    assert line.quantity == sum(values)
    assert (line.period.start, line.period.end) == (clock.frozen_time, period_end)


def test_hybrid_plan_base_fee_and_allowance(backend):
    # Meterdesk's Pro: $99 a month in advance, 10,000 calls included, then $0.002 each.
    clock, customer = backend.clock_customer()
    meter = backend.meter("hybrid")
    product = backend.product("Meterdesk contract Pro")
    base = backend.price(product.id, unit_amount=9900, recurring={"interval": "month"})
    overage = backend.metered_price(
        product.id,
        meter.id,
        billing_scheme="tiered",
        tiers_mode="graduated",
        tiers=[
            {"up_to": 10000, "unit_amount": 0},  # the allowance
            {"up_to": "inf", "unit_amount_decimal": "0.2"},  # 0.2 cents a call
        ],
    )
    sub = backend.subscribe(customer.id, [base.id, overage.id], expand=["latest_invoice"])
    # First invoice: the base fee in advance (9,900), usage nothing yet.
    assert sub.latest_invoice.total == 9900
    assert sub.latest_invoice.status == "paid"
    period_end = sub["items"].data[0].current_period_end
    backend.send_usage(customer.id, meter.event_name, [10000, 2000, 345], start=clock.frozen_time)
    backend.wait_for_usage(meter.id, customer.id, start=clock.frozen_time, expected=12345)
    backend.advance(clock.id, period_end + DRAFT_GRACE + 1)
    renewal = backend.cycle_invoice(sub.id)
    # 12,345 calls: 10,000 x 0 + 2,345 x 0.2 = 469; plus the next period's 9,900 = 10,369.
    assert renewal.status == "paid"
    assert renewal.total == renewal.amount_paid == 10369
    lines = {line.pricing.price_details.price: line for line in renewal.lines.data}
    assert lines[base.id].amount == 9900
    assert lines[base.id].period.start == period_end  # in advance
    assert (lines[overage.id].amount, lines[overage.id].quantity) == (469, 12345)
    assert lines[overage.id].period.end == period_end  # in arrears
    assert renewal.parent.subscription_details.subscription == sub.id


def test_renewal_invoice_is_a_draft_until_the_grace_period_ends(backend):
    # "All invoices have a default finalization grace period of 1 hour" (Stripe, "Configure
    # a grace period"): the renewal is a draft at the period end, finalized an hour later.
    clock, customer, meter, sub, period_end = _subscribed(backend, "drafts", unit_amount=3)
    backend.send_usage(customer.id, meter.event_name, [100], start=clock.frozen_time)
    backend.wait_for_usage(meter.id, customer.id, start=clock.frozen_time, expected=100)
    backend.advance(clock.id, period_end)
    draft = backend.cycle_invoice(sub.id)
    assert draft.status == "draft"
    assert draft.automatically_finalizes_at == period_end + DRAFT_GRACE
    assert draft.status_transitions.finalized_at is None
    assert draft.total == 100 * 3  # usage so far: 300
    backend.advance(clock.id, period_end + DRAFT_GRACE + 60)
    final = backend.cycle_invoice(sub.id)
    assert final.id == draft.id
    assert final.status == "paid"
    assert final.status_transitions.finalized_at >= period_end + DRAFT_GRACE
    assert final.total == final.amount_paid == 300
