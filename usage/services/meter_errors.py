"""Stripe's asynchronous meter event errors, applied to the outbox.

Stripe answers ``POST /v1/billing/meter_events`` with 200 before it has checked the
event against the meter and the customer; an event that fails those checks is not
counted and is reported later in a ``v1.billing.meter.error_report_triggered`` event
(received by :mod:`billing.services.thin_events`, handed here). Its ``data.reason.
error_types[]`` give a ``code`` (``meter_event_customer_not_found``,
``meter_event_no_customer_defined``, ``meter_event_invalid_value``, ``archived_meter``,
``timestamp_too_far_in_past``, ...; stripe-python 15 ``stripe/events/
_v1_billing_meter_error_report_triggered_event.py``), an ``error_count`` and
``sample_errors[]`` with ``error_message`` and ``request.identifier``, "The request
idempotency key". Meterdesk sends every report with its identifier as the
Idempotency-Key too, so the sample names the report either way.

A matching report that was ``sent`` becomes ``failed`` (``too_late`` for
``timestamp_too_far_in_past``) with Stripe's code and message: admin lists it, its
period's reconciliation names the code, and admin's retry re-sends it under a new
identifier (:func:`usage.services.reporting.usage_report_retry` explains why). Errors
the samples do not name (Stripe sends samples, not every event) are counted in the
outcome stored on the thin event and logged; the period's reconciliation shows the
units Stripe is missing. Applying the same report twice changes nothing.
"""

from __future__ import annotations

import logging

from usage.models import UsageReport

log = logging.getLogger(__name__)
Status = UsageReport.Status

EVENT_TYPE = "v1.billing.meter.error_report_triggered"


def _apply_sample(*, identifier: str, code: str, message: str, event_id: str) -> str:
    """'marked', 'already' (applied before) or 'unknown' (no sent report of ours)."""
    if not identifier:
        return "unknown"
    status = Status.TOO_LATE if code == "timestamp_too_far_in_past" else Status.FAILED
    error = f"Stripe refused it after accepting it: {code}: {message} (error report {event_id})"
    updated = UsageReport.objects.filter(identifier=identifier, status=Status.SENT).update(
        status=status, stripe_error_code=code[:64], last_error=error[:2000], lease_until=None
    )
    if updated:
        return "marked"
    if UsageReport.objects.filter(
        identifier=identifier, status=status, stripe_error_code=code[:64]
    ).exists():
        return "already"
    return "unknown"


def meter_error_report_apply(*, event: dict) -> str:
    """Mark the reports an error report names; returns what was done, for staff."""
    data = event.get("data") or {}
    reason = data.get("reason") or {}
    event_id = str(event.get("id") or "")
    meter_id = (event.get("related_object") or {}).get("id", "")
    counts = {"marked": 0, "already": 0, "unknown": 0}
    unsampled = 0
    codes = []
    for error_type in reason.get("error_types") or []:
        code = str(error_type.get("code") or "unknown")
        samples = error_type.get("sample_errors") or []
        codes.append(f"{code} x{error_type.get('error_count', len(samples))}")
        unsampled += max(0, int(error_type.get("error_count") or 0) - len(samples))
        for sample in samples:
            request = sample.get("request") or {}
            outcome = _apply_sample(
                identifier=str(request.get("identifier") or ""),
                code=code,
                message=str(sample.get("error_message") or ""),
                event_id=event_id,
            )
            counts[outcome] += 1
    unmatched = counts["unknown"] + unsampled
    if unmatched:
        log.warning(
            "meter error report %s (meter %s): %s error(s) not matched to a sent report; "
            "reconciliation will show the units Stripe is missing",
            event_id,
            meter_id,
            unmatched,
        )
    return (
        f"meter {meter_id}: {', '.join(codes) or 'no errors'}; {counts['marked']} report(s) "
        f"marked failed, {counts['already']} already marked, {unmatched} not matched to a "
        "sent report (see reconciliation)"
    )
