"""Reporting through Stripe's v2 meter event stream (usage/services/report_stream.py),
against the emulator, whose stream counts asynchronously like Stripe's: totals are read
after draining its queue (``/_emulator/meter_event_stream/drain``)."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from billing.models import Account, Meter
from stripe_emulator.testing import control
from tests.usage.conftest import stripe_total
from usage.models import UsageEvent, UsageReport
from usage.services import report_stream
from usage.services.ingest import usage_events_ingest
from usage.services.report_claim import usage_reports_claim
from usage.services.reporting import usage_report_pass

pytestmark = pytest.mark.django_db(transaction=True)
Status = UsageReport.Status
ROOT = django_settings.BASE_DIR


@pytest.fixture(autouse=True)
def _v2_stream(settings):
    settings.USAGE_REPORT_TRANSPORT = "v2_stream"
    settings.USAGE_REPORT_RETRY_BASE_SECONDS = 0.01
    settings.USAGE_REPORT_RETRY_MAX_SECONDS = 0.05
    settings.USAGE_REPORT_MAX_CALLS_PER_SECOND = 1000.0
    report_stream.stream_state_reset()
    yield
    report_stream.stream_state_reset()


def _hold(emulator) -> None:
    """The emulator applies stream events only when drained (not 0.5 s after the call)."""
    control(emulator, "/_emulator/meter_event_stream", {"delay": 30})


def _drain(emulator) -> dict:
    return control(emulator, "/_emulator/meter_event_stream/drain", {})


def _ingest(customers, *, per_pair: int, prefix: str, meters=("api_calls", "data_transfer_gb")):
    """``per_pair`` events of value 1..per_pair per customer and meter, a minute ago."""
    ts = int(time.time()) - 60
    events = [
        {"event_name": m, "customer": c, "value": v, "timestamp": ts,
         "identifier": f"{prefix}-{c}-{m}-{v}"}
        for c in customers for m in meters for v in range(1, per_pair + 1)
    ]  # fmt: skip
    result = usage_events_ingest(events=events)
    assert result.rejected == [], result.rejected


def _total(client, customer, event_name="api_calls") -> int:
    now = timezone.now()
    return stripe_total(
        client,
        event_name=event_name,
        customer=customer,
        start=now - timedelta(days=1),
        end=now + timedelta(hours=1),
    )


def test_one_stream_call_reports_every_pair_and_counts_after_the_answer(
    make_customers, stripe_client, stripe_emulator
):
    customers = make_customers(3)
    _hold(stripe_emulator)
    _ingest(customers, per_pair=4, prefix="a")  # 3 customers x 2 meters, 1+2+3+4 = 10 each
    result = usage_report_pass()

    assert (result.reports_created, result.sent, result.failed) == (6, 6, 0)
    assert report_stream.stats == {
        "stream_calls": 1,  # six reports, one call
        "sessions": 1,
        "stream_reports": 6,
        "fallback_reports": 0,
    }
    sent = UsageReport.objects.all()
    assert {r.status for r in sent} == {Status.SENT}
    assert {r.transport for r in sent} == {UsageReport.Transport.V2_STREAM}
    # Stripe answered before counting: nothing yet (the emulator applies it later).
    assert _total(stripe_client, customers[0]) == 0
    _ingest(customers[:1], per_pair=1, prefix="late")
    usage_report_pass()
    assert _drain(stripe_emulator)["applied"] == 6 + 2
    for cus in customers:
        late = 1 if cus == customers[0] else 0  # one more event of value 1 per meter
        assert _total(stripe_client, cus) == 4 + late  # api_calls counts events
        assert _total(stripe_client, cus, "data_transfer_gb") == 10 + late  # and this sums
    assert report_stream.stats["sessions"] == 1  # the session is kept between passes


def test_a_pairs_reports_go_one_at_a_time_and_150_pairs_take_two_calls(
    make_customers, stripe_client, stripe_emulator
):
    [cus] = make_customers(1)
    _hold(stripe_emulator)
    meter = Meter.objects.get(event_name="api_calls")
    now = timezone.now().replace(microsecond=0)
    accounts = Account.objects.bulk_create(
        Account(name=f"Pair {i}", billing_email=f"p{i}@x.test") for i in range(150)
    )
    period = (now.replace(day=1, hour=0, minute=0, second=0), now + timedelta(days=40))
    reports = [
        UsageReport(
            account=account, meter=meter, period_start=period[0], period_end=period[1],
            sequence=seq, identifier=f"mdu_stream_{i}_{seq}", stripe_customer_id=cus,
            event_name="api_calls", value=i + 1, event_count=1, timestamp=now - timedelta(
                seconds=60), next_attempt_at=now,
        )
        for i, account in enumerate(accounts)
        for seq in ((1, 2) if i == 0 else (1,))  # the first pair has two reports
    ]  # fmt: skip
    UsageReport.objects.bulk_create(reports)
    result = report_stream.usage_reports_stream_due(now=now)

    assert result.sent == 151
    # Round 1: the oldest report of all 150 pairs, 100 + 50; round 2: the first pair's
    # second report, which waited for its first (one in flight per customer and meter).
    assert report_stream.stats["stream_calls"] == 3
    assert report_stream.stats["sessions"] == 1
    assert _drain(stripe_emulator)["applied"] == 151
    # 1 + 2 + ... + 150 = 11,325, plus the first pair's second report (value 1)
    assert _total(stripe_client, cus) == 11_325 + 1


def test_the_session_is_renewed_a_minute_before_it_expires(stripe_emulator):
    from billing.stripe_api import stripe_client

    client = stripe_client(max_network_retries=0)
    start = timezone.now()
    first = report_stream.stream_session_token(client)
    # The emulator's session lasts 15 minutes; with 90 s left the token is kept ...
    with time_machine.travel(start + timedelta(minutes=13, seconds=30), tick=False):
        assert report_stream.stream_session_token(client) == first
    # ... with 30 s left a new one is made before any call goes out on the old one.
    with time_machine.travel(start + timedelta(minutes=14, seconds=30), tick=False):
        second = report_stream.stream_session_token(client)
    assert second != first
    assert report_stream.stats["sessions"] == 2


def test_a_session_stripe_expired_early_is_replaced_and_the_batch_resent(
    make_customers, stripe_client, stripe_emulator
):
    customers = make_customers(2)
    _ingest(customers, per_pair=2, prefix="b", meters=("data_transfer_gb",))
    usage_report_pass()  # a session, one call
    # Stripe's clock moves 15 minutes on: for Stripe the token has expired, for us not.
    control(stripe_emulator, "/_emulator/time/advance", {"seconds": 15 * 60})
    _ingest(customers, per_pair=3, prefix="c", meters=("data_transfer_gb",))
    result = usage_report_pass()

    assert result.sent == 2 and result.retried == 0
    # 401 billing_meter_event_session_expired, a new session, the same batch again.
    assert report_stream.stats["sessions"] == 2
    assert report_stream.stats["stream_calls"] == 3
    _drain(stripe_emulator)
    for cus in customers:
        assert _total(stripe_client, cus, "data_transfer_gb") == (1 + 2) + (1 + 2 + 3)


def test_v1_takes_over_only_when_the_stream_surely_did_not_take_the_batch(
    make_customers, stripe_client, stripe_emulator
):
    """A report stays on the endpoint it was first sent through: after a 503 (the batch
    may have landed) it is retried on the stream, never through v1; after a 400 (refused
    whole) or a refused session, v1 takes it."""
    customers = make_customers(2)
    _ingest(customers, per_pair=2, prefix="d", meters=("data_transfer_gb",))
    usage_report_pass()  # through the stream: the session exists
    control(stripe_emulator, "/_emulator/meter_event_stream", {"refuse": 503})
    _ingest(customers, per_pair=3, prefix="e", meters=("data_transfer_gb",))
    result = usage_report_pass()  # a 503: unknown outcome, so no v1 resend

    assert result.sent == 0 and result.failed == 0
    assert report_stream.stats["stream_calls"] == 2 and report_stream.stats["fallback_reports"] == 0
    uncertain = UsageReport.objects.order_by("id")[2:]
    assert [(r.transport, r.status) for r in uncertain] == [("v2_stream", "pending")] * 2
    # The stream is back; after the backoff the same reports go through it again.
    control(stripe_emulator, "/_emulator/meter_event_stream", {"refuse": 0})
    report_stream.stream_state_reset()  # past the cooldown
    UsageReport.objects.filter(status="pending").update(next_attempt_at=timezone.now())
    result = usage_report_pass()
    assert result.sent == 2 and report_stream.stats["fallback_reports"] == 0
    transports = UsageReport.objects.order_by("id").values_list("transport", flat=True)
    assert list(transports) == ["v2_stream"] * 4

    # A 400 refuses the batch whole: nothing landed, v1 sends it report by report.
    control(stripe_emulator, "/_emulator/meter_event_stream", {"refuse": 400})
    _ingest(customers, per_pair=1, prefix="f", meters=("data_transfer_gb",))
    result = usage_report_pass()
    assert result.sent == 2 and report_stream.stats["fallback_reports"] == 2
    transports = UsageReport.objects.order_by("id").values_list("transport", flat=True)
    assert list(transports) == ["v2_stream"] * 4 + ["v1"] * 2
    # Within the cooldown the next pass goes straight to v1 (no stream call tried).
    calls = report_stream.stats["stream_calls"]
    _ingest(customers, per_pair=1, prefix="g", meters=("data_transfer_gb",))
    usage_report_pass()
    assert report_stream.stats["stream_calls"] == calls
    assert report_stream.stats["fallback_reports"] == 4

    # A process whose session creation is refused sends through v1 from the start.
    report_stream.stream_state_reset()
    _ingest(customers, per_pair=1, prefix="h", meters=("data_transfer_gb",))
    result = usage_report_pass()
    assert result.sent == 2
    assert report_stream.stats == {
        "stream_calls": 0,  # it never got past the session
        "sessions": 0,
        "stream_reports": 0,
        "fallback_reports": 2,
    }
    control(stripe_emulator, "/_emulator/meter_event_stream", {"refuse": 0})
    _drain(stripe_emulator)
    for cus in customers:
        # d: 1+2, e: 1+2+3 (once, though its first call failed), f, g, h: 1 each
        assert _total(stripe_client, cus, "data_transfer_gb") == (1 + 2) + (1 + 2 + 3) + 1 + 1 + 1


def test_faults_on_every_endpoint_end_with_stripe_equal_to_the_ledger(
    make_customers, stripe_client, stripe_emulator, monkeypatch
):
    """30% of session, stream and v1 calls answer 500/503: batches fall back to v1 (no
    cooldown here, so every batch tries the stream first), v1 retries; in the end every
    report is sent once and Stripe's totals equal the ledger, ``last`` included."""
    monkeypatch.setattr(report_stream, "V2_COOLDOWN_SECONDS", 0.0)
    customers = make_customers(3)
    start = int(time.time()) - 120
    expected: dict[tuple[str, str], int] = {}
    for wave in range(4):
        events = []
        for c, cus in enumerate(customers):
            value = wave * 10 + c
            events += [
                {"event_name": "data_transfer_gb", "customer": cus, "value": value,
                 "timestamp": start + wave, "identifier": f"fg{wave}-{c}"},
                {"event_name": "seats", "customer": cus, "value": value,
                 "timestamp": start + wave, "identifier": f"fs{wave}-{c}"},
            ]  # fmt: skip
            key = (cus, "data_transfer_gb")
            expected[key] = expected.get(key, 0) + value
            expected[(cus, "seats")] = value  # the newest wins (last)
        assert usage_events_ingest(events=events).rejected == []
        control(stripe_emulator, "/_emulator/faults", {"rate": 0.3, "statuses": [500, 503]})
        usage_report_pass()  # more events arrive while reports retry
    for _ in range(200):
        usage_report_pass()
        if not UsageReport.objects.exclude(status=Status.SENT).exists():
            break
        time.sleep(0.02)
    control(stripe_emulator, "/_emulator/faults", {"rate": 0})
    assert set(UsageReport.objects.values_list("status", flat=True)) == {Status.SENT}
    _drain(stripe_emulator)
    for (cus, event_name), value in expected.items():
        assert _total(stripe_client, cus, event_name) == value, (cus, event_name)


