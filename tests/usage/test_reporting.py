"""Reporting to Stripe meters through the outbox, against the emulator."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from stripe_emulator.testing import control
from tests.usage.conftest import stripe_total
from usage.models import UsageEvent, UsageReport
from usage.selectors.periods import calendar_month
from usage.services import report_claim, report_send, reporting
from usage.services.ingest import usage_events_ingest
from usage.services.report_claim import report_identifier
from usage.services.reporting import usage_report_pass

pytestmark = pytest.mark.django_db(transaction=True)
Status = UsageReport.Status


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.USAGE_REPORT_RETRY_BASE_SECONDS = 0.01
    settings.USAGE_REPORT_RETRY_MAX_SECONDS = 0.05
    settings.USAGE_REPORT_MAX_CALLS_PER_SECOND = 1000.0


def _ingest(events, now=None):
    result = usage_events_ingest(events=events, now=now)
    assert result.rejected == [], result.rejected
    return result


def _period(stripe_client, customer: str) -> tuple[datetime, datetime]:
    """The subscription's current period, read from Stripe (not from our mirror)."""
    [sub] = stripe_client.v1.subscriptions.list({"customer": customer}).data
    item = sub["items"].data[0]
    return (
        datetime.fromtimestamp(item.current_period_start, UTC),
        datetime.fromtimestamp(item.current_period_end, UTC),
    )


def _run_until_quiet(max_passes: int = 200) -> int:
    for passes in range(1, max_passes + 1):
        usage_report_pass()
        unsent = UsageReport.objects.filter(status__in=[Status.PENDING, Status.SENDING])
        if not unsent.exists() and not UsageEvent.objects.filter(report__isnull=True).exists():
            return passes
        time.sleep(0.02)
    raise AssertionError(f"reports still unsent after {max_passes} passes")


def test_one_pass_reports_sum_count_and_last_into_the_billing_period(
    make_customers, subscribe, stripe_client, capsys
):
    [cus] = make_customers(1)
    subscribe(cus)
    start, end = _period(stripe_client, cus)
    now = int(start.timestamp()) + 30  # every "now" event is inside the billing period
    early = int((timezone.now() - timedelta(days=3)).timestamp())  # before the subscription
    events = (
        [{"event_name": "api_calls", "customer": cus, "timestamp": now, "identifier": f"c{i}"}
         for i in range(7)]
        + [{"event_name": "data_transfer_gb", "customer": cus, "value": v, "timestamp": now,
            "identifier": f"g{v}"} for v in (10, 20, 12)]
        + [{"event_name": "seats", "customer": cus, "value": 4, "timestamp": now - 2,
            "identifier": "s1"},
           {"event_name": "seats", "customer": cus, "value": 6, "timestamp": now,
            "identifier": "s2"},
           {"event_name": "seats", "customer": cus, "value": 5, "timestamp": now - 1,
            "identifier": "s3"},
           {"event_name": "api_calls", "customer": cus, "timestamp": early, "identifier": "e1"}]
    )  # fmt: skip
    _ingest(events)

    call_command("report_usage")
    out = capsys.readouterr().out
    assert "claimed 14 events into 4 reports (0 too late); sent 4" in out

    assert (
        stripe_total(stripe_client, event_name="api_calls", customer=cus, start=start, end=end) == 7
    )
    assert (
        stripe_total(
            stripe_client, event_name="data_transfer_gb", customer=cus, start=start, end=end
        )
        == 42
    )
    assert stripe_total(stripe_client, event_name="seats", customer=cus, start=start, end=end) == 6
    # The event from before the subscription went into its calendar month, cut where
    # the subscription began.
    month = calendar_month(datetime.fromtimestamp(early, UTC))
    early_report = UsageReport.objects.get(events__identifier="e1")
    assert (early_report.period_start, early_report.period_end) == (month[0], min(month[1], start))
    assert early_report.value == 1
    # Reports of the subscription's period carry its exact bounds and a deterministic id.
    calls = UsageReport.objects.get(event_name="api_calls", period_start=start)
    assert (calls.period_end, calls.sequence, calls.value, calls.status) == (end, 1, 7, "sent")
    assert calls.identifier == report_identifier(
        customer_id=cus, event_name="api_calls", period_start=start, seq=1
    )
    assert not UsageEvent.objects.filter(report__isnull=True).exists()

    # A second pass has nothing to do and sends nothing.
    call_command("report_usage")
    assert "claimed 0 events into 0 reports (0 too late); sent 0" in capsys.readouterr().out
    assert UsageReport.objects.count() == 4
    assert (
        stripe_total(stripe_client, event_name="api_calls", customer=cus, start=start, end=end) == 7
    )


