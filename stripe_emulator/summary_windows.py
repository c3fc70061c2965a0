"""The time window of ``GET /v1/billing/meters/{id}/event_summaries``, checked as Stripe
checks it.

Stripe's generated client (stripe-python 15, ``stripe/params/billing/
_meter_event_summary_list_params.py``, ``MeterEventSummaryListParams``; the same text is
in ``_meter_event_summary_service.py`` and the API reference "List billing meter event
summaries", https://docs.stripe.com/api/billing/meter-event-summary/list):

- ``start_time``: "The timestamp from when to start aggregating meter events
  (inclusive). Must be aligned with minute boundaries."
- ``end_time``: "The timestamp from when to stop aggregating meter events (exclusive).
  Must be aligned with minute boundaries."
- ``value_grouping_window``: "For hourly granularity, start and end times must align
  with hour boundaries (e.g., 00:00, 01:00, ..., 23:00). For daily granularity, start
  and end times must align with UTC day boundaries (00:00 UTC)."

A request that breaks this is a 400 ``invalid_request_error`` naming the parameter.
Stripe does not document the message's wording; the emulator's follows the docstrings.
"""

from __future__ import annotations

from .errors import invalid

_STEP = {None: 60, "hour": 3600, "day": 86400}
_BOUNDARY = {
    None: "minute boundaries",
    "hour": "hour boundaries (e.g., 00:00, 01:00, ..., 23:00) when value_grouping_window is hour",
    "day": "UTC day boundaries (00:00 UTC) when value_grouping_window is day",
}


def check_summary_window(*, start: int, end: int, window: str | None) -> None:
    """Raise Stripe's 400 when ``start``/``end`` (Unix seconds) are not aligned to the
    minute, or to the hour/day of ``window`` (``None``, ``"hour"`` or ``"day"``)."""
    step = _STEP[window or None]
    for param, value in (("start_time", start), ("end_time", end)):
        if value % step:
            raise invalid(
                f"Invalid {param}: {value}. {param} must be aligned with "
                f"{_BOUNDARY[window or None]}.",
                param=param,
            )
