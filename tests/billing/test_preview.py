"""This period's invoice: Stripe's create_preview next to the pricing engine's estimate.

All against the emulator. Amounts are worked out by hand in the comments. The Pro
plan (billing/catalog/demo.toml): a licensed $99.00 base fee, API calls on a
graduated price (first 10,000 free, then 0.2 cents each) and seats at $10.00 on a
``last`` meter (the latest seat count reported in the period is billed).
"""

import time

import pytest

from billing.models import Account, PlanPrice
from billing.services.preview import USAGE_GIVEN, USAGE_STRIPE_SUMMARIES, invoice_preview
from billing.services.subscriptions import (
    subscription_cancel_at_period_end,
    subscription_create,
)
from stripe_emulator.testing import free_port

# 9,900 (base) + (12,345 - 10,000) x 0.2 = 469 (api calls) + 3 x 1,000 = 3,000 (seats)
#   = 13,369 cents = $133.69
PRO_TOTAL = 13_369


def _price_id(lookup_key: str) -> str:
    return PlanPrice.objects.get(lookup_key=lookup_key).stripe_price_id


def _meter_event(client, *, event_name: str, customer: str, value: int, timestamp=None):
    params = {
        "event_name": event_name,
        "payload": {"stripe_customer_id": customer, "value": str(value)},
    }
    if timestamp is not None:
        params["timestamp"] = timestamp
    client.v1.billing.meter_events.create(params)


@pytest.fixture
def pro_account(demo_catalog):
    account = Account.objects.create(name="Acme", billing_email="billing@acme.test")
    subscription = subscription_create(account=account, plan=demo_catalog["pro"])
    return account, subscription.customer_id


@pytest.fixture
def pro_usage(pro_account, stripe_client):
    """12,345 API calls (two events, summed) and 3 seats (5 first, then 3: last wins)."""
    account, customer = pro_account
    now = int(time.time())
    _meter_event(stripe_client, event_name="api_calls", customer=customer, value=12_000)
    _meter_event(stripe_client, event_name="api_calls", customer=customer, value=345)
    _meter_event(stripe_client, event_name="seats", customer=customer, value=5, timestamp=now)
    _meter_event(stripe_client, event_name="seats", customer=customer, value=3, timestamp=now + 2)
    return account, customer


def _amounts(lines) -> dict[str, int]:
    return {line.price_id: line.amount for line in lines}


@pytest.mark.django_db
def test_pro_preview_stripe_and_local_estimate_both_equal_the_hand_total(pro_usage):
    account, customer = pro_usage
    preview = invoice_preview(account=account)

    assert preview.stripe_error is None and preview.local_error is None
    assert preview.customer_id == customer
    assert preview.currency == "usd"
    assert preview.usage_source == USAGE_STRIPE_SUMMARIES
    assert preview.stripe_total == PRO_TOTAL
    assert preview.local_total == PRO_TOTAL
    assert preview.difference == 0
    assert preview.stripe_total_display == preview.local_total_display == "$133.69"

    expected = {
        _price_id("pro_base"): 9_900,  # licensed, 1 x $99.00
        _price_id("pro_api_calls"): 469,  # 2,345 calls over the allowance x 0.2 cents
        _price_id("pro_seats"): 3_000,  # last seat count 3 (not 5, not 8) x $10.00
    }
    assert _amounts(preview.stripe_lines) == expected
    assert _amounts(preview.local_lines) == expected
    quantities = {line.price_id: line.quantity for line in preview.local_lines}
    assert quantities[_price_id("pro_api_calls")] == 12_345
    assert quantities[_price_id("pro_seats")] == 3
    kinds = {line.price_id: line.kind for line in preview.local_lines}
    assert kinds[_price_id("pro_base")] == "licensed"
    assert kinds[_price_id("pro_api_calls")] == "metered"
    # Every local line covers the current period; Stripe bills the base fee in
    # advance, so its line covers the next period, which starts where this one ends.
    assert {(line.period_start, line.period_end) for line in preview.local_lines} == {
        (preview.period_start, preview.period_end)
    }
    stripe_base = next(li for li in preview.stripe_lines if li.price_id == _price_id("pro_base"))
    assert stripe_base.period_start == preview.period_end


@pytest.mark.django_db
def test_given_quantities_replace_stripe_usage_and_the_difference_shows(pro_usage):
    account, _ = pro_usage
    preview = invoice_preview(
        account=account,
        quantities={_price_id("pro_api_calls"): 20_000, _price_id("pro_seats"): 5},
    )
    assert preview.usage_source == USAGE_GIVEN
    # Local: 9,900 + (20,000 - 10,000) x 0.2 = 2,000 + 5 x 1,000 = 5,000 -> 16,900.
    assert preview.local_total == 16_900
    # Stripe still has 12,345 calls and 3 seats: 13,369; 13,369 - 16,900 = -3,531.
    assert preview.stripe_total == PRO_TOTAL
    assert preview.difference == -3_531
    assert preview.difference_display == "-$35.31"


@pytest.mark.django_db
def test_no_usage_yet_is_the_base_fee_on_both_sides(pro_account):
    account, _ = pro_account
    preview = invoice_preview(account=account)
    # 9,900 + 0 calls (inside the free tier: 0) + 0 seats x 1,000 = 9,900.
    assert (preview.stripe_total, preview.local_total, preview.difference) == (9_900, 9_900, 0)


@pytest.mark.django_db
def test_account_without_subscription_has_an_empty_preview(stripe_emulator):
    account = Account.objects.create(name="Newco", billing_email="new@co.test")
    preview = invoice_preview(account=account)
    assert not preview.has_subscription
    assert preview.stripe_total is None and preview.local_total is None
    assert preview.difference is None
    assert preview.stripe_error is None


@pytest.mark.django_db
def test_stripe_unreachable_reports_an_error_and_still_estimates_from_the_mirror(
    pro_usage, settings
):
    account, _ = pro_usage
    settings.STRIPE_API_HOST = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    preview = invoice_preview(account=account)
    assert preview.stripe_total is None
    assert "could not be reached" in preview.stripe_error
    # Usage would have come from Stripe's summaries: the estimate says so.
    assert preview.local_total is None
    assert "unreachable" in preview.local_error

    with_ledger = invoice_preview(
        account=account,
        quantities={_price_id("pro_api_calls"): 12_345, _price_id("pro_seats"): 3},
    )
    assert "could not be reached" in with_ledger.stripe_error
    # From the dj-stripe mirror and the given usage: 9,900 + 469 + 3,000 = 13,369.
    assert with_ledger.local_total == PRO_TOTAL
    assert with_ledger.difference is None


@pytest.mark.django_db
def test_canceling_at_period_end_drops_the_renewal_fee_from_stripes_preview(pro_usage):
    account, _ = pro_usage
    subscription_cancel_at_period_end(account=account)
    preview = invoice_preview(account=account)
    assert preview.cancel_at_period_end
    # Stripe: no next period, so only usage in arrears: 469 + 3,000 = 3,469.
    assert preview.stripe_total == 3_469
    assert _price_id("pro_base") not in _amounts(preview.stripe_lines)
    # Local: this period's base fee still counts: 9,900 + 469 + 3,000 = 13,369.
    assert preview.local_total == PRO_TOTAL
    assert preview.difference == 3_469 - 13_369 == -9_900