def test_twenty_percent_faults_end_with_stripe_equal_to_the_ledger(
    make_customers, subscribe, stripe_client, stripe_emulator
):
    customers = make_customers(4)
    for cus in customers:
        subscribe(cus)
    now = int(time.time())
    expected = {}
    waves = 6
    for wave in range(waves):
        events = []
        for c, cus in enumerate(customers):
            for i in range(5):
                ident = f"w{wave}-{c}-{i}"
                value = wave * 10 + i + c
                events.append(
                    {
                        "event_name": "data_transfer_gb",
                        "customer": cus,
                        "value": value,
                        "timestamp": now,
                        "identifier": "g" + ident,
                    }
                )
                events.append(
                    {
                        "event_name": "api_calls",
                        "customer": cus,
                        "timestamp": now,
                        "identifier": "c" + ident,
                    }
                )
                expected[(cus, "data_transfer_gb")] = (
                    expected.get((cus, "data_transfer_gb"), 0) + value
                )
                expected[(cus, "api_calls")] = expected.get((cus, "api_calls"), 0) + 1
            events.append(
                {
                    "event_name": "seats",
                    "customer": cus,
                    "value": wave + c,
                    "timestamp": now + wave,  # after the subscription began
                    "identifier": "s" + ident,
                }
            )
            expected[(cus, "seats")] = waves - 1 + c
        _ingest(events)
        control(stripe_emulator, "/_emulator/faults", {"rate": 0.2, "statuses": [429, 500]})
        usage_report_pass()  # interleave: more events arrive while reports retry
    passes = _run_until_quiet()
    control(stripe_emulator, "/_emulator/faults", {"rate": 0.0})

    assert passes >= 1
    assert UsageReport.objects.filter(attempts__gt=1).exists()  # faults were hit and retried
    assert set(UsageReport.objects.values_list("status", flat=True)) == {"sent"}
    for (cus, event_name), total in expected.items():
        start, end = _period(stripe_client, cus)
        got = stripe_total(stripe_client, event_name=event_name, customer=cus, start=start, end=end)
        assert got == total, (cus, event_name)


def test_crash_after_the_outbox_commit_then_a_second_pass_sends_exactly_once(
    customer, subscribe, stripe_client, monkeypatch
):
    subscribe(customer)
    start, end = _period(stripe_client, customer)
    _ingest([{"event_name": "data_transfer_gb", "customer": customer, "value": 25,
              "timestamp": int(time.time()), "identifier": "x1"}])  # fmt: skip

    def crash(**kwargs):
        raise SystemExit("worker died after committing the report, before calling Stripe")

    monkeypatch.setattr(reporting, "usage_reports_send_due", crash)
    with pytest.raises(SystemExit):
        usage_report_pass()
    monkeypatch.undo()
    report = UsageReport.objects.get()
    assert (report.status, report.value) == ("pending", 25)
    assert UsageEvent.objects.get().report == report
    assert stripe_total(stripe_client, event_name="data_transfer_gb", customer=customer,
                        start=start, end=end) == 0  # fmt: skip

    usage_report_pass()
    report.refresh_from_db()
    assert report.status == "sent" and UsageReport.objects.count() == 1
    assert stripe_total(stripe_client, event_name="data_transfer_gb", customer=customer,
                        start=start, end=end) == 25  # fmt: skip


