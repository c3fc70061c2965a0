"""Issue 12, item 1 (reporting side): bounded report values and per-pair isolation.

Values at the documented per-event maximum must split into several reports instead of
overflowing a 64-bit column; one (customer, meter) that raises must not stop the others.
Every test ends with the ledger equal to what Stripe (the emulator) aggregated.

Ledger rows are written directly here (``_ledger``): these tests are about reporting,
and ingestion's own bounds (per event, per hour) have their own tests.
"""

import time
from datetime import timedelta

import pytest
from django.db import DataError
from django.utils import timezone

from billing.mirror.customers import account_for_customer_id
from billing.models import Meter
from tests.usage.conftest import stripe_total
from usage.event_validation import MAX_VALUE
from usage.models import ReportingFailure, UsageEvent, UsageReport
from usage.selectors.periods import calendar_month
from usage.services import report_claim, report_send
from usage.services.report_claim import REPORT_VALUE_MAX, report_identifier
from usage.services.reporting import usage_report_pass

pytestmark = pytest.mark.django_db(transaction=True)
Status = UsageReport.Status
INT64_MAX = 2**63 - 1  # 9,223,372,036,854,775,807: PostgreSQL's bigint, SQLite's INTEGER


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.USAGE_REPORT_RETRY_BASE_SECONDS = 0.01
    settings.USAGE_REPORT_RETRY_MAX_SECONDS = 0.05
    settings.USAGE_REPORT_MAX_CALLS_PER_SECOND = 100_000.0


def _ledger(customer_id: str, event_name: str, values: list[int], *, times, prefix: str):
    """Append events to the ledger (as accepted ingestion would) with the given times."""
    account = account_for_customer_id(customer_id=customer_id)
    meter = Meter.objects.get(event_name=event_name)
    now = timezone.now()
    UsageEvent.objects.bulk_create(
        [
            UsageEvent(
                identifier=f"{prefix}-{i}",
                account=account,
                meter=meter,
                value=value,
                timestamp=ts,
                received_at=now,
                payload_hash="0" * 64,
            )
            for i, (value, ts) in enumerate(zip(values, times, strict=True))
        ],
        batch_size=1000,
    )


def _recent(n: int, *, hours: float = 3) -> list:
    """``n`` timestamps spread over the last ``hours`` (kept inside this calendar month,
    so that all of them fall in one reporting period)."""
    now = timezone.now().replace(microsecond=0)
    first = max(now - timedelta(hours=hours), calendar_month(now)[0])
    step = (now - first) / max(n, 1)
    return [first + step * i for i in range(n)]


def _month(ts=None):
    return calendar_month(ts or timezone.now())


def _until_quiet(max_passes: int = 50) -> None:
    for _ in range(max_passes):
        usage_report_pass()
        if not UsageReport.objects.filter(status__in=[Status.PENDING, Status.SENDING]).exists():
            return
        time.sleep(0.06)
    raise AssertionError("reports still unsent")


def _assert_ledger_equals_reports(account_id: int, meter_id: int) -> int:
    """Every event in exactly one report, the reports' values adding up to the ledger."""
    events = UsageEvent.objects.filter(account_id=account_id, meter_id=meter_id)
    assert not events.filter(report__isnull=True).exists()
    ledger = sum(events.values_list("value", flat=True))  # in Python: no overflow
    reports = UsageReport.objects.filter(account_id=account_id, meter_id=meter_id)
    assert sum(r.value for r in reports) == ledger
    assert sum(r.event_count for r in reports) == events.count()
    return ledger


def test_the_per_event_maximum_fits_in_one_report():
    assert MAX_VALUE <= REPORT_VALUE_MAX < 2**53 < INT64_MAX  # see REPORT_VALUE_MAX's comment


