"""Meter events (v1 and the v2 session/stream), adjustments and event summaries.

Choices where Stripe's behaviour is asynchronous or unspecified:

- A meter event whose ``identifier`` was already recorded is answered 200 with the
  already-stored event and is NOT counted again (Stripe deduplicates identifiers for at
  least 24 hours; the emulator remembers them until reset). With the fault setting
  ``duplicate_identifiers: "reject"`` it gets live Stripe's answer instead: 400 "An event
  already exists with identifier ...", ``Stripe-Should-Retry: false``.
- Validation is synchronous: unknown/inactive meter, missing or unknown customer, a value
  that is not a whole number, or a timestamp outside [now - 35 days, now + 5 minutes]
  (``now`` being the customer's test clock time, if any) are 400s. A v2 stream batch is
  validated as a whole before any of it is recorded.
- Event summaries are listed newest window first (Stripe's list order); with
  ``value_grouping_window`` only windows holding events are listed.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from ..errors import StripeError, invalid, missing_param
from ..forms import as_dict, as_int, as_list, one_of
from ..lists import paginate
from ..routing import Request, route
from ..store import Store, random_token
from ..summary_windows import check_summary_window
from .common import get_or_404, require

PAST_WINDOW = 35 * 86400
FUTURE_WINDOW = 5 * 60
CANCEL_WINDOW = 24 * 3600
SESSION_SECONDS = 15 * 60
STREAM_MAX = 100
_WHOLE = re.compile(r"^-?\d+$")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(value: str, param: str) -> int:
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except (ValueError, AttributeError):
        raise invalid(f"Invalid timestamp: {value}", param=param) from None


def _whole_number(raw: str, param: str) -> int:
    """A meter event value. Stripe documents no maximum: payload values are strings and
    must be whole numbers (docs.stripe.com/billing/subscriptions/usage-based/
    recording-usage-api, "Usage values"); only its asynchronous error report names a
    code for overlong values, ``meter_event_value_too_many_digits`` (stripe-python 15,
    stripe/events/_v1_billing_meter_error_report_triggered_event.py), without a digit
    count. So the emulator invents no lower limit: it accepts every whole number it can
    parse, and refuses only one too long to parse at all (more than
    ``sys.get_int_max_str_digits()`` digits, 4,300 by default) with that code, as a 400
    like its other validation, instead of failing with a 500."""
    try:
        return int(raw)
    except ValueError:
        raise invalid(
            "Meter event value has too many digits.",
            param=param,
            code="meter_event_value_too_many_digits",
        ) from None


def _active_meter(store: Store, event_name: str, param: str) -> dict:
    for meter in store.all("billing.meter"):
        if meter["event_name"] == event_name and meter["status"] == "active":
            return meter
    raise invalid(f"No active meter was found for event_name '{event_name}'.", param=param)


def validate_event(req: Request, params: dict, prefix: str = "", *, iso_time=False) -> dict:
    """A meter event ready to record (or the stored duplicate); raises Stripe's 400s."""
    store = req.store
    event_name = params.get("event_name")
    if not event_name:
        raise missing_param(f"{prefix}event_name")
    meter = _active_meter(store, event_name, f"{prefix}event_name")
    payload = params.get("payload")
    if not isinstance(payload, dict):
        raise missing_param(f"{prefix}payload")
    payload = {str(k): str(v) for k, v in payload.items()}
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    customer_id = payload.get(customer_key)
    if not customer_id:
        raise missing_param(f"{prefix}payload[{customer_key}]")
    if store.get("customer", customer_id) is None:
        raise invalid(
            f"No such customer: '{customer_id}'",
            param=f"{prefix}payload[{customer_key}]",
            code="resource_missing",
        )
    raw_value = payload.get(value_key)
    if raw_value is None:
        if meter["default_aggregation"]["formula"] != "count":
            raise missing_param(f"{prefix}payload[{value_key}]")
        value = 1
    elif not _WHOLE.match(raw_value.strip()):
        raise invalid(
            f"Meter event values must be whole numbers, got '{raw_value}'.",
            param=f"{prefix}payload[{value_key}]",
            code="parameter_invalid_integer",
        )
    else:
        value = _whole_number(raw_value, f"{prefix}payload[{value_key}]")
    identifier = params.get("identifier") or random_token(24)
    if len(identifier) > 100:
        raise invalid("identifier must be at most 100 characters.", param=f"{prefix}identifier")
    now = store.customer_now(customer_id)
    if params.get("timestamp") in (None, ""):
        timestamp = now
    elif iso_time:
        timestamp = parse_iso(params["timestamp"], f"{prefix}timestamp")
    else:
        timestamp = as_int(params["timestamp"], f"{prefix}timestamp")
    if timestamp < now - PAST_WINDOW:
        raise invalid(
            "Meter event timestamps must be within the past 35 days.",
            param=f"{prefix}timestamp",
            code="timestamp_too_far_in_past",
        )
    if timestamp > now + FUTURE_WINDOW:
        raise invalid(
            "Meter event timestamps can be at most 5 minutes in the future.",
            param=f"{prefix}timestamp",
            code="timestamp_in_future",
        )
    return {
        "event_name": event_name,
        "identifier": identifier,
        "payload": payload,
        "timestamp": timestamp,
        "created": time.time(),
        "meter": meter["id"],
        "customer": customer_id,
        "value": value,
        "cancelled": False,
    }