def test_crash_after_stripe_accepted_is_resent_and_counted_once(
    customer, subscribe, stripe_client, monkeypatch, settings
):
    subscribe(customer)
    start, end = _period(stripe_client, customer)
    _ingest([{"event_name": "data_transfer_gb", "customer": customer, "value": 40,
              "timestamp": int(time.time()), "identifier": "y1"}])  # fmt: skip
    calls = []
    real_send = report_send._send

    def counting_send(client, report):
        calls.append(report.identifier)
        return real_send(client, report)

    def crash(report, **kwargs):
        raise SystemExit("killed after Stripe answered 200, before marking the report sent")

    monkeypatch.setattr(report_send, "_send", counting_send)
    monkeypatch.setattr(report_send, "_mark_sent", crash)
    with pytest.raises(SystemExit):
        usage_report_pass()
    monkeypatch.undo()
    monkeypatch.setattr(report_send, "_send", counting_send)
    report = UsageReport.objects.get()
    assert report.status == "sending"  # its sender died holding the lease

    usage_report_pass()  # the lease has not expired: nobody else may send it
    assert len(calls) == 1
    later = timezone.now() + timedelta(seconds=settings.USAGE_REPORT_LEASE_SECONDS + 1)
    usage_report_pass(now=later)
    report.refresh_from_db()
    assert report.status == "sent"
    assert calls == [report.identifier, report.identifier]  # resent with the same identifier
    assert stripe_total(stripe_client, event_name="data_transfer_gb", customer=customer,
                        start=start, end=end) == 40  # fmt: skip


def test_a_duplicate_identifier_after_a_crash_is_delivered_once(
    customer, subscribe, stripe_client, monkeypatch, settings
):
    """Stripe recorded the event but its idempotent 200 is gone (the key expired, or the
    answer was lost before Stripe kept it): the resend after the crash gets live
    Stripe's 400 "An event already exists with identifier ..." (Stripe-Should-Retry:
    false), which means delivered. The report ends sent, once; Stripe counts it once."""
    subscribe(customer)
    start, end = _period(stripe_client, customer)
    _ingest([{"event_name": "data_transfer_gb", "customer": customer, "value": 40,
              "timestamp": int(time.time()), "identifier": "dup1"}])  # fmt: skip
    calls = []
    real_send = report_send._send

    def recorded_then_killed(client, report):
        calls.append("first")
        client.v1.billing.meter_events.create(  # Stripe has it; no idempotent result kept
            {"event_name": report.event_name, "identifier": report.identifier,
             "timestamp": int(report.timestamp.timestamp()),
             "payload": {"stripe_customer_id": report.stripe_customer_id,
                         "value": str(report.value)}},
            {"idempotency_key": "another-key"},
        )  # fmt: skip
        raise SystemExit("killed before the answer was handled")

    def counting_send(client, report):
        calls.append("resend")
        return real_send(client, report)

    monkeypatch.setattr(report_send, "_send", recorded_then_killed)
    with pytest.raises(SystemExit):
        usage_report_pass()
    monkeypatch.setattr(report_send, "_send", counting_send)
    later = timezone.now() + timedelta(seconds=settings.USAGE_REPORT_LEASE_SECONDS + 1)
    usage_report_pass(now=later)
    usage_report_pass(now=later + timedelta(seconds=1))
    report = UsageReport.objects.get()
    assert (report.status, report.stripe_response_id) == ("sent", "duplicate-identifier")
    assert calls == ["first", "resend"]
    assert stripe_total(stripe_client, event_name="data_transfer_gb", customer=customer,
                        start=start, end=end) == 40  # fmt: skip


