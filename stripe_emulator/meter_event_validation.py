"""Meter event validation: what Stripe refuses at once, and what it checks later.

Stripe splits a meter event's checks in two:

- **Synchronous** (a 400 on ``POST /v1/billing/meter_events``): a malformed request --
  no ``event_name``, no ``payload``, an ``identifier`` over 100 characters, a
  ``timestamp`` that is not an integer -- and an identifier it already has (see
  :func:`stripe_emulator.resources.meter_events.record`).
- **Asynchronous** (answered 200, reported later): the event's content against the meter
  and the customer. Stripe's guide "Record usage for billing with the API"
  (https://docs.stripe.com/billing/subscriptions/usage-based/recording-usage-api):
  "Stripe processes meter events asynchronously"; the failures arrive as the thin event
  ``v1.billing.meter.error_report_triggered`` ("Occurs when a Meter has invalid async
  usage events", https://docs.stripe.com/api/v2/core/events/event-types), whose codes
  are listed by stripe-python 15 (``stripe/events/
  _v1_billing_meter_error_report_triggered_event.py``, ``ErrorType.code``):
  ``archived_meter``, ``meter_event_customer_not_found``,
  ``meter_event_no_customer_defined``, ``meter_event_invalid_value``,
  ``meter_event_value_too_many_digits``, ``timestamp_in_future``,
  ``timestamp_too_far_in_past`` (and ``no_meter``, ``missing_dimension_payload_keys``,
  ``meter_event_dimension_count_too_high``, which the emulator does not produce).
  :func:`content_error` returns the first such failure; the caller either reports it
  later (:mod:`stripe_emulator.meter_errors`, for v1 events and the v2 stream, whose
  docstring says "Events are processed asynchronously, including validation") or
  raises it as a 400 (``POST /v2/billing/meter_events``: "Events are validated
  synchronously, but are processed asynchronously", stripe-python 15
  ``stripe/v2/billing/_meter_event_service.py``).

The message of ``meter_event_no_customer_defined`` is the one in Stripe's v2 Event
example (https://docs.stripe.com/api/v2/core/events/object): "Customer mapping key
stripe_customer_id not found in payload."; the others are the emulator's wording.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import StripeError, invalid, missing_param
from .forms import as_int
from .store import Store, random_token

PAST_WINDOW = 35 * 86400
FUTURE_WINDOW = 5 * 60
_WHOLE = re.compile(r"^-?\d+$")


@dataclass(frozen=True)
class ContentError:
    """A failure Stripe reports asynchronously: ``code`` and ``message`` as in the error
    report's ``sample_errors``; ``param`` for the synchronous (v2) 400."""

    code: str
    message: str
    param: str

    def as_400(self) -> StripeError:
        return invalid(self.message, param=self.param, code=self.code)


def parse_iso(value: str, param: str) -> int:
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except (ValueError, AttributeError):
        raise invalid(f"Invalid timestamp: {value}", param=param) from None


def _meter_for(store: Store, event_name: str, param: str, *, required=True) -> dict | None:
    """The active meter of ``event_name``, else its newest inactive one (whose events
    are ``archived_meter`` errors); no meter at all is a 400 (``required``), else None
    (the v2 stream validates asynchronously)."""
    meters = [m for m in store.all("billing.meter") if m["event_name"] == event_name]
    for meter in meters:
        if meter["status"] == "active":
            return meter
    if meters:
        return meters[0]
    if not required:
        return None
    raise invalid(f"No active meter was found for event_name '{event_name}'.", param=param)