def record(store: Store, event: dict, *, duplicates: str = "replay") -> dict:
    """Store a validated event unless its identifier is known; return the stored one, or
    with ``duplicates="reject"`` refuse it as live Stripe does (400, not retryable)."""
    existing = store.meter_event_ids.get(event["identifier"])
    if existing is not None and duplicates == "reject":
        raise StripeError(
            400,
            f"An event already exists with identifier '{event['identifier']}'.",
            param="identifier",
            headers={"Stripe-Should-Retry": "false"},
        )
    if existing is not None:
        return existing
    store.meter_events.append(event)
    store.meter_event_ids[event["identifier"]] = event
    return event


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
    event = validate_event(req, req.params)
    return _v1_shape(record(req.store, event, duplicates=req.app.faults.duplicate_identifiers))


@route("POST", "/v2/billing/meter_events")
def create_v2(req: Request):
    event = validate_event(req, req.params, iso_time=True)
    return _v2_shape(record(req.store, event, duplicates=req.app.faults.duplicate_identifiers))


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
    if time.time() - event["created"] > CANCEL_WINDOW:
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
    now = time.time()
    token = "mes_tok_" + random_token(32)
    req.store.sessions[token] = int(now) + SESSION_SECONDS
    return {
        "id": "mes_" + random_token(24),
        "object": "v2.billing.meter_event_session",
        "authentication_token": token,
        "created": iso(now),
        "expires_at": iso(now + SESSION_SECONDS),
        "livemode": False,
    }


@route("POST", "/v2/billing/meter_event_stream", auth="session")
def stream(req: Request):
    token = (req.headers.get("Authorization") or "").partition(" ")[2]
    expires = req.store.sessions.get(token)
    if expires is None or expires < time.time():
        raise StripeError(
            401,
            "The meter event session has expired or is unknown; create a new session.",
            type="temporary_session_expired",
            code="billing_meter_event_session_expired",
        )
    events = as_list(req.params.get("events"), "events")
    if not events:
        raise missing_param("events")
    if len(events) > STREAM_MAX:
        raise invalid(f"At most {STREAM_MAX} events per request.", param="events")
    validated = [
        validate_event(req, as_dict(e, f"events[{i}]"), f"events[{i}].", iso_time=True)
        for i, e in enumerate(events)
    ]
    for event in validated:
        record(req.store, event)
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