def test_late_events_produce_a_further_report_into_their_period(customer, subscribe, stripe_client):
    subscribe(customer)
    start, end = _period(stripe_client, customer)
    now = int(start.timestamp()) + 30  # clearly after the period's first second
    _ingest([
        {"event_name": "data_transfer_gb", "customer": customer, "value": 5, "timestamp": now,
         "identifier": "l1"},
        {"event_name": "seats", "customer": customer, "value": 8, "timestamp": now,
         "identifier": "ls1"},
    ])  # fmt: skip
    usage_report_pass()
    # Arriving after the period was reported: older timestamps, same period.
    _ingest([
        {"event_name": "data_transfer_gb", "customer": customer, "value": 7,
         "timestamp": int(start.timestamp()), "identifier": "l2"},
        {"event_name": "seats", "customer": customer, "value": 3,
         "timestamp": int(start.timestamp()), "identifier": "ls2"},
    ])  # fmt: skip
    usage_report_pass()
    reports = UsageReport.objects.filter(event_name="data_transfer_gb").order_by("sequence")
    assert [(r.sequence, r.value, r.status) for r in reports] == [(1, 5, "sent"), (2, 7, "sent")]
    assert stripe_total(stripe_client, event_name="data_transfer_gb", customer=customer,
                        start=start, end=end) == 12  # fmt: skip
    # The older seat count must not replace the newer one, in the ledger or in Stripe.
    assert stripe_total(stripe_client, event_name="seats", customer=customer,
                        start=start, end=end) == 8  # fmt: skip
    # A newer one does.
    _ingest([{"event_name": "seats", "customer": customer, "value": 2, "timestamp": now + 1,
              "identifier": "ls3"}])  # fmt: skip
    usage_report_pass()
    assert stripe_total(stripe_client, event_name="seats", customer=customer,
                        start=start, end=end) == 2  # fmt: skip


def test_events_past_stripes_window_are_flagged_too_late_not_dropped(
    customer, stripe_client, capsys
):
    now = timezone.now()
    old = int((now - timedelta(days=35) + timedelta(minutes=20)).timestamp())
    _ingest([
        {"event_name": "data_transfer_gb", "customer": customer, "value": 30, "timestamp": old,
         "identifier": "old1"},
        {"event_name": "data_transfer_gb", "customer": customer, "value": 12, "timestamp": old,
         "identifier": "old2"},
    ], now=now - timedelta(hours=2))  # fmt: skip
    # (ingested two hours earlier: ingestion keeps back about an hour of Stripe's 35 days)
    # The reporting pass runs an hour later (an outage): the events are now too old.
    result = usage_report_pass(now=now + timedelta(hours=1))
    report = UsageReport.objects.get()
    assert result.too_late == [report.pk]
    assert (report.status, report.value, report.event_count) == ("too_late", 42, 2)
    assert set(UsageEvent.objects.values_list("report", flat=True)) == {report.pk}
    month = calendar_month(datetime.fromtimestamp(old, UTC))
    assert stripe_total(stripe_client, event_name="data_transfer_gb", customer=customer,
                        start=month[0], end=month[1]) == 0  # fmt: skip


def test_report_usage_command_prints_too_late_reports(customer, capsys, monkeypatch):
    now = timezone.now()
    old = int((now - timedelta(days=35) + timedelta(minutes=5)).timestamp())
    # Ingested two hours earlier (ingestion keeps back about an hour of Stripe's 35 days).
    _ingest([{"event_name": "data_transfer_gb", "customer": customer, "value": 9,
              "timestamp": old, "identifier": "o1"}], now=now - timedelta(hours=2))  # fmt: skip
    call_command("report_usage")  # within the 10-minute safety margin of the window
    out = capsys.readouterr().out
    assert "(1 too late)" in out
    assert f"too late: report {UsageReport.objects.get().pk} 9 GB of data_transfer_gb" in out


def test_a_synchronous_400_marks_it_failed_and_admin_retry_keeps_the_identifier(
    customer, subscribe, stripe_client, admin_client, monkeypatch
):
    """A 400 at once (a malformed request: Stripe recorded nothing) is failed with
    Stripe's code; the retry sends the same identifier. (Content errors arrive later, in
    meter error reports: test_meter_error_reports.py.)"""
    import stripe

    subscribe(customer)
    start, end = _period(stripe_client, customer)
    _ingest([{"event_name": "data_transfer_gb", "customer": customer, "value": 3,
              "timestamp": int(time.time()), "identifier": "f1"}])  # fmt: skip
    real_send = report_send._send

    def refuse(client, report):
        raise stripe.InvalidRequestError(
            "Invalid integer: soon", "timestamp", code="parameter_invalid_integer",
            http_status=400,
        )  # fmt: skip

    monkeypatch.setattr(report_send, "_send", refuse)
    result = usage_report_pass()
    report = UsageReport.objects.get()
    assert (result.failed, report.status, report.attempts) == (1, "failed", 1)
    assert report.stripe_error_code == "parameter_invalid_integer"
    identifier = report.identifier

    monkeypatch.setattr(report_send, "_send", real_send)
    admin_client.post(
        "/admin/usage/usagereport/", {"action": "retry", "_selected_action": [report.pk]}
    )
    report.refresh_from_db()
    assert (report.status, report.identifier, report.resends) == ("pending", identifier, 0)
    usage_report_pass()
    report.refresh_from_db()
    assert report.status == "sent"
    assert stripe_total(stripe_client, event_name="data_transfer_gb", customer=customer,
                        start=start, end=end) == 3  # fmt: skip