def test_values_at_the_per_event_maximum_split_into_reports_and_reach_stripe_exactly(
    make_customers, stripe_client
):
    """The issue's attack: 10 batches of 930 events at 10**15 over 3 hours for one customer.
    Their sum, 9,300 × 10**15 = 9.3 × 10**18, is above INT64_MAX (≈ 9.22 × 10**18): the old
    claim failed writing it ('bigint out of range' on PostgreSQL, OverflowError on SQLite)
    and the pass aborted before reporting anyone."""
    big, small = make_customers(2)
    times = _recent(9_300)
    _ledger(big, "data_transfer_gb", [10**15] * 9_300, times=times, prefix="big")
    _ledger(small, "data_transfer_gb", [3, 4], times=times[:2], prefix="small")
    assert INT64_MAX < 9_300 * 10**15

    result = usage_report_pass()  # one pass: it must not raise, and must reach the others

    small_report = UsageReport.objects.get(stripe_customer_id=small)
    assert (small_report.value, small_report.status) == (7, Status.SENT)
    assert result.pair_errors == 0
    # 9 × 10**15 = REPORT_VALUE_MAX fits, 10 × 10**15 does not: 9 events per report;
    # 9,300 = 1,033 × 9 + 3, so 1,033 reports of 9 × 10**15 and one of 3 × 10**15.
    reports = list(UsageReport.objects.filter(stripe_customer_id=big).order_by("sequence"))
    assert len(reports) == 1_034 == result.reports_created - 1
    assert [r.sequence for r in reports] == list(range(1, 1_035))
    assert {r.value for r in reports[:-1]} == {9 * 10**15} and reports[-1].value == 3 * 10**15
    assert {r.event_count for r in reports[:-1]} == {9} and reports[-1].event_count == 3
    period_start = reports[0].period_start
    assert [r.identifier for r in reports] == [
        report_identifier(customer_id=big, event_name="data_transfer_gb",
                          period_start=period_start, seq=s)
        for s in range(1, 1_035)
    ]  # fmt: skip
    account = account_for_customer_id(customer_id=big)
    meter = Meter.objects.get(event_name="data_transfer_gb")
    assert _assert_ledger_equals_reports(account.pk, meter.pk) == 9_300 * 10**15

    _until_quiet()
    assert set(UsageReport.objects.values_list("status", flat=True)) == {Status.SENT}
    start, end = _month(times[0])
    # 0 lost, 0 double: Stripe's total equals the ledger's, to the unit.
    assert (
        stripe_total(
            stripe_client, event_name="data_transfer_gb", customer=big, start=start, end=end
        )
        == 9_300 * 10**15
    )
    assert (
        stripe_total(
            stripe_client, event_name="data_transfer_gb", customer=small, start=start, end=end
        )
        == 7
    )


def test_a_crash_mid_split_then_a_rerun_reports_everything_once(
    customer, stripe_client, monkeypatch, settings
):
    # 40 events at 10**15: reports of 9, 9, 9, 9 and 4 events (4 × 9 + 4 = 40).
    times = _recent(40)
    _ledger(customer, "data_transfer_gb", [10**15] * 40, times=times, prefix="c")
    real_claim_report = report_claim._claim_report
    written = []

    def die_after_three(**kwargs):
        if len(written) == 3:
            raise SystemExit("worker killed in the middle of a split claim")
        real_claim_report(**kwargs)
        written.append(kwargs["seq"])

    monkeypatch.setattr(report_claim, "_claim_report", die_after_three)
    with pytest.raises(SystemExit):
        usage_report_pass()
    monkeypatch.undo()
    # The claim is one transaction: the three reports written before the crash are gone.
    assert written == [1, 2, 3]
    assert not UsageReport.objects.exists()
    assert not UsageEvent.objects.filter(report__isnull=False).exists()

    # The sender now dies after Stripe accepted the 2nd report, before marking it sent.
    real_mark_sent, sent = report_send._mark_sent, []

    def die_on_second(report, **kwargs):
        if len(sent) == 1:
            raise SystemExit("killed after Stripe answered 200")
        real_mark_sent(report, **kwargs)
        sent.append(report.sequence)

    monkeypatch.setattr(report_send, "_mark_sent", die_on_second)
    with pytest.raises(SystemExit):
        usage_report_pass()
    monkeypatch.undo()
    reports = list(UsageReport.objects.order_by("sequence"))
    assert [(r.sequence, r.value, r.status) for r in reports] == [
        (1, 9 * 10**15, Status.SENT),
        (2, 9 * 10**15, Status.SENDING),  # its lease has to expire first
        (3, 9 * 10**15, Status.PENDING),
        (4, 9 * 10**15, Status.PENDING),
        (5, 4 * 10**15, Status.PENDING),
    ]
    later = timezone.now() + timedelta(seconds=settings.USAGE_REPORT_LEASE_SECONDS + 1)
    for _ in range(10):
        usage_report_pass(now=later)
    assert set(UsageReport.objects.values_list("status", flat=True)) == {Status.SENT}
    start, end = _month(times[0])
    # 0 lost, 0 double: report 2 was sent twice with one identifier, counted once.
    assert (
        stripe_total(
            stripe_client, event_name="data_transfer_gb", customer=customer, start=start, end=end
        )
        == 40 * 10**15
    )


