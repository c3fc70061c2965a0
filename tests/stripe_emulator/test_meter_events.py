"""Meter events: validation, deduplication, windows, adjustments, v2 stream, summaries."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator.testing import control

from .conftest import make_client
from .helpers import T0, clock_customer, meter

DAY = 86400


@pytest.fixture
def setup(client):
    _clock, customer = clock_customer(client)
    m = meter(client, "api_call")
    return client, customer, m


def event(customer_id, value="1", **extra):
    return {
        "event_name": "api_call",
        "payload": {"stripe_customer_id": customer_id, "value": value},
        **extra,
    }


def drain(emulator) -> int:
    """Apply the v2 stream's queued events now; how many there were."""
    return control(emulator, "/_emulator/meter_event_stream/drain", {})["applied"]


def total(client, meter_id, customer_id, start=T0 - 40 * DAY, end=T0 + DAY):
    return (
        client.v1.billing.meters.event_summaries.list(
            meter_id, {"customer": customer_id, "start_time": start, "end_time": end}
        )
        .data[0]
        .aggregated_value
    )


def test_shape_and_default_timestamp_is_the_clock_time(setup):
    client, customer, _m = setup
    created = client.v1.billing.meter_events.create(event(customer.id, "7", identifier="a"))
    assert created.object == "billing.meter_event"
    assert created.timestamp == T0  # the customer's test clock time
    assert created.payload.value == "7" and created.identifier == "a"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"payload": {"value": "1"}}, "event_name"),  # malformed requests: refused at once
        ({"event_name": "api_call"}, "payload"),
        ({"event_name": "api_call", "payload": {"value": "1"}, "identifier": "x" * 101},
         "identifier"),
        ({"event_name": "api_call", "payload": {"value": "1"}, "timestamp": "soon"}, "timestamp"),
        ({"event_name": "nope", "payload": {"value": "1"}}, "event_name"),  # no such meter
    ],
)  # fmt: skip
def test_malformed_events_are_400s(setup, params, param):
    """Content errors (customer, value, timestamp, inactive meter) are asynchronous: see
    test_meter_event_errors.py."""
    client, _customer, _m = setup
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.billing.meter_events.create(params)
    assert info.value.http_status == 400
    assert info.value.param == param


def test_window_edges_are_accepted(setup):
    client, customer, m = setup
    client.v1.billing.meter_events.create(event(customer.id, "1", timestamp=T0 - 35 * DAY))
    client.v1.billing.meter_events.create(event(customer.id, "2", timestamp=T0 + 300))
    assert total(client, m.id, customer.id) == 3


def test_duplicate_identifier_is_a_non_retryable_400_and_not_counted(setup):
    """Live Stripe: 400 invalid_request_error "An event already exists with identifier
    ..." and Stripe-Should-Retry: false (the old emulator answered 200)."""
    client, customer, m = setup
    client.v1.billing.meter_events.create(event(customer.id, "5", identifier="dup"))
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.billing.meter_events.create(event(customer.id, "9", identifier="dup"))
    assert info.value.http_status == 400
    assert info.value.error.type == "invalid_request_error"
    assert info.value.user_message.startswith("An event already exists with identifier")
    assert info.value.headers["Stripe-Should-Retry"] == "false"
    with pytest.raises(stripe.InvalidRequestError):  # the same through v2
        client.v2.billing.meter_events.create(event(customer.id, "9", identifier="dup"))
    assert total(client, m.id, customer.id) == 5


def test_custom_payload_keys(client):
    _, customer = clock_customer(client)
    client.v1.billing.meters.create(
        {
            "display_name": "Rows",
            "event_name": "rows",
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "account"},
            "value_settings": {"event_payload_key": "rows"},
        }
    )
    client.v1.billing.meter_events.create(
        {"event_name": "rows", "payload": {"account": customer.id, "rows": "12"}}
    )
    with pytest.raises(stripe.InvalidRequestError) as info:  # v2 validates synchronously
        client.v2.billing.meter_events.create(
            {"event_name": "rows", "payload": {"stripe_customer_id": customer.id, "rows": "1"}}
        )
    assert info.value.param == "payload[account]"
    assert info.value.code == "meter_event_no_customer_defined"