def test_one_report_in_flight_per_customer_and_meter(customer):
    _ingest([{"event_name": "api_calls", "customer": customer, "identifier": "i1"}])
    report_claim.usage_reports_claim()
    first = UsageReport.objects.get()
    second = UsageReport.objects.create(
        account=first.account, meter=first.meter, period_start=first.period_start + timedelta(1),
        period_end=first.period_end + timedelta(1), sequence=1, identifier="other",
        stripe_customer_id=customer, event_name="api_calls", value=1, event_count=1,
        timestamp=first.timestamp, next_attempt_at=first.next_attempt_at,
    )  # fmt: skip
    now = timezone.now()
    assert report_send._sendable_heads(now) == [first.pk]  # the oldest of the pair only
    assert report_send._acquire(first.pk, now) is True
    assert report_send._acquire(second.pk, now) is False  # the partial unique index refuses
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageReport.objects.filter(pk=second.pk).update(status="sending")


def test_a_synchronous_old_timestamp_400_marks_the_report_too_late(customer, monkeypatch):
    """Should Stripe refuse the 35-day window at once (the emulator reports it later:
    test_meter_error_reports.py), the report is too_late, not failed."""
    import stripe

    def refuse(client, report):
        raise stripe.InvalidRequestError(
            "Meter event timestamps must be within the past 35 days.", "timestamp",
            code="timestamp_too_far_in_past", http_status=400,
        )  # fmt: skip

    monkeypatch.setattr(report_send, "_send", refuse)
    _ingest([{"event_name": "data_transfer_gb", "customer": customer, "value": 11,
              "identifier": "w1"}])  # fmt: skip
    usage_report_pass()
    report = UsageReport.objects.get()
    assert (report.status, report.value, report.attempts) == ("too_late", 11, 1)
    assert report.stripe_error_code == "timestamp_too_far_in_past"
    assert "35 days" in report.last_error


@pytest.mark.parametrize(
    ("message", "code", "status"),
    [
        ("An event with the identifier mdu_x already exists.", None, "sent"),
        ("Duplicate meter event.", "duplicate_meter_event", "sent"),
        ("Invalid payload.", "parameter_invalid", "failed"),
    ],
)
def test_a_400_about_the_identifier_already_used_means_it_landed(
    customer, monkeypatch, message, code, status
):
    import stripe

    def refuse(client, report):
        raise stripe.InvalidRequestError(message, "identifier", code=code, http_status=400)

    monkeypatch.setattr(report_send, "_send", refuse)
    _ingest([{"event_name": "api_calls", "customer": customer, "identifier": "d1"}])
    usage_report_pass()
    assert UsageReport.objects.get().status == status


