"""Meter events (v1 and the v2 session/stream), adjustments and event summaries.

As Stripe does (sources in :mod:`stripe_emulator.meter_event_validation`):

- ``POST /v1/billing/meter_events`` refuses at once only a malformed request and an
  ``identifier`` it already has: 400 "An event already exists with identifier ...",
  ``Stripe-Should-Retry: false`` (Stripe: "We'll enforce uniqueness within a rolling 24
  hour period", https://docs.stripe.com/api/v2/billing/meter-events/create; the emulator
  remembers identifiers until reset). The event's content (meter inactive, customer
  missing or unknown, value not a whole number, timestamp outside [now - 35 days, now +
  5 minutes], ``now`` being the customer's test clock time) is checked after the 200: a
  failing event is not recorded (nor its identifier) and is reported later as a
  ``v1.billing.meter.error_report_triggered`` thin event (:mod:`stripe_emulator.
  meter_errors`). The fault setting ``duplicate_identifiers: "replay"`` makes a known
  identifier a 200 with the stored event instead (kinder than Stripe; tests only).
- ``POST /v2/billing/meter_events`` validates synchronously: content errors are 400s.
- The v2 stream (:mod:`stripe_emulator.meter_event_stream`) refuses a malformed batch
  whole; it answers before counting anything: its events are applied later, content
  errors are reported later, a known identifier is not counted again.
- Event summaries are listed newest window first (Stripe's list order); with
  ``value_grouping_window`` only windows holding events are listed.
"""

from __future__ import annotations

import time

from ..errors import StripeError, invalid, missing_param
from ..forms import as_dict, as_int, as_list, one_of
from ..lists import paginate
from ..meter_event_stream import STREAM_MAX
from ..meter_event_validation import content_error, iso, parse_event
from ..routing import Request, route
from ..store import Store, random_token
from ..summary_windows import check_summary_window
from .common import get_or_404, require

CANCEL_WINDOW = 24 * 3600


def check_new(store: Store, event: dict, *, duplicates: str = "reject") -> dict | None:
    """None when the identifier is new; else live Stripe's 400 "An event already exists
    with identifier ..." with ``Stripe-Should-Retry: false`` (the message as quoted in
    langfuse/langfuse#16292, which met it on live Stripe), or with ``duplicates="replay"``
    (a fault setting, kinder than Stripe) the stored event, answered 200 again."""
    existing = store.meter_event_ids.get(event["identifier"])
    if existing is None or duplicates == "replay":
        return existing
    raise StripeError(
        400,
        f"An event already exists with identifier '{event['identifier']}'.",
        param="identifier",
        headers={"Stripe-Should-Retry": "false"},
    )


def record(store: Store, event: dict) -> dict:
    """Store an event whose content passed :func:`content_error` (value set)."""
    if event["identifier"] in store.meter_event_ids:  # a v2 stream repeating itself
        return store.meter_event_ids[event["identifier"]]
    store.meter_events.append(event)
    store.meter_event_ids[event["identifier"]] = event
    return event


def _report_later(req: Request, event: dict, error) -> None:
    """Accept an event that fails asynchronously: not recorded, reported to the event
    destinations later. Stripe's sample error names ``request.identifier``, "The request
    idempotency key" (stripe-python 15): the Idempotency-Key header when sent, else the
    event's identifier (Meterdesk sends both equal)."""
    key = req.headers.get("Idempotency-Key") or event["identifier"]
    req.app.meter_errors.add(event["meter"], error, key)


def aggregate(store: Store, meter: dict, customer_id: str, start: int, end: int) -> int:
    """The meter's aggregation over a customer's events with start <= timestamp < end."""
    events = [
        e
        for e in store.meter_events
        if e["meter"] == meter["id"]
        and e["customer"] == customer_id
        and start <= e["timestamp"] < end
        and not e["cancelled"]
    ]
    formula = meter["default_aggregation"]["formula"]
    if formula == "count":
        return len(events)
    if formula == "last":
        if not events:
            return 0
        return max(events, key=lambda e: (e["timestamp"], e["created"]))["value"]
    return sum(e["value"] for e in events)


def _v1_shape(event: dict) -> dict:
    return {
        "object": "billing.meter_event",
        "created": int(event["created"]),
        "event_name": event["event_name"],
        "identifier": event["identifier"],
        "livemode": False,
        "payload": event["payload"],
        "timestamp": event["timestamp"],
    }


def _v2_shape(event: dict) -> dict:
    return {
        "object": "v2.billing.meter_event",
        "created": iso(event["created"]),
        "event_name": event["event_name"],
        "identifier": event["identifier"],
        "livemode": False,
        "payload": event["payload"],
        "timestamp": iso(event["timestamp"]),
    }


@route("POST", "/v1/billing/meter_events")
def create_v1(req: Request):
    """Answered 200 unless malformed or a known identifier; content errors come later."""
    event = parse_event(req, req.params)
    stored = check_new(req.store, event, duplicates=req.app.faults.duplicate_identifiers)
    if stored is not None:
        return _v1_shape(stored)
    error = content_error(req.store, event)
    if error is not None:
        _report_later(req, event, error)
        return _v1_shape(event)
    return _v1_shape(record(req.store, event))