def test_a_pair_that_raises_is_recorded_and_every_other_pair_is_still_reported(
    make_customers, stripe_client, monkeypatch
):
    bad, good = make_customers(2)
    bad_account = account_for_customer_id(customer_id=bad)
    times = _recent(3)
    _ledger(bad, "data_transfer_gb", [5, 6, 7], times=times, prefix="bad")
    _ledger(good, "data_transfer_gb", [1, 2], times=times[:2], prefix="good")
    _ledger(good, "api_calls", [1, 1, 1], times=times, prefix="goodc")
    real_claim_pair = report_claim._claim_pair

    def overflow_for_bad(*, account, **kwargs):
        if account.pk == bad_account.pk:
            raise DataError("bigint out of range")
        return real_claim_pair(account=account, **kwargs)

    monkeypatch.setattr(report_claim, "_claim_pair", overflow_for_bad)
    result = usage_report_pass()

    assert result.pair_errors == 1 and result.sent == 2
    assert "1 pair errors" in result.summary()
    assert not UsageReport.objects.filter(stripe_customer_id=bad).exists()
    assert UsageEvent.objects.filter(account=bad_account, report__isnull=True).count() == 3
    failure = ReportingFailure.objects.get()
    assert (failure.account, failure.meter.event_name, failure.stage) == (
        bad_account, "data_transfer_gb", "claim",
    )  # fmt: skip
    assert (failure.consecutive_failures, failure.total_failures) == (1, 1)
    assert failure.last_error == "DataError: bigint out of range"
    start, end = _month(times[0])
    assert stripe_total(stripe_client, event_name="data_transfer_gb", customer=good,
                        start=start, end=end) == 3  # fmt: skip
    assert stripe_total(stripe_client, event_name="api_calls", customer=good,
                        start=start, end=end) == 3  # fmt: skip

    usage_report_pass()  # the pair fails again: counted
    failure.refresh_from_db()
    assert (failure.consecutive_failures, failure.total_failures) == (2, 2)

    monkeypatch.undo()  # fixed: the next pass reports it and clears the count
    usage_report_pass()
    failure.refresh_from_db()
    assert (failure.consecutive_failures, failure.total_failures) == (0, 2)
    assert failure.recovered_at is not None
    assert stripe_total(stripe_client, event_name="data_transfer_gb", customer=bad,
                        start=start, end=end) == 18  # 5 + 6 + 7  # fmt: skip


def test_a_send_that_raises_is_released_recorded_and_the_others_are_sent(
    make_customers, stripe_client, monkeypatch, settings
):
    settings.USAGE_REPORT_RETRY_BASE_SECONDS = 60  # not due again within this pass
    settings.USAGE_REPORT_RETRY_MAX_SECONDS = 60
    bad, good = make_customers(2)
    times = _recent(2)
    _ledger(bad, "data_transfer_gb", [10, 20], times=times, prefix="bad")
    _ledger(good, "data_transfer_gb", [4], times=times[:1], prefix="good")
    real_send = report_send._send

    def broken_for_bad(client, report):
        if report.stripe_customer_id == bad:
            raise RuntimeError("a bug, not a Stripe error")
        return real_send(client, report)

    monkeypatch.setattr(report_send, "_send", broken_for_bad)
    result = usage_report_pass()

    assert (result.sent, result.pair_errors) == (1, 1)
    assert UsageReport.objects.get(stripe_customer_id=good).status == Status.SENT
    stuck = UsageReport.objects.get(stripe_customer_id=bad)
    # Released for a retry with backoff (not left "sending" under its lease).
    assert (stuck.status, stuck.attempts, stuck.lease_until) == (Status.PENDING, 1, None)
    assert stuck.last_error == "RuntimeError: a bug, not a Stripe error"
    failure = ReportingFailure.objects.get()
    assert (failure.stage, failure.consecutive_failures) == ("send", 1)

    monkeypatch.undo()
    usage_report_pass(now=timezone.now() + timedelta(minutes=2))  # after the backoff
    assert UsageReport.objects.get(pk=stuck.pk).status == Status.SENT
    failure.refresh_from_db()
    assert failure.consecutive_failures == 0
    start, end = _month(times[0])
    assert stripe_total(stripe_client, event_name="data_transfer_gb", customer=bad,
                        start=start, end=end) == 30  # fmt: skip
    assert stripe_total(stripe_client, event_name="data_transfer_gb", customer=good,
                        start=start, end=end) == 4  # fmt: skip


def test_one_event_above_the_cap_is_held_for_staff_and_the_rest_is_reported(
    customer, stripe_client
):
    """Should an event above the cap reach the ledger (a later, higher per-event limit),
    it gets a report of its own, failed and unsent, naming the cap; its neighbours go on."""
    times = _recent(3)
    _ledger(customer, "data_transfer_gb", [2, REPORT_VALUE_MAX + 1, 3], times=times, prefix="x")
    result = usage_report_pass()
    reports = list(UsageReport.objects.order_by("sequence"))
    # In id order: [2] then [cap + 1] alone (2 + cap + 1 > cap), then [3].
    assert [(r.value, r.status) for r in reports] == [
        (2, Status.SENT),
        (REPORT_VALUE_MAX + 1, Status.FAILED),
        (3, Status.SENT),
    ]
    assert "above the per-report cap" in reports[1].last_error and reports[1].attempts == 0
    assert (result.failed, result.pair_errors) == (1, 0)
    start, end = _month(times[0])
    assert stripe_total(stripe_client, event_name="data_transfer_gb", customer=customer,
                        start=start, end=end) == 5  # fmt: skip


def test_usage_of_an_account_without_a_stripe_customer_is_recorded_not_silent(customer):
    from billing.models import Account

    orphan = Account.objects.create(name="Orphan", billing_email="o@x.test")
    meter = Meter.objects.get(event_name="api_calls")
    UsageEvent.objects.create(
        identifier="o1", account=orphan, meter=meter, value=1, timestamp=timezone.now(),
        received_at=timezone.now(), payload_hash="0" * 64,
    )  # fmt: skip
    result = usage_report_pass()
    assert result.pair_errors == 1
    failure = ReportingFailure.objects.get(account=orphan)
    assert "no customer" in failure.last_error and failure.stage == "claim"
