"""The emulator's "record then time out" fault and live Stripe's answer to a duplicate
identifier, which fault-matrix case (b) relies on."""

import time

import pytest
import requests
import stripe

from stripe_emulator.testing import control

pytestmark = pytest.mark.reliability


def _client(base: str, **kwargs) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_reliability",
        base_addresses={"api": base, "meter_events": base},
        max_network_retries=0,
        **kwargs,
    )


def _event(customer: str, value: int) -> dict:
    return {
        "event_name": "matrix_calls",
        "payload": {"stripe_customer_id": customer, "value": str(value)},
        "identifier": "mdu_same",
        "timestamp": int(time.time()) - 120,
    }


def _total(client, meter_id: str, customer: str) -> int:
    now = int(time.time()) // 60 * 60 + 60
    rows = client.v1.billing.meters.event_summaries.list(
        meter_id, {"customer": customer, "start_time": now - 3600, "end_time": now}
    )
    return sum(int(r.aggregated_value) for r in rows.data)


@pytest.fixture
def meter_and_customer(stripe_emulator):
    client = _client(stripe_emulator)
    meter = client.v1.billing.meters.create(
        {
            "display_name": "Calls",
            "event_name": "matrix_calls",
            "default_aggregation": {"formula": "sum"},
        }
    )
    customer = client.v1.customers.create({"email": "m@matrix.test"})
    yield meter.id, customer.id
    control(
        stripe_emulator,
        "/_emulator/faults",
        {"after_record_rate": 0, "duplicate_identifiers": "reject"},
    )


def test_recorded_then_timed_out_and_the_retry_is_a_non_retryable_duplicate(
    stripe_emulator, meter_and_customer
):
    meter_id, customer = meter_and_customer
    settings = control(
        stripe_emulator,
        "/_emulator/faults",
        {"after_record_rate": 1, "after_record_ms": 1500, "duplicate_identifiers": "reject"},
    )
    assert (settings["after_record_rate"], settings["duplicate_identifiers"]) == (1.0, "reject")
    impatient = _client(stripe_emulator, http_client=stripe.RequestsClient(timeout=0.5))
    began = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):  # the client gave up after 0.5 s ...
        impatient.v1.billing.meter_events.create(
            _event(customer, 7), {"idempotency_key": "mdu_same"}
        )
    assert time.monotonic() - began < 1.4
    client = _client(stripe_emulator)
    assert _total(client, meter_id, customer) == 7  # ... but Stripe had recorded it

    # The retry (same identifier, same Idempotency-Key: no idempotent result was kept)
    # is live Stripe's 400, flagged not to be retried, and counts nothing.
    control(stripe_emulator, "/_emulator/faults", {"after_record_rate": 0})
    r = requests.post(
        stripe_emulator + "/v1/billing/meter_events",
        data={
            "event_name": "matrix_calls",
            "payload[stripe_customer_id]": customer,
            "payload[value]": "7",
            "identifier": "mdu_same",
        },
        headers={"Authorization": "Bearer sk_test_reliability", "Idempotency-Key": "mdu_same"},
        timeout=5,
    )
    assert r.status_code == 400
    assert r.headers["Stripe-Should-Retry"] == "false"
    assert r.json()["error"]["message"] == "An event already exists with identifier 'mdu_same'."
    assert _total(client, meter_id, customer) == 7


def test_duplicates_are_refused_by_default_and_replayed_on_request(
    stripe_emulator, meter_and_customer
):
    meter_id, customer = meter_and_customer
    client = _client(stripe_emulator)
    first = client.v1.billing.meter_events.create(_event(customer, 5))
    with pytest.raises(stripe.InvalidRequestError) as refused:  # live Stripe's answer
        client.v1.billing.meter_events.create(_event(customer, 5))
    assert refused.value.headers["Stripe-Should-Retry"] == "false"
    control(stripe_emulator, "/_emulator/faults", {"duplicate_identifiers": "replay"})
    again = client.v1.billing.meter_events.create(_event(customer, 5))  # the kinder mode
    assert again.identifier == first.identifier == "mdu_same"
    assert _total(client, meter_id, customer) == 5
