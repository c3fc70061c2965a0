"""Object shapes and list behaviour Meterdesk's sync, catalog and portal rely on."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe

from .backends import TAG

pytestmark = pytest.mark.contract

NO_PORTAL_SETTINGS = "save your customer portal settings"


def test_customer_list_leaves_out_test_clock_customers_unless_asked(backend):
    # CustomerListParams.test_clock: "The response will not include customers with test
    # clocks if this parameter is not set." stripe_sync_everything lists per clock for it.
    email = f"{backend.unique('list')}@example.com"
    clock, on_clock = backend.clock_customer(email=email)
    no_clock = backend.customer(None, email=email)  # deleted by the cleanup
    listed = backend.client.v1.customers.list({"email": email}).data
    assert [c.id for c in listed] == [no_clock.id]
    with_clock = backend.client.v1.customers.list({"email": email, "test_clock": clock.id}).data
    assert [c.id for c in with_clock] == [on_clock.id]


def test_price_tiers_only_with_expand(backend):
    # Price.tiers: "This field is not included by default. To include it in the response,
    # expand the `tiers` field." Catalog apply, sync and previews expand it.
    meter = backend.meter("tiers")
    tiers = [{"up_to": 10000, "unit_amount": 0}, {"up_to": "inf", "unit_amount_decimal": "0.2"}]
    price = backend.metered_price(
        backend.product().id, meter.id, billing_scheme="tiered", tiers_mode="graduated",
        tiers=tiers,
    )  # fmt: skip
    plain = backend.client.v1.prices.retrieve(price.id)
    assert "tiers" not in plain
    assert plain.tiers_mode == "graduated"
    expanded = backend.client.v1.prices.retrieve(price.id, {"expand": ["tiers"]})
    assert [(t.up_to, t.unit_amount) for t in expanded.tiers] == [(10000, 0), (None, None)]
    assert expanded.tiers[1].unit_amount_decimal == Decimal("0.2")
    listed = backend.client.v1.prices.list({"product": price.product, "expand": ["data.tiers"]})
    assert [len(p.tiers) for p in listed.data] == [2]


def test_subscriptions_default_to_flexible_billing_mode(backend):
    # Since 2025-09-30.clover: "Subscriptions you create through the API now default to
    # flexible billing mode". Periods are read from the items (dahlia).
    _clock, customer = backend.clock_customer()
    price = backend.price(backend.product().id, unit_amount=500, recurring={"interval": "month"})
    sub = backend.subscribe(customer.id, [price.id])
    assert sub.billing_mode.type == "flexible"
    assert sub.metadata[TAG]
    item = sub["items"].data[0]
    assert item.current_period_end > item.current_period_start
    assert "current_period_end" not in sub


def test_portal_session_without_a_configuration_is_refused(backend):
    # Stripe's test mode: "You can't create a portal session in test mode until you save
    # your customer portal settings ..." (the emulator starts with none after a reset).
    if backend.client.v1.billing_portal.configurations.list({"limit": 1}).data:
        pytest.skip(
            "this Stripe account already has a portal configuration, so a session without "
            "one cannot be refused here"
        )
    _clock, customer = backend.clock_customer()
    with pytest.raises(stripe.InvalidRequestError) as err:
        backend.client.v1.billing_portal.sessions.create({"customer": customer.id})
    assert err.value.http_status == 400
    assert NO_PORTAL_SETTINGS in err.value.error.message


def test_portal_session_with_a_created_configuration_has_a_url(backend):
    _clock, customer = backend.clock_customer()
    config = backend.portal_configuration()
    assert config.metadata[TAG]
    session = backend.client.v1.billing_portal.sessions.create(
        {"customer": customer.id, "configuration": config.id, "return_url": "https://example.com/"}
    )
    assert session.configuration == config.id
    assert session.customer == customer.id
    assert session.url.startswith(("https://", "http://"))
