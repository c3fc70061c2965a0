"""Meter event values as large as Stripe takes them: no documented maximum, whole numbers
only; a value too long to parse is ``meter_event_value_too_many_digits`` (Stripe's code
for it; a 400 from v2, which validates synchronously), never a 500."""

from __future__ import annotations

import pytest
import stripe

from .helpers import T0, clock_customer, meter

DAY = 86400


@pytest.fixture
def setup(client):
    _clock, customer = clock_customer(client)
    m = meter(client, "api_call")
    return client, customer, m


def _create(client, customer_id: str, value: str):
    return client.v1.billing.meter_events.create(
        {"event_name": "api_call", "payload": {"stripe_customer_id": customer_id, "value": value}}
    )


def test_large_whole_numbers_are_accepted_and_summed_exactly(setup):
    client, customer, m = setup
    # Meterdesk's per-event maximum (10**15) and per-report cap (9 * 10**15).
    for value in (10**15, 9 * 10**15):
        _create(client, customer.id, str(value))
    [summary] = client.v1.billing.meters.event_summaries.list(
        m.id, {"customer": customer.id, "start_time": T0 - DAY, "end_time": T0 + DAY}
    ).data
    # 10**15 + 9 * 10**15 = 10**16, below 2**53: exact even as Stripe's float.
    assert summary.aggregated_value == 10**16
    # Stripe documents no maximum, so a value above a signed 64-bit integer is taken too.
    assert _create(client, customer.id, str(2**63)).payload.value == str(2**63)


def test_a_value_too_long_to_parse_is_a_400_not_a_500(setup):
    """Through v2 (validated synchronously); through v1 the same code arrives in the
    asynchronous error report (test_meter_event_errors.py)."""
    client, customer, _m = setup
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v2.billing.meter_events.create(
            {"event_name": "api_call",
             "payload": {"stripe_customer_id": customer.id, "value": "9" * 5_000}}
        )  # fmt: skip
    assert caught.value.http_status == 400
    assert caught.value.code == "meter_event_value_too_many_digits"
    assert caught.value.param == "payload[value]"
