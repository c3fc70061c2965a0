"""Event summaries refuse windows Stripe refuses: ``start_time``/``end_time`` must be on
minute boundaries, and on hour/day boundaries with ``value_grouping_window`` (stripe-python
15 ``MeterEventSummaryListParams`` docstrings; see ``stripe_emulator.summary_windows``).
The old emulator answered all of these 200."""

from __future__ import annotations

import pytest
import stripe

from .helpers import T0, clock_customer, meter

HOUR, DAY = 3600, 86400


@pytest.fixture
def setup(client):
    _clock, customer = clock_customer(client)
    m = meter(client, "api_call")
    for i, offset in enumerate((17, 59, 61)):  # two events in the first minute, one after
        client.v1.billing.meter_events.create(
            {
                "event_name": "api_call",
                "identifier": f"w{i}",
                "payload": {"stripe_customer_id": customer.id, "value": str(i + 1)},
                "timestamp": T0 + offset,
            }
        )
    return client, customer, m


def summaries(client, m, customer, **params):
    return client.v1.billing.meters.event_summaries.list(
        m.id, {"customer": customer.id, **params}
    ).data


@pytest.mark.parametrize(
    ("params", "bad"),
    [
        ({"start_time": T0 + 17, "end_time": T0 + HOUR}, "start_time"),  # :17 seconds
        ({"start_time": T0, "end_time": T0 + HOUR + 17}, "end_time"),
        ({"start_time": T0 + 17, "end_time": T0 + HOUR + 17}, "start_time"),  # first one named
        (
            {"start_time": T0 + 60, "end_time": T0 + HOUR, "value_grouping_window": "hour"},
            "start_time",  # a minute boundary is not an hour boundary
        ),
        (
            {"start_time": T0, "end_time": T0 + HOUR, "value_grouping_window": "day"},
            "end_time",  # an hour boundary is not a UTC day boundary
        ),
    ],
)
def test_unaligned_bounds_are_stripes_400_naming_the_param(setup, params, bad):
    client, customer, m = setup
    with pytest.raises(stripe.InvalidRequestError) as err:
        summaries(client, m, customer, **params)
    assert err.value.http_status == 400
    error = err.value.error
    assert (error.type, error.param) == ("invalid_request_error", bad)
    assert f"{bad} must be aligned with" in error.message


def test_aligned_windows_are_answered(setup):
    client, customer, m = setup
    # [T0, T0+60) holds the events at +17 (1) and +59 (2); +61 (3) is in the next minute.
    [minute] = summaries(client, m, customer, start_time=T0, end_time=T0 + 60)
    assert (minute.start_time, minute.end_time, minute.aggregated_value) == (T0, T0 + 60, 3)
    [hour] = summaries(
        client, m, customer, start_time=T0, end_time=T0 + HOUR, value_grouping_window="hour"
    )
    assert hour.aggregated_value == 6  # 1 + 2 + 3
    [day] = summaries(
        client, m, customer, start_time=T0, end_time=T0 + DAY, value_grouping_window="day"
    )
    assert (day.start_time, day.end_time, day.aggregated_value) == (T0, T0 + DAY, 6)