def _value(meter: dict, raw: str | None, param: str) -> tuple[int | None, ContentError | None]:
    """A meter event value. Stripe documents no maximum: payload values are strings and
    must be whole numbers ("Usage values" in the guide above). Every whole number the
    emulator can parse is accepted; one too long to parse at all (more than
    ``sys.get_int_max_str_digits()`` digits) is ``meter_event_value_too_many_digits``."""
    if raw is None:
        if meter["default_aggregation"]["formula"] == "count":
            return 1, None
        key = meter["value_settings"]["event_payload_key"]
        return None, ContentError(
            "meter_event_invalid_value", f"Value key {key} not found in payload.", param
        )
    if not _WHOLE.match(raw.strip()):
        return None, ContentError(
            "meter_event_invalid_value",
            f"Meter event values must be whole numbers, got '{raw}'.",
            param,
        )
    try:
        return int(raw), None
    except ValueError:
        return None, ContentError(
            "meter_event_value_too_many_digits", "Meter event value has too many digits.", param
        )


def parse_event(
    req, params: dict, prefix: str = "", *, iso_time=False, meter_required=True
) -> dict:
    """The synchronous checks: a meter event ready for :func:`content_error` and
    recording; raises Stripe's 400 for a malformed request. ``meter_required=False``
    (the v2 stream): an unknown ``event_name`` gives ``meter: None`` instead of a 400."""
    store = req.store
    event_name = params.get("event_name")
    if not event_name:
        raise missing_param(f"{prefix}event_name")
    meter = _meter_for(store, event_name, f"{prefix}event_name", required=meter_required)
    payload = params.get("payload")
    if not isinstance(payload, dict):
        raise missing_param(f"{prefix}payload")
    payload = {str(k): str(v) for k, v in payload.items()}
    identifier = params.get("identifier") or random_token(24)
    if len(identifier) > 100:
        raise invalid("identifier must be at most 100 characters.", param=f"{prefix}identifier")
    raw_time = params.get("timestamp")
    if raw_time in (None, ""):
        timestamp = None
    elif iso_time:
        timestamp = parse_iso(raw_time, f"{prefix}timestamp")
    else:
        timestamp = as_int(raw_time, f"{prefix}timestamp")
    customer_key = meter["customer_mapping"]["event_payload_key"] if meter else None
    customer_id = payload.get(customer_key) if customer_key else None
    return {
        "event_name": event_name,
        "identifier": identifier,
        "payload": payload,
        "timestamp": store.customer_now(customer_id) if timestamp is None else timestamp,
        "created": time.time(),
        # When Stripe received it on the customer's clock (test clocks move it): the
        # 24-hour window for cancelling counts from here.
        "_received_at": store.customer_now(customer_id),
        "meter": meter["id"] if meter else None,
        "customer": customer_id,
        "value": None,
        "cancelled": False,
        "_prefix": prefix,
    }


def content_error(store: Store, event: dict) -> ContentError | None:
    """The first asynchronous failure of a parsed event (and its value set), or None."""
    prefix = event.pop("_prefix", "")
    meter = store.get("billing.meter", event["meter"])
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    if meter["status"] != "active":
        return ContentError(
            "archived_meter",
            f"Meter {meter['id']} for event_name '{event['event_name']}' is inactive.",
            f"{prefix}event_name",
        )
    customer_id = event["customer"]
    if not customer_id:
        return ContentError(
            "meter_event_no_customer_defined",
            f"Customer mapping key {customer_key} not found in payload.",
            f"{prefix}payload[{customer_key}]",
        )
    if store.get("customer", customer_id) is None:
        return ContentError(
            "meter_event_customer_not_found",
            f"Customer {customer_id} not found.",
            f"{prefix}payload[{customer_key}]",
        )
    value, error = _value(meter, event["payload"].get(value_key), f"{prefix}payload[{value_key}]")
    if error is not None:
        return error
    event["value"] = value
    now = store.customer_now(customer_id)
    if event["timestamp"] < now - PAST_WINDOW:
        return ContentError(
            "timestamp_too_far_in_past",
            "Meter event timestamps must be within the past 35 days.",
            f"{prefix}timestamp",
        )
    if event["timestamp"] > now + FUTURE_WINDOW:
        return ContentError(
            "timestamp_in_future",
            "Meter event timestamps can be at most 5 minutes in the future.",
            f"{prefix}timestamp",
        )
    return None


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