def test_adjustment_cancels_an_event(setup):
    client, customer, m = setup
    client.v1.billing.meter_events.create(event(customer.id, "4", identifier="keep"))
    client.v1.billing.meter_events.create(event(customer.id, "6", identifier="oops"))
    adjustment = client.v1.billing.meter_event_adjustments.create(
        {"event_name": "api_call", "type": "cancel", "cancel": {"identifier": "oops"}}
    )
    assert adjustment.status == "complete" and adjustment.cancel.identifier == "oops"
    assert total(client, m.id, customer.id) == 4
    with pytest.raises(stripe.InvalidRequestError):  # already cancelled
        client.v1.billing.meter_event_adjustments.create(
            {"event_name": "api_call", "type": "cancel", "cancel": {"identifier": "oops"}}
        )


def test_v2_session_and_stream(emulator, setup):
    client, customer, m = setup
    session = client.v2.billing.meter_event_session.create()
    assert session.authentication_token and session.expires_at.endswith("Z")
    streamer = make_client(emulator, session.authentication_token)
    streamer.v2.billing.meter_event_stream.create(
        {"events": [event(customer.id, "3", identifier=f"s{i}") for i in range(100)]}
    )
    drain(emulator)  # the stream counts later (tests/stripe_emulator/test_meter_event_stream.py)
    assert total(client, m.id, customer.id) == 300
    with pytest.raises(stripe.InvalidRequestError):  # at most 100 per request
        streamer.v2.billing.meter_event_stream.create(
            {"events": [event(customer.id, "1") for _ in range(101)]}
        )
    with pytest.raises(stripe.InvalidRequestError):  # a malformed event refuses the batch
        streamer.v2.billing.meter_event_stream.create(
            {"events": [event(customer.id, "1", identifier="ok"), {"payload": {}}]}
        )
    assert drain(emulator) == 0 and total(client, m.id, customer.id) == 300
    # Content is validated asynchronously: the good event counts, the bad one is reported.
    streamer.v2.billing.meter_event_stream.create(
        {"events": [event(customer.id, "1", identifier="ok"), event(customer.id, "x")]}
    )
    drain(emulator)
    assert total(client, m.id, customer.id) == 301
    with pytest.raises(stripe.TemporarySessionExpiredError):
        make_client(emulator, "mes_tok_unknown").v2.billing.meter_event_stream.create(
            {"events": [event(customer.id)]}
        )
    v2 = client.v2.billing.meter_events.create(event(customer.id, "2", identifier="single"))
    assert v2.identifier == "single" and v2.timestamp.startswith("2026-01-01T00:00:00")


def test_summaries_grouped_by_hour_and_day(setup):
    client, customer, m = setup
    for i, (offset, value) in enumerate(
        [(-2 * DAY, 1), (-2 * DAY + 60, 2), (-DAY + 3600, 4), (-DAY + 7300, 8)]
    ):
        client.v1.billing.meter_events.create(
            event(customer.id, str(value), identifier=f"g{i}", timestamp=T0 + offset)
        )
    summaries = client.v1.billing.meters.event_summaries
    daily = summaries.list(
        m.id,
        {
            "customer": customer.id,
            "start_time": T0 - 3 * DAY,
            "end_time": T0,
            "value_grouping_window": "day",
        },
    ).data
    assert [(s.start_time, s.aggregated_value) for s in daily] == [
        (T0 - DAY, 12),
        (T0 - 2 * DAY, 3),  # newest window first
    ]
    hourly = summaries.list(
        m.id,
        {
            "customer": customer.id,
            "start_time": T0 - DAY,
            "end_time": T0,
            "value_grouping_window": "hour",
        },
    ).data
    assert [(s.start_time, s.end_time, s.aggregated_value) for s in hourly] == [
        (T0 - DAY + 7200, T0 - DAY + 10800, 8),
        (T0 - DAY + 3600, T0 - DAY + 7200, 4),
    ]