@pytest.mark.parametrize(
    "error",
    [
        "RateLimitError 429",
        "APIError 500",
        "APIConnectionError None",
        "AuthenticationError 401",
    ],
)
def test_transient_errors_back_off_and_keep_the_identifier(customer, monkeypatch, settings, error):
    import stripe

    settings.USAGE_REPORT_RETRY_BASE_SECONDS = 10
    settings.USAGE_REPORT_RETRY_MAX_SECONDS = 100
    kind, status = error.split()
    seen = []

    def fail(client, report):
        seen.append(report.identifier)
        raise getattr(stripe, kind)("boom", http_status=None if status == "None" else int(status))

    monkeypatch.setattr(report_send, "_send", fail)
    _ingest([{"event_name": "api_calls", "customer": customer, "identifier": "t1"}])
    before = timezone.now()
    usage_report_pass()
    report = UsageReport.objects.get()
    assert (report.status, report.attempts) == ("pending", 1)
    assert report.last_error.startswith(kind)
    # First retry after base * 2**0 = 10 s, with "equal jitter": between 5 and 10 s.
    delay = (report.next_attempt_at - before).total_seconds()
    assert 5 <= delay <= 11
    usage_report_pass()  # not due yet: not sent again
    assert len(seen) == 1
    usage_report_pass(now=before + timedelta(seconds=11))
    report.refresh_from_db()
    assert report.attempts == 2
    # Second backoff doubles: between 10 and 20 s after the second attempt.
    delay = (report.next_attempt_at - (before + timedelta(seconds=11))).total_seconds()
    assert 10 <= delay <= 20
    assert seen == [report.identifier, report.identifier]


def test_after_max_attempts_the_report_is_failed_for_staff(customer, monkeypatch, settings):
    import stripe

    settings.USAGE_REPORT_MAX_ATTEMPTS = 3

    def fail(client, report):
        raise stripe.APIError("boom", http_status=503)

    monkeypatch.setattr(report_send, "_send", fail)
    _ingest([{"event_name": "api_calls", "customer": customer, "identifier": "m1"}])
    now = timezone.now()
    for i in range(5):
        usage_report_pass(now=now + timedelta(minutes=10 * i))
    report = UsageReport.objects.get()
    assert (report.status, report.attempts) == ("failed", 3)


@pytest.mark.django_db
def test_a_claim_pass_costs_queries_per_pair_not_per_event(
    customer, subscribe, django_assert_max_num_queries
):
    """2,000 events of one (customer, meter) pair are claimed with a handful of queries:
    the pairs query must not return one row per event (a default ordering in DISTINCT)."""
    from usage.services.ingest import usage_events_ingest
    from usage.services.report_claim import usage_reports_claim

    subscribe(customer)
    for batch in range(2):
        usage_events_ingest(
            events=[
                {"event_name": "api_calls", "customer": customer,
                 "identifier": f"q-{batch}-{i}"}
                for i in range(1000)
            ]
        )  # fmt: skip
    with django_assert_max_num_queries(25):
        result = usage_reports_claim()
    assert (result.claimed_events, result.reports_created) == (2000, 1)


@pytest.mark.django_db
def test_batching_reports_a_pair_at_enough_events_or_after_the_wait(
    customer, subscribe, settings, stripe_client
):
    """At steady load every pass would otherwise make one Stripe call per pair."""
    from usage.services.ingest import usage_events_ingest
    from usage.services.reporting import usage_report_pass

    settings.USAGE_REPORT_BATCH_MIN_EVENTS = 100
    settings.USAGE_REPORT_BATCH_MAX_WAIT_SECONDS = 300
    subscribe(customer)
    start = datetime.now(UTC).replace(microsecond=0)

    def send(n: int, prefix: str, at: datetime):
        events = [{"event_name": "api_calls", "customer": customer,
                   "identifier": f"{prefix}-{i}"} for i in range(n)]  # fmt: skip
        assert usage_events_ingest(events=events, now=at).accepted == n

    send(60, "a", start)
    assert usage_report_pass(now=start + timedelta(seconds=10)).reports_created == 0
    send(40, "b", start + timedelta(seconds=20))  # 100 waiting: enough for a report
    first = usage_report_pass(now=start + timedelta(seconds=30))
    assert (first.claimed_events, first.reports_created) == (100, 1)
    send(5, "c", start + timedelta(seconds=40))
    assert usage_report_pass(now=start + timedelta(seconds=339)).reports_created == 0
    # The oldest of the 5 has waited 300 s: reported however few they are.
    late = usage_report_pass(now=start + timedelta(seconds=340))
    assert (late.claimed_events, late.reports_created) == (5, 1)
    # Two Stripe calls for 105 events; Stripe counts them all.
    assert UsageReport.objects.filter(status="sent").count() == 2