@route("POST", "/v2/billing/meter_events")
def create_v2(req: Request):
    """ "Events are validated synchronously": content errors are 400s here."""
    event = parse_event(req, req.params, iso_time=True)
    stored = check_new(req.store, event, duplicates=req.app.faults.duplicate_identifiers)
    if stored is not None:
        return _v2_shape(stored)
    error = content_error(req.store, event)
    if error is not None:
        raise error.as_400()
    return _v2_shape(record(req.store, event))


def _cancel(req: Request, params: dict) -> tuple[str, str]:
    event_name = require(params, "event_name")
    if params.get("type", "cancel") != "cancel":
        raise invalid("Only type=cancel is supported.", param="type")
    identifier = as_dict(params.get("cancel"), "cancel").get("identifier")
    if not identifier:
        raise missing_param("cancel[identifier]")
    event = req.store.meter_event_ids.get(identifier)
    if event is None or event["event_name"] != event_name:
        raise invalid(
            f"No meter event with identifier '{identifier}' for '{event_name}'.",
            param="cancel[identifier]",
            code="resource_missing",
        )
    if event["cancelled"]:
        raise invalid("This meter event is already canceled.", param="cancel[identifier]")
    received = event.get("_received_at", event["created"])
    if req.store.customer_now(event["customer"]) - received > CANCEL_WINDOW:
        raise invalid(
            "Meter events can only be canceled within 24 hours.", param="cancel[identifier]"
        )
    event["cancelled"] = True
    return event_name, identifier


@route("POST", "/v1/billing/meter_event_adjustments")
def adjust_v1(req: Request):
    event_name, identifier = _cancel(req, req.params)
    return {
        "object": "billing.meter_event_adjustment",
        "cancel": {"identifier": identifier},
        "event_name": event_name,
        "livemode": False,
        "status": "complete",
        "type": "cancel",
    }


@route("POST", "/v2/billing/meter_event_adjustments")
def adjust_v2(req: Request):
    event_name, identifier = _cancel(req, req.params)
    return {
        "id": "mtradj_" + random_token(24),
        "object": "v2.billing.meter_event_adjustment",
        "cancel": {"identifier": identifier},
        "created": iso(time.time()),
        "event_name": event_name,
        "livemode": False,
        "status": "complete",
        "type": "cancel",
    }


@route("POST", "/v2/billing/meter_event_session")
def create_session(req: Request):
    """A session token, valid ``session_seconds`` (Stripe: 15 minutes; see
    :mod:`stripe_emulator.meter_event_stream`)."""
    stream_state = req.app.meter_event_stream
    stream_state.check_refused()
    now = req.store.real_now()
    token = "mes_tok_" + random_token(32)
    expires = now + stream_state.session_seconds
    req.store.sessions[token] = expires
    return {
        "id": "mes_" + random_token(24),
        "object": "v2.billing.meter_event_session",
        "authentication_token": token,
        "created": iso(now),
        "expires_at": iso(expires),
        "livemode": False,
    }


@route("POST", "/v2/billing/meter_event_stream", auth="session")
def stream(req: Request):
    """Up to 100 events, checked for shape now and applied later
    (:mod:`stripe_emulator.meter_event_stream`); the session token was checked before the
    parameters (:meth:`stripe_emulator.app.Emulator._handle`)."""
    events = as_list(req.params.get("events"), "events")
    if not events:
        raise missing_param("events")
    if len(events) > STREAM_MAX:
        raise invalid(
            f"events: at most {STREAM_MAX} events per request, got {len(events)}.",
            param="events",
        )
    parsed = [  # a malformed event refuses the whole request
        parse_event(
            req,
            as_dict(e, f"events[{i}]"),
            f"events[{i}].",
            iso_time=True,
            meter_required=False,
        )
        for i, e in enumerate(events)
    ]
    req.app.meter_event_stream.enqueue(parsed)  # "processed asynchronously"
    return {}


@route("GET", "/v1/billing/meters/{id}/event_summaries")
def summaries(req: Request):
    meter = get_or_404(req, "billing.meter", req.args["id"], label="billing meter")
    params = req.params
    customer = require(params, "customer")
    start = as_int(require(params, "start_time"), "start_time")
    end = as_int(require(params, "end_time"), "end_time")
    if end <= start:
        raise invalid("end_time must be after start_time.", param="end_time")
    window = params.get("value_grouping_window") or None
    if window:
        one_of(window, "value_grouping_window", ("hour", "day"))
    check_summary_window(start=start, end=end, window=window)
    if window:
        size = 3600 if window == "hour" else 86400
        bounds = []
        edge = start - start % size
        while edge < end:
            bounds.append((max(start, edge), min(end, edge + size)))
            edge += size
        has_events = {
            (e["timestamp"] - e["timestamp"] % size)
            for e in req.store.meter_events
            if e["meter"] == meter["id"] and e["customer"] == customer and not e["cancelled"]
        }
        bounds = [(a, b) for a, b in bounds if a - a % size in has_events]
    else:
        bounds = [(start, end)]
    rows = [
        {
            "id": f"mtrusg_{meter['id'][4:16]}_{a}_{b}",
            "object": "billing.meter_event_summary",
            "aggregated_value": aggregate(req.store, meter, customer, a, b),
            "end_time": b,
            "livemode": False,
            "meter": meter["id"],
            "start_time": a,
        }
        for a, b in reversed(bounds)
    ]
    return paginate(req.store, rows, params, f"/v1/billing/meters/{meter['id']}/event_summaries")
