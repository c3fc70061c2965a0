"""The v2 meter event stream: sessions that expire, at most 100 events a call, events
counted after the answer, and identifiers counted once (stripe_emulator/meter_event_stream.py
cites what Stripe documents)."""

from __future__ import annotations

import time
from datetime import datetime

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


def event(customer_id, value="1", identifier=None, **extra):
    e = {"event_name": "api_call", "payload": {"stripe_customer_id": customer_id, "value": value}}
    if identifier:
        e["identifier"] = identifier
    return {**e, **extra}


def total(client, meter_id, customer_id) -> int:
    rows = client.v1.billing.meters.event_summaries.list(
        meter_id, {"customer": customer_id, "start_time": T0 - DAY, "end_time": T0 + DAY}
    ).data
    return int(rows[0].aggregated_value)


def stream_state(emulator, **settings) -> dict:
    if settings:
        return control(emulator, "/_emulator/meter_event_stream", settings)
    return control(emulator, "/_emulator/meter_event_stream")


def drain(emulator) -> int:
    return control(emulator, "/_emulator/meter_event_stream/drain", {})["applied"]


def lifetime(session) -> float:
    def parse(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    return (parse(session.expires_at) - parse(session.created)).total_seconds()


def streamer(client, emulator) -> stripe.StripeClient:
    session = client.v2.billing.meter_event_session.create()
    return make_client(emulator, session.authentication_token)


def test_the_stream_answers_before_it_counts(emulator, setup):
    client, customer, m = setup
    stream_state(emulator, delay=30)  # nothing is applied by the background thread
    answer = streamer(client, emulator).v2.billing.meter_event_stream.create(
        {"events": [event(customer.id, "5", f"a{i}") for i in range(3)]}
    )
    assert answer is None  # "No response attributes": {}
    assert total(client, m.id, customer.id) == 0  # answered, not counted yet
    assert stream_state(emulator)["pending_events"] == 3
    assert drain(emulator) == 3
    assert total(client, m.id, customer.id) == 15  # 3 x 5
    assert stream_state(emulator)["pending_events"] == 0


def test_the_background_thread_counts_after_the_delay(emulator, setup):
    client, customer, m = setup
    stream_state(emulator, delay=0.3)
    started = time.monotonic()
    streamer(client, emulator).v2.billing.meter_event_stream.create(
        {"events": [event(customer.id, "2", "b1")]}
    )
    assert total(client, m.id, customer.id) == 0
    while total(client, m.id, customer.id) == 0:
        assert time.monotonic() - started < 5, "the stream never counted its event"
        time.sleep(0.05)
    assert time.monotonic() - started >= 0.3
    assert total(client, m.id, customer.id) == 2


def test_at_most_100_events_per_call_and_a_malformed_call_counts_nothing(emulator, setup):
    client, customer, m = setup
    s = streamer(client, emulator)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        s.v2.billing.meter_event_stream.create(
            {"events": [event(customer.id, "1", f"c{i}") for i in range(101)]}
        )
    assert refused.value.http_status == 400 and refused.value.error.param == "events"
    with pytest.raises(stripe.InvalidRequestError):  # one event without a payload
        s.v2.billing.meter_event_stream.create(
            {"events": [event(customer.id, "1", "ok"), {"event_name": "api_call"}]}
        )
    with pytest.raises(stripe.InvalidRequestError):  # an unknown key
        s.v2.billing.meter_event_stream.create({"events": [event(customer.id, "1", "x", cat=1)]})
    with pytest.raises(stripe.InvalidRequestError):  # an identifier over 100 characters
        s.v2.billing.meter_event_stream.create({"events": [event(customer.id, "1", "i" * 101)]})
    assert stream_state(emulator)["pending_events"] == 0
    s.v2.billing.meter_event_stream.create(
        {"events": [event(customer.id, "1", f"d{i}") for i in range(100)]}
    )
    assert drain(emulator) == 100
    assert total(client, m.id, customer.id) == 100


def test_content_is_validated_later_and_unknown_meters_are_dropped(emulator, setup):
    client, customer, m = setup
    s = streamer(client, emulator)
    s.v2.billing.meter_event_stream.create(
        {
            "events": [
                event(customer.id, "4", "good"),
                event(customer.id, "1.5", "fraction"),  # not a whole number: reported later
                event("cus_missing", "1", "nobody"),
                {**event(customer.id, "1", "nometer"), "event_name": "no_such_meter"},
            ]
        }
    )
    assert drain(emulator) == 4
    state = stream_state(emulator)
    assert (state["processed_events"], state["dropped_events"]) == (3, 1)
    assert total(client, m.id, customer.id) == 4


def test_an_identifier_counts_once_across_calls_and_endpoints(emulator, setup):
    client, customer, m = setup
    stream_state(emulator, delay=30)
    s = streamer(client, emulator)
    batch = [event(customer.id, "10", "same"), event(customer.id, "10", "same")]
    s.v2.billing.meter_event_stream.create({"events": batch})  # twice in one call
    s.v2.billing.meter_event_stream.create({"events": batch[:1]})  # and a resent call
    client.v1.billing.meter_events.create(event(customer.id, "7", "v1-first"))
    s.v2.billing.meter_event_stream.create({"events": [event(customer.id, "7", "v1-first")]})
    assert drain(emulator) == 4
    # 10 ("same", once) + 7 ("v1-first", by v1 only)
    assert total(client, m.id, customer.id) == 17
    assert stream_state(emulator)["duplicate_events"] == 3
    # The v1 endpoint still refuses an identifier the stream recorded.
    with pytest.raises(stripe.InvalidRequestError, match="already exists"):
        client.v1.billing.meter_events.create(event(customer.id, "10", "same"))


def test_sessions_expire_and_unknown_tokens_are_refused(emulator, setup):
    client, customer, m = setup
    session = client.v2.billing.meter_event_session.create()
    assert session.object == "v2.billing.meter_event_session"
    assert lifetime(session) == 15 * 60
    s = make_client(emulator, session.authentication_token)
    s.v2.billing.meter_event_stream.create({"events": [event(customer.id, "1", "e1")]})
    control(emulator, "/_emulator/time/advance", {"seconds": 15 * 60})  # the token's life
    with pytest.raises(stripe.TemporarySessionExpiredError) as expired:
        s.v2.billing.meter_event_stream.create({"events": [event(customer.id, "1", "e2")]})
    assert expired.value.http_status == 401
    assert expired.value.code == "billing_meter_event_session_expired"
    with pytest.raises(stripe.TemporarySessionExpiredError):  # checked before the body
        s.v2.billing.meter_event_stream.create({"events": [{"payload": {}}]})
    with pytest.raises(stripe.TemporarySessionExpiredError):
        make_client(emulator, "mes_tok_unknown").v2.billing.meter_event_stream.create(
            {"events": [event(customer.id, "1", "e3")]}
        )
    streamer(client, emulator).v2.billing.meter_event_stream.create(  # a new session works
        {"events": [event(customer.id, "1", "e4")]}
    )
    drain(emulator)
    assert total(client, m.id, customer.id) == 2  # e1 and e4


def test_session_lifetime_is_settable_and_refuse_answers_before_anything(emulator, setup):
    client, customer, m = setup
    stream_state(emulator, session_seconds=60)
    session = client.v2.billing.meter_event_session.create()
    assert lifetime(session) == 60
    stream_state(emulator, refuse=503)
    s = make_client(emulator, session.authentication_token)
    with pytest.raises(stripe.APIError) as refused:
        s.v2.billing.meter_event_stream.create({"events": [event(customer.id, "1", "r1")]})
    assert refused.value.http_status == 503
    with pytest.raises(stripe.APIError):
        client.v2.billing.meter_event_session.create()
    stream_state(emulator, refuse=0)
    assert drain(emulator) == 0
    assert total(client, m.id, customer.id) == 0
