"""Meters, meter events and event summaries: what Meterdesk's catalog, reporting pass and
reconciliation rely on (billing/services/meters.py, usage/services/reporting*.py,
usage/services/reconciliation.py)."""

from __future__ import annotations

import json

import pytest
import stripe

pytestmark = pytest.mark.contract

ERROR_REPORT = "v1.billing.meter.error_report_triggered"


@pytest.mark.parametrize("formula", ["sum", "last"])
def test_meter_create_returns_what_was_asked(backend, formula):
    meter = backend.meter(f"create_{formula}", formula)
    assert meter.id.startswith("mtr_")
    assert meter.status == "active"
    assert meter.event_name.startswith("mdc_")
    assert meter.default_aggregation.formula == formula
    assert meter.customer_mapping.type == "by_id"
    assert meter.customer_mapping.event_payload_key == "stripe_customer_id"
    assert meter.value_settings.event_payload_key == "value"  # the default key
    again = backend.client.v1.billing.meters.retrieve(meter.id)
    assert (again.event_name, again.default_aggregation.formula) == (meter.event_name, formula)


def test_meter_only_display_name_is_updatable(backend):
    # MeterUpdateParams (stripe-python 15, generated from Stripe's OpenAPI spec) has
    # display_name only, and Stripe's "Update a billing meter" reference lists only it: an
    # event_name or aggregation sent on update is an unknown parameter, never a change.
    meter = backend.meter("immutable")
    renamed = backend.client.v1.billing.meters.update(meter.id, {"display_name": "Renamed"})
    assert renamed.display_name == "Renamed"
    for param, value in (
        ("event_name", "mdc_other_name"),
        ("default_aggregation", {"formula": "last"}),
    ):
        with pytest.raises(stripe.InvalidRequestError) as err:
            backend.client.v1.billing.meters.update(meter.id, {param: value})
        assert err.value.http_status == 400
        assert err.value.code == "parameter_unknown"
        assert err.value.param.split("[")[0] == param
    unchanged = backend.client.v1.billing.meters.retrieve(meter.id)
    assert unchanged.event_name == meter.event_name
    assert unchanged.default_aggregation.formula == "sum"


def test_meter_event_create_answers_200_with_the_identifier(backend):
    clock, customer = backend.clock_customer()
    meter = backend.meter("events")
    identifier = backend.unique("id")
    event = backend.client.v1.billing.meter_events.create(
        {
            "event_name": meter.event_name,
            "identifier": identifier,
            "timestamp": clock.frozen_time + 5,
            "payload": {"stripe_customer_id": customer.id, "value": "7"},
        }
    )
    assert event.object == "billing.meter_event"
    assert event.identifier == identifier
    assert event.event_name == meter.event_name
    assert event.timestamp == clock.frozen_time + 5
    assert event.payload["value"] == "7"
    # Without an identifier Stripe makes one.
    generated = backend.client.v1.billing.meter_events.create(
        {
            "event_name": meter.event_name,
            "timestamp": clock.frozen_time + 6,
            "payload": {"stripe_customer_id": customer.id, "value": "1"},
        }
    )
    assert generated.identifier and generated.identifier != identifier


def test_a_repeated_identifier_is_a_400_not_to_retry(backend):
    # Live Stripe: 400 "An event already exists with identifier '...'." and
    # Stripe-Should-Retry: false (quoted in langfuse/langfuse#16292); Meterdesk's reporting
    # pass counts this answer as delivered (the first event is Stripe's).
    clock, customer = backend.clock_customer()
    meter = backend.meter("dupes")
    params = {
        "event_name": meter.event_name,
        "identifier": backend.unique("dup"),
        "timestamp": clock.frozen_time + 1,
        "payload": {"stripe_customer_id": customer.id, "value": "3"},
    }
    backend.client.v1.billing.meter_events.create(params)
    with pytest.raises(stripe.InvalidRequestError) as err:
        backend.client.v1.billing.meter_events.create(params)
    assert err.value.http_status == 400
    assert err.value.error.type == "invalid_request_error"
    assert "already exists" in err.value.error.message
    assert err.value.headers["Stripe-Should-Retry"] == "false"
    # Counted once: 3, not 6.
    backend.wait_for_usage(meter.id, customer.id, start=clock.frozen_time, expected=3)