def _worker_env(emulator: str) -> dict:
    db = connection.settings_dict["NAME"]
    if connection.vendor == "postgresql":
        url = urlsplit(os.environ["DATABASE_URL"])
        db_url = urlunsplit(url._replace(path="/" + db))
    else:
        db_url = f"sqlite:///{db}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": db_url,
        "MD_TEST_STRIPE_API_HOST": emulator,
        "USAGE_REPORT_TRANSPORT": "v2_stream",
    }


def test_a_resend_after_a_killed_worker_counts_once(make_customers, stripe_client, stripe_emulator):
    customers = make_customers(2)
    _hold(stripe_emulator)
    _ingest(customers, per_pair=5, prefix="k")  # 2 x 2 pairs: 5 events, 1+...+5 = 15
    usage_reports_claim()
    assert UsageReport.objects.filter(status=Status.PENDING).count() == 4

    worker = subprocess.run(
        [sys.executable, "-m", "tests.usage.stream_kill_worker"],
        cwd=ROOT,
        env=_worker_env(stripe_emulator),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr[-2000:]
    # Stripe has the four events; our outbox still has them in flight, under a lease.
    leased = UsageReport.objects.filter(status=Status.SENDING)
    assert leased.count() == 4 and not leased.filter(sent_at__isnull=False).exists()
    assert _drain(stripe_emulator)["applied"] == 4
    for cus in customers:
        assert _total(stripe_client, cus) == 5  # api_calls counts events
        assert _total(stripe_client, cus, "data_transfer_gb") == 15

    # Once the leases have expired, another worker sends them again, same identifiers.
    after_leases = timezone.now() + timedelta(
        seconds=django_settings.USAGE_REPORT_LEASE_SECONDS + 1
    )
    result = report_stream.usage_reports_stream_due(now=after_leases)
    assert result.sent == 4
    assert set(UsageReport.objects.values_list("status", flat=True)) == {Status.SENT}
    state = _drain(stripe_emulator)
    assert state["applied"] == 4 and state["duplicate_events"] == 4  # counted once
    for cus in customers:
        assert _total(stripe_client, cus) == 5
        assert _total(stripe_client, cus, "data_transfer_gb") == 15
    assert not UsageEvent.objects.filter(report__isnull=True).exists()


def test_unknown_transport_is_refused(settings):
    settings.USAGE_REPORT_TRANSPORT = "v3"
    with pytest.raises(ValueError, match="v1 or v2_stream"):
        usage_report_pass(now=datetime(2026, 1, 1, tzinfo=UTC))
