"""Asynchronous meter event errors, as Stripe reports them: ``POST /v1/billing/meter_events``
answers 200, the event is not counted, and a ``v1.billing.meter.error_report_triggered``
thin event reaches the event destination, signed, with the whole event (codes, sample
errors naming the request's idempotency key) at ``GET /v2/core/events/{id}``.

On the old emulator every one of these was a synchronous 400."""

from __future__ import annotations

import json

import pytest
import stripe

from .helpers import T0, clock_customer, meter

DAY = 86400
TYPE = "v1.billing.meter.error_report_triggered"


@pytest.fixture
def setup(client, webhook_receiver):
    _clock, customer = clock_customer(client)
    m = meter(client, "api_call")
    destination = client.v2.core.event_destinations.create(
        {
            "name": "meterdesk thin events",
            "type": "webhook_endpoint",
            "event_payload": "thin",
            "enabled_events": [TYPE],
            "webhook_endpoint": {"url": webhook_receiver.url},
            "include": ["webhook_endpoint.signing_secret", "webhook_endpoint.url"],
        }
    )
    return client, customer, m, destination


def _total(client, meter_id: str, customer_id: str) -> int:
    return (
        client.v1.billing.meters.event_summaries.list(
            meter_id, {"customer": customer_id, "start_time": T0 - 40 * DAY, "end_time": T0 + DAY}
        )
        .data[0]
        .aggregated_value
    )


def _send(client, customer_id, value="1", key=None, **extra):
    params = {
        "event_name": "api_call",
        "payload": {"stripe_customer_id": customer_id, "value": value},
        **extra,
    }
    if customer_id is None:
        del params["payload"]["stripe_customer_id"]
    return client.v1.billing.meter_events.create(params, {"idempotency_key": key} if key else {})


def test_destination_shape(setup):
    _client, _customer, _m, destination = setup
    assert destination.object == "v2.core.event_destination"
    assert destination.event_payload == "thin" and destination.status == "enabled"
    assert destination.webhook_endpoint.signing_secret.startswith("whsec_")
    again = _client.v2.core.event_destinations.retrieve(destination.id)
    assert again.webhook_endpoint.signing_secret is None  # only includable on creation


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"customer": "cus_unknown"}, "meter_event_customer_not_found"),
        ({"customer": None}, "meter_event_no_customer_defined"),
        ({"value": "1.5"}, "meter_event_invalid_value"),
        ({"value": "9" * 5_000}, "meter_event_value_too_many_digits"),
        ({"timestamp": T0 - 35 * DAY - 1}, "timestamp_too_far_in_past"),
        ({"timestamp": T0 + 301}, "timestamp_in_future"),
        ({"deactivate": True}, "archived_meter"),
    ],
)
def test_content_errors_are_accepted_then_reported(setup, webhook_receiver, change, code):
    client, customer, m, destination = setup
    if change.get("deactivate"):
        client.v1.billing.meters.deactivate(m.id)
    extra = {"timestamp": change["timestamp"]} if "timestamp" in change else {}
    created = _send(
        client,
        change.get("customer", customer.id),
        change.get("value", "4"),
        key=f"idem-{code}",
        identifier=f"bad-{code}",
        **extra,
    )
    assert created.identifier == f"bad-{code}"  # a 200, as from Stripe

    [delivery] = webhook_receiver.wait_for(lambda d: d)
    assert delivery["type"] == TYPE
    notification = client.parse_event_notification(
        delivery["body"], delivery["signature"], destination.webhook_endpoint.signing_secret
    )
    body = json.loads(delivery["body"])
    assert body["object"] == "v2.core.event" and "data" not in body  # thin
    assert notification.related_object.id == m.id
    assert notification.related_object.url == f"/v1/billing/meters/{m.id}"

    event = notification.fetch_event()  # GET /v2/core/events/{id}
    reason = event.data.reason
    assert reason.error_count == 1
    [error_type] = reason.error_types
    assert (error_type.code, error_type.error_count) == (code, 1)
    [sample] = error_type.sample_errors
    assert sample["request"]["identifier"] == f"idem-{code}"  # "The request idempotency key"
    assert sample.error_message
    if code != "archived_meter":
        client.v1.billing.meter_events.create(  # the identifier was not used up
            {"event_name": "api_call", "identifier": f"bad-{code}",
             "payload": {"stripe_customer_id": customer.id, "value": "2"}}
        )  # fmt: skip
        assert _total(client, m.id, customer.id) == 2  # the failed event never counted


def test_errors_are_batched_per_meter_with_counts(setup, webhook_receiver):
    client, customer, _m, _destination = setup
    for i in range(3):
        _send(client, "cus_gone", identifier=f"gone-{i}", key=f"gone-{i}")
    _send(client, customer.id, "ten", identifier="ten", key="ten")
    _send(client, customer.id, "5", identifier="fine")
    deliveries = webhook_receiver.wait_for(lambda d: d)
    events = [client.v2.core.events.retrieve(json.loads(d["body"])["id"]) for d in deliveries]
    codes = {t.code: t for e in events for t in e.data.reason.error_types}
    assert codes["meter_event_customer_not_found"].error_count == 3
    samples = codes["meter_event_customer_not_found"].sample_errors
    assert {s["request"]["identifier"] for s in samples} == {"gone-0", "gone-1", "gone-2"}
    assert codes["meter_event_invalid_value"].error_count == 1
    assert sum(e.data.reason.error_count for e in events) == 4


def test_thin_events_go_only_to_thin_destinations_that_enable_them(client, webhook_receiver):
    clock_customer(client)
    m = meter(client, "api_call")
    client.v1.webhook_endpoints.create({"url": webhook_receiver.url, "enabled_events": ["*"]})
    _send(client, "cus_unknown", identifier="nowhere")
    with pytest.raises(AssertionError):  # a v1 webhook endpoint receives no thin events
        webhook_receiver.wait_for(lambda d: any(x["type"] == TYPE for x in d), timeout=1.5)
    [stored] = client.v2.core.events.list({"object_id": m.id}).data  # stored all the same
    assert stored.type == TYPE
    with pytest.raises(stripe.InvalidRequestError):
        client.v2.core.events.retrieve("evt_test_unknown")