def test_unknown_parameters_are_400_parameter_unknown_naming_the_param(backend):
    _clock, customer = backend.clock_customer()
    meter = backend.meter("strict")
    with pytest.raises(stripe.InvalidRequestError) as err:
        backend.client.v1.billing.meter_events.create(
            {
                "event_name": meter.event_name,
                "payload": {"stripe_customer_id": customer.id, "value": "1"},
                "meterdesk_unknown": "1",
            }
        )
    assert (err.value.http_status, err.value.code) == (400, "parameter_unknown")
    assert err.value.param == "meterdesk_unknown"
    assert "Received unknown parameter: meterdesk_unknown" in err.value.error.message
    # Nested keys are named with brackets (a read: nothing is created if it were accepted).
    with pytest.raises(stripe.InvalidRequestError) as err:
        backend.client.v1.customers.list({"created": {"gt": 0, "meterdesk_unknown": 1}})
    assert (err.value.http_status, err.value.code) == (400, "parameter_unknown")
    assert err.value.param == "created[meterdesk_unknown]"


def test_event_summaries_need_aligned_bounds_and_sum_what_was_sent(backend):
    # "start_time ... Must be aligned with minute boundaries" (MeterEventSummaryListParams,
    # and Stripe's "List billing meter event summaries"); reconciliation aligns its windows.
    clock, customer = backend.clock_customer()
    meter = backend.meter("summaries")
    start = clock.frozen_time  # the start of an hour, so on a minute boundary
    backend.send_usage(customer.id, meter.event_name, [40, 2, 100], start=start + 17)
    summaries = backend.client.v1.billing.meters.event_summaries
    for bad, params in (
        ("start_time", {"start_time": start + 17, "end_time": start + 3600}),
        ("end_time", {"start_time": start, "end_time": start + 3617}),
    ):
        with pytest.raises(stripe.InvalidRequestError) as err:
            summaries.list(meter.id, {"customer": customer.id, **params})
        assert err.value.http_status == 400
        assert err.value.param == bad
    # 40 + 2 + 100 = 142 in the aligned hour (eventually, in Stripe: aggregation is async).
    backend.wait_for_usage(meter.id, customer.id, start=start, expected=142)
    [hour] = summaries.list(
        meter.id, {"customer": customer.id, "start_time": start, "end_time": start + 3600}
    ).data
    assert (hour.start_time, hour.end_time, hour.aggregated_value) == (start, start + 3600, 142)


def test_an_unknown_customer_is_accepted_then_reported_asynchronously(backend, request):
    # Stripe checks the customer mapping after answering: 200 now, and later a
    # v1.billing.meter.error_report_triggered thin event to v2 event destinations. Real
    # Stripe cannot reach this machine, so there only the 200 is checked.
    meter = backend.meter("async_errors")
    destination = receiver = None
    if backend.is_emulator:
        receiver = request.getfixturevalue("webhook_receiver")
        destination = backend.client.v2.core.event_destinations.create(
            {
                "name": "meterdesk contract",
                "type": "webhook_endpoint",
                "event_payload": "thin",
                "enabled_events": [ERROR_REPORT],
                "webhook_endpoint": {"url": receiver.url},
                "include": ["webhook_endpoint.signing_secret"],
            }
        )
    identifier = backend.unique("nobody")
    event = backend.client.v1.billing.meter_events.create(
        {
            "event_name": meter.event_name,
            "identifier": identifier,
            "payload": {"stripe_customer_id": "cus_meterdesk_contract_unknown", "value": "1"},
        },
        {"idempotency_key": identifier},
    )
    assert event.identifier == identifier  # a 200
    if not backend.is_emulator:
        return
    [delivery] = receiver.wait_for(lambda d: d)
    assert delivery["type"] == ERROR_REPORT
    notification = backend.client.parse_event_notification(
        delivery["body"], delivery["signature"], destination.webhook_endpoint.signing_secret
    )
    assert "data" not in json.loads(delivery["body"])  # thin: fetched separately
    assert notification.related_object.id == meter.id
    [error_type] = notification.fetch_event().data.reason.error_types
    assert error_type.code == "meter_event_customer_not_found"
    # sample_errors[].request.identifier is "The request idempotency key" (stripe-python 15's
    # V1BillingMeterErrorReportTriggeredEvent), which Meterdesk sets to the identifier.
    assert error_type.sample_errors[0]["request"]["identifier"] == identifier
