"""Reporting, step 2 through Stripe's v2 meter event stream (``USAGE_REPORT_TRANSPORT =
"v2_stream"``): many reports, across customers and meters, 100 to a call.

Stripe's rules (each cited in ``stripe_emulator/README.md``):

- ``POST /v2/billing/meter_event_session`` (API host, secret key) gives an
  ``authentication_token`` "only valid for 15 minutes"
  (https://docs.stripe.com/api/v2/billing/meter-event-stream/session/create). Each worker
  process keeps one session and creates the next one when less than
  ``SESSION_REFRESH_MARGIN`` (60 s) is left, so no call goes out on a token about to
  expire; a 401 ``billing_meter_event_session_expired`` anyway (a clock that disagrees
  with Stripe's, an emulator reset) makes one new session and one retry.
- ``POST /v2/billing/meter_event_stream`` on the meter-events host
  (``base_address="meter_events"`` in stripe-python, ``Authorization: Bearer <token>``:
  the token is passed as the call's ``api_key``), "up to 100 events per request",
  "up to 10,000 requests per second in livemode", answered ``{}`` with nothing about the
  events: "Events are processed asynchronously, including validation"
  (https://docs.stripe.com/api/v2/billing/meter-event-sessions/create-async).

**Exactly once.** Nothing changes in the outbox: every report keeps the deterministic
identifier it was claimed with (:func:`usage.services.report_claim.report_identifier`),
is leased before it is sent (one report in flight per customer and meter: the partial
unique index ``usage_report_one_in_flight``; a batch takes only the oldest unsent report
of each pair, so a pair's reports still reach Stripe in order) and is marked sent only
after the stream call returned 2xx. A worker killed after the call and before the mark
leaves leases that expire; the reports go out again, in whatever batch, with the same
identifiers, and Stripe counts each identifier once ("We'll enforce uniqueness within a
rolling 24 hour period", ``events.identifier`` on the page above; a lease is minutes).
Unlike v1 there is no synchronous answer to a resend (no "An event already exists with
identifier" 400): the dedupe happens where Stripe applies the events, and the resend is
simply answered ``{}`` like any other call. Content errors arrive later in
``v1.billing.meter.error_report_triggered`` events, applied by identifier as for v1
(:mod:`usage.services.meter_errors`).

**Fallback to v1, never across an uncertain send.** A report stays on the endpoint it
was first put on the wire through (``UsageReport.transport``, set before the call): Stripe
documents the same identifier rule for both endpoints but does not say the two share one
identifier space, so a report that may have landed through one is only ever resent
through the same one. When Stripe surely did not take the batch (no session could be
made, or a 400/401 refused the batch whole: the stream refuses a malformed batch whole,
and v1 answers per report and isolates the bad one) the batch's reports go one by one
through the v1 path (:func:`usage.services.report_send.usage_report_send`) with the same
identifiers. When the outcome is unknown (a 5xx, a timeout or a connection error) the
reports stay on the stream and are retried with backoff. Either way this process sends
reports not yet on the wire through v1 for ``V2_COOLDOWN_SECONDS``. A 429 is a retry
with backoff, not a fallback (v1's limit is lower).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import stripe
from django.utils import timezone

from usage.models import UsageReport
from usage.services.report_claim import STRIPE_PAST_WINDOW, TOO_LATE_MARGIN, PassResult
from usage.services.report_failures import failing_pairs, reporting_failure_clear
from usage.services.report_send import (
    PASS_TIME_BUDGET,
    _acquire,
    _mark,
    _mark_retry,
    _send_failed,
    _sendable_heads,
    usage_report_send,
)

log = logging.getLogger(__name__)
Status = UsageReport.Status
Transport = UsageReport.Transport

STREAM_MAX_EVENTS = 100  # "Supports up to 100 events per request"
SESSION_REFRESH_MARGIN = timedelta(seconds=60)
V2_COOLDOWN_SECONDS = 60.0


@dataclass
class _Session:
    token: str
    expires_at: datetime
    key: tuple


_session: _Session | None = None
_v2_down_until = 0.0  # time.monotonic() until which this process sends through v1
# What this process sent, for the benchmark and logs: stream calls, sessions created,
# reports sent through the stream, reports that fell back to v1.
stats = {"stream_calls": 0, "sessions": 0, "stream_reports": 0, "fallback_reports": 0}


def stream_state_reset() -> None:
    """Forget the session and the cooldown (tests; a process otherwise keeps them)."""
    global _session, _v2_down_until
    _session, _v2_down_until = None, 0.0
    for name in stats:
        stats[name] = 0


def _session_key() -> tuple:
    from billing.stripe_api import api_base, api_key, meter_events_base

    return (os.getpid(), api_key(), api_base(), meter_events_base())


def _parse_time(value) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def stream_session_token(client, *, force_new: bool = False) -> str:
    """This process's session token, created when missing, for another client or host,
    or within ``SESSION_REFRESH_MARGIN`` of its expiry (wall-clock time: Stripe's)."""
    global _session
    key = _session_key()
    now = timezone.now()
    if (
        force_new
        or _session is None
        or _session.key != key
        or _session.expires_at - now < SESSION_REFRESH_MARGIN
    ):
        created = client.v2.billing.meter_event_session.create()
        stats["sessions"] += 1
        _session = _Session(
            token=created.authentication_token,
            expires_at=_parse_time(created.expires_at),
            key=key,
        )
    return _session.token


def _event(report: UsageReport) -> dict:
    # Whole seconds, as the v1 path sends them (ISO 8601 as in Stripe's example).
    ts = datetime.fromtimestamp(int(report.timestamp.timestamp()), UTC)
    return {
        "event_name": report.event_name,
        "identifier": report.identifier,
        "payload": {
            report.meter.customer_payload_key: report.stripe_customer_id,
            report.meter.value_payload_key: str(report.value),
        },
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }


class _NotTaken(Exception):
    """Stripe surely did not take the batch: no session, or the call was refused whole."""


def _stream_call(client, limiter, events: list[dict]) -> None:
    """One stream call; a 401 for the session makes one new session and one retry."""
    for attempt in (1, 2):
        try:
            token = stream_session_token(client, force_new=attempt == 2)
        except stripe.StripeError as exc:
            raise _NotTaken(exc) from exc
        limiter.acquire()
        stats["stream_calls"] += 1
        try:
            client.v2.billing.meter_event_stream.create({"events": events}, {"api_key": token})
            return
        except stripe.TemporarySessionExpiredError as exc:
            if attempt == 2:
                raise _NotTaken(exc) from exc
        except (stripe.InvalidRequestError, stripe.AuthenticationError) as exc:
            raise _NotTaken(exc) from exc  # a 400/401 refuses the whole batch


def _retry(pks: list[int], *, error: str, now: datetime) -> dict[int, str]:
    moment = max(now, timezone.now())
    return {pk: _mark_retry(pk, error=error, now=moment) for pk in pks}


def _mark_stream_sent(pks: list[int]) -> int:
    return UsageReport.objects.filter(pk__in=pks, status=Status.SENDING).update(
        status=Status.SENT,
        sent_at=timezone.now(),
        lease_until=None,
        transport=Transport.V2_STREAM,
        stripe_response_id="",
    )


def _v1_fallback(pks: list[int], *, client, limiter, now: datetime) -> dict[int, str]:
    stats["fallback_reports"] += len(pks)
    return {
        pk: usage_report_send(report_id=pk, client=client, limiter=limiter, now=now) for pk in pks
    }


def usage_reports_stream_send(
    *, report_ids: list[int], client, limiter, now: datetime | None = None
) -> dict[int, str]:
    """Send leased reports (at most 100) in one stream call; their new statuses."""
    global _v2_down_until
    now = now or timezone.now()
    statuses: dict[int, str] = {}
    reports = list(UsageReport.objects.select_related("meter").filter(pk__in=report_ids))
    batch = []
    for report in reports:
        if report.timestamp < now - STRIPE_PAST_WINDOW + TOO_LATE_MARGIN:
            _mark(report, status=Status.TOO_LATE, error="older than Stripe's 35-day window")
            statuses[report.pk] = Status.TOO_LATE
        else:
            batch.append(report)
    if not batch:
        return statuses
    # Reports already put on the wire through v1 are resent through v1 only.
    on_v1 = [r.pk for r in batch if r.transport == Transport.V1]
    if on_v1:
        statuses |= _v1_fallback(on_v1, client=client, limiter=limiter, now=now)
    batch = [r for r in batch if r.transport != Transport.V1]
    pks = [r.pk for r in batch]
    if not pks:
        return statuses
    if time.monotonic() < _v2_down_until:
        on_stream = [r.pk for r in batch if r.transport == Transport.V2_STREAM]
        fresh = [pk for pk in pks if pk not in on_stream]
        return (
            statuses
            | _retry(on_stream, error="v2 stream cooling down", now=now)
            | _v1_fallback(fresh, client=client, limiter=limiter, now=now)
        )
    UsageReport.objects.filter(pk__in=pks).update(transport=Transport.V2_STREAM)
    try:
        _stream_call(client, limiter, [_event(r) for r in batch])
    except stripe.RateLimitError as exc:  # back off; v1 would only add to the load
        return statuses | _retry(pks, error=f"v2 stream 429: {exc}", now=now)
    except _NotTaken as exc:  # nothing landed: v1 may take these reports
        _v2_down_until = time.monotonic() + V2_COOLDOWN_SECONDS
        cause = exc.__cause__
        log.warning(
            "v2 meter event stream refused (%s %s: %s): %d reports through v1; v1 for %gs",
            type(cause).__name__,
            getattr(cause, "http_status", None),
            cause,
            len(pks),
            V2_COOLDOWN_SECONDS,
        )
        UsageReport.objects.filter(pk__in=pks).update(transport="")
        return statuses | _v1_fallback(pks, client=client, limiter=limiter, now=now)
    except stripe.StripeError as exc:  # 5xx, timeout, network: may have landed
        _v2_down_until = time.monotonic() + V2_COOLDOWN_SECONDS
        log.warning(
            "v2 meter event stream failed (%s %s: %s): %d reports retried on the stream",
            type(exc).__name__,
            getattr(exc, "http_status", None),
            exc,
            len(pks),
        )
        return statuses | _retry(pks, error=f"v2 stream: {exc}", now=now)
    _mark_stream_sent(pks)
    stats["stream_reports"] += len(pks)
    return statuses | dict.fromkeys(pks, Status.SENT)


def _lease_batch(heads: list[int], moment: datetime) -> tuple[list[int], list[int]]:
    """Lease up to 100 of ``heads``; (leased, the heads not tried yet)."""
    leased: list[int] = []
    for i, pk in enumerate(heads):
        if len(leased) == STREAM_MAX_EVENTS:
            return leased, heads[i:]
        if _acquire(pk, moment):
            leased.append(pk)
    return leased, []


def usage_reports_stream_due(
    *, now: datetime | None = None, client=None, limiter=None, result: PassResult | None = None
) -> PassResult:
    """Send every report that is due through the stream, 100 a call, in rounds (each round
    takes the oldest unsent report of every pair), until none is left or time is up."""
    from billing.stripe_api import stripe_client
    from usage.services.limiter import report_limiter

    result = result or PassResult()
    client = client or stripe_client(max_network_retries=0)
    limiter = limiter or report_limiter()
    started = time.monotonic()
    fixed_now = now
    failing = failing_pairs()
    while time.monotonic() - started < PASS_TIME_BUDGET:
        moment = fixed_now or timezone.now()
        progressed = False
        heads = _sendable_heads(moment)
        while heads and time.monotonic() - started < PASS_TIME_BUDGET:
            leased, heads = _lease_batch(heads, moment)
            if not leased:
                continue
            try:
                statuses = usage_reports_stream_send(
                    report_ids=leased, client=client, limiter=limiter, now=moment
                )
            except Exception as exc:  # a bug or the database: release, record, go on
                for pk in leased:
                    _send_failed(pk, exc, moment, result)
                continue
            progressed |= _count(statuses, result, moment=moment, failing=failing)
        if not progressed:
            break
    return result


def _count(statuses: dict[int, str], result: PassResult, *, moment, failing) -> bool:
    progressed = False
    for pk, status in statuses.items():
        if status == Status.SENT:
            result.sent += 1
            progressed = True
            if failing:
                pair = UsageReport.objects.values_list("account_id", "meter_id").get(pk=pk)
                if pair in failing:
                    reporting_failure_clear(account_id=pair[0], meter_id=pair[1], now=moment)
                    failing.discard(pair)
        elif status == Status.PENDING:
            result.retried += 1
        elif status == Status.FAILED:
            result.failed += 1
        elif status == Status.TOO_LATE:
            result.too_late.append(pk)
            progressed = True
    return progressed
