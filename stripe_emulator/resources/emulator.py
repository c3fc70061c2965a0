"""Control endpoints (no auth, never faulted): health, reset, faults, webhook log, webhook
forwarding, the v2 meter event stream's settings and queue, and moving the emulator's own
clock forward (for subscriptions that are not on a test clock)."""

from __future__ import annotations

from ..errors import invalid
from ..forms import as_int
from ..routing import Request, route


@route("GET", "/_emulator/health", auth="none")
def health(req: Request):
    return {"status": "ok", "account": req.store.account_id}


@route("POST", "/_emulator/reset", auth="none")
def reset(req: Request):
    req.app.reset()
    return {"status": "reset"}


@route("GET", "/_emulator/faults", auth="none")
def get_faults(req: Request):
    return req.app.faults.as_dict()


@route("POST", "/_emulator/faults", auth="none")
def set_faults(req: Request):
    params = req.params
    try:
        req.app.faults.configure(
            rate=params.get("rate"),
            statuses=params.get("statuses"),
            latency_ms=params.get("latency_ms"),
            after_record_rate=params.get("after_record_rate"),
            after_record_ms=params.get("after_record_ms"),
            duplicate_identifiers=params.get("duplicate_identifiers"),
        )
    except (TypeError, ValueError) as exc:
        raise invalid(f"Invalid fault settings: {exc}") from None
    return req.app.faults.as_dict()


@route("GET", "/_emulator/webhook_deliveries", auth="none")
def deliveries(req: Request):
    return {"object": "list", "data": list(req.app.dispatcher.deliveries)}


@route("GET", "/_emulator/webhook_forwarding", auth="none")
def get_forwarding(req: Request):
    return {"object": "list", "data": req.app.dispatcher.forwarding.rules()}


@route("POST", "/_emulator/webhook_forwarding", auth="none")
def set_forwarding(req: Request):
    """``{"from": "https://meterdesk.example", "to": "http://127.0.0.1:8000"}`` delivers
    events for endpoints under ``from`` to ``to`` instead (``to`` empty or null: remove)."""
    params = req.params
    if not params.get("from"):
        raise invalid("Missing required param: from.", param="from")
    if "to" not in params:
        raise invalid("Missing required param: to.", param="to")
    try:
        req.app.dispatcher.forwarding.set(params["from"], params["to"] or None)
    except ValueError as exc:
        raise invalid(f"Invalid forwarding rule: {exc}") from None
    return get_forwarding(req)


@route("POST", "/_emulator/time/advance", auth="none")
def advance_time(req: Request):
    """Shift the emulator's "real" time forward by ``seconds``. The real-time thread then
    closes the periods that ended (within ``--tick`` seconds)."""
    seconds = as_int(req.params.get("seconds", 0), "seconds", minimum=0)
    req.store.time_offset += seconds
    return {"now": req.store.real_now(), "offset": req.store.time_offset}


@route("GET", "/_emulator/meter_event_stream", auth="none")
def get_stream(req: Request):
    """The v2 meter event stream's settings and counters (events pending, processed,
    duplicates not counted again, dropped for want of a meter)."""
    return req.app.meter_event_stream.as_dict()


@route("POST", "/_emulator/meter_event_stream", auth="none")
def set_stream(req: Request):
    """``{"delay": seconds, "session_seconds": n, "refuse": status}`` (``refuse`` 0: off;
    e.g. 503 answers every session and stream request with it, before anything happens)."""
    params = req.params
    try:
        req.app.meter_event_stream.configure(
            delay=params.get("delay"),
            session_seconds=params.get("session_seconds"),
            refuse=params.get("refuse"),
        )
    except (TypeError, ValueError) as exc:
        raise invalid(f"Invalid stream settings: {exc}") from None
    return req.app.meter_event_stream.as_dict()


@route("POST", "/_emulator/meter_event_stream/drain", auth="none")
def drain_stream(req: Request):
    """Apply the queued stream events now; answers how many and the counters."""
    applied = req.app.meter_event_stream.drain()
    return {"applied": applied, **req.app.meter_event_stream.as_dict()}
