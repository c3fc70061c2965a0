"""Issue 12: ingestion hardening. Each test names the issue item it covers and fails on
the code before the fix."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count, Sum
from django.utils import timezone

from billing.models import Meter
from usage.event_validation import MAX_HOUR_SUM, MAX_VALUE
from usage.models import UsageEvent, UsageRollup

pytestmark = pytest.mark.django_db


def _hour_ago(hours: int = 3) -> datetime:
    return timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)


def _ledger_and_rollups() -> tuple[dict, dict]:
    ledger = UsageEvent.objects.aggregate(s=Sum("value"), n=Count("id"))
    rollups = UsageRollup.objects.aggregate(s=Sum("sum_value"), n=Sum("event_count"))
    return ledger, rollups


# -- item 1: bounded arithmetic -------------------------------------------------------------
def test_an_hour_holds_at_most_max_hour_sum_and_the_rest_of_the_batch_is_stored(api, customer):
    """Item 1 (ingest): an event that would take its (customer, meter, hour) past
    MAX_HOUR_SUM is rejected hour_limit_exceeded; the others are stored."""
    hour = _hour_ago()
    ts = int(hour.timestamp())
    # 20 events of 10**14 in one hour: 9 fit (9 * 10**14 = 9.0e14 <= 9.6e14); the 10th
    # would make 1.0e15 > 9.6e14, and so would every later one. One more event in the
    # next hour is unaffected.
    events = [
        {"event_name": "data_transfer_gb", "customer": customer, "identifier": f"big-{i}",
         "value": 10**14, "timestamp": ts + i}
        for i in range(20)
    ] + [
        {"event_name": "data_transfer_gb", "customer": customer, "identifier": "next-hour",
         "value": 10**14, "timestamp": ts + 3600},
    ]  # fmt: skip
    response = api.post({"events": events})
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 10
    assert [r["index"] for r in body["rejected"]] == list(range(9, 20))
    assert {r["code"] for r in body["rejected"]} == {"hour_limit_exceeded"}
    assert body["rejected"][0]["identifier"] == "big-9"
    assert body["rejected"][0]["message"].startswith("value: ")
    assert body["identifiers"][9] is None and body["identifiers"][20] == "next-hour"
    # The hour has room for 9.6e14 - 9.0e14 = 6.0e13 more: exactly that fits, then not 1.
    response = api.post(
        {"events": [
            {"event_name": "data_transfer_gb", "customer": customer, "identifier": "fill",
             "value": 6 * 10**13, "timestamp": ts + 100},
            {"event_name": "data_transfer_gb", "customer": customer, "identifier": "one",
             "value": 1, "timestamp": ts + 101},
        ]}
    )  # fmt: skip
    assert response.json()["accepted"] == 1
    assert [(r["index"], r["code"]) for r in response.json()["rejected"]] == [
        (1, "hour_limit_exceeded")
    ]
    rollup = UsageRollup.objects.get(hour=hour)
    assert (rollup.sum_value, rollup.event_count) == (MAX_HOUR_SUM, 10)
    # Refused events are not in the ledger: a later retry in another hour is possible.
    assert not UsageEvent.objects.filter(identifier__in=["big-9", "one"]).exists()
    ledger, rollups = _ledger_and_rollups()
    assert ledger == {"s": MAX_HOUR_SUM + 10**14, "n": 11}
    assert rollups == ledger


def test_the_issue_batches_at_max_value_never_answer_500(api, customer):
    """Item 1 (ingest): 11 batches of 930 events in one hour answered 500 from the 10th
    on (the rollup addition overflowed bigint). Now every batch is 202: at 10**12 an
    hour holds 960 events (960 * 10**12 = MAX_HOUR_SUM), so the first batch stores 930,
    the second 30 and refuses 900, the others refuse all; one event at MAX_VALUE alone
    is over the hour's cap."""
    ts = int(_hour_ago().timestamp())
    accepted = []
    for batch in range(11):
        events = [
            {"event_name": "data_transfer_gb", "customer": customer,
             "identifier": f"b{batch}-{i}", "value": 10**12, "timestamp": ts + i}
            for i in range(930)
        ]  # fmt: skip
        response = api.post({"events": events})
        assert response.status_code == 202, response.content[:300]
        accepted.append(response.json()["accepted"])
    assert accepted == [930, 30] + [0] * 9
    response = api.post(
        {"event_name": "data_transfer_gb", "customer": customer, "identifier": "max",
         "value": MAX_VALUE, "timestamp": ts + 3600}
    )  # fmt: skip
    assert response.json()["rejected"][0]["code"] == "hour_limit_exceeded"
    ledger, rollups = _ledger_and_rollups()
    assert ledger == rollups == {"s": MAX_HOUR_SUM, "n": 960}


def test_a_400_day_summary_of_full_hours_fits_in_64_bits(api, customer):
    """Item 1 (the cap's arithmetic): the summary API's widest range, 400 days from a
    mid-hour start, is 9,601 whole hours once floored and raised; with every hour at
    MAX_HOUR_SUM the total is 9,601 * 9.6e14 = 9,216,960,000,000,000,000 < 2**63 - 1,
    summed by SQL (SUM over rollups) without overflow, per day and in total."""
    from billing.models import Account

    account = Account.objects.get()
    meter = Meter.objects.get(event_name="data_transfer_gb")
    start = datetime(2024, 1, 1, 0, 30, tzinfo=UTC)
    first = start.replace(minute=0)
    UsageRollup.objects.bulk_create(
        UsageRollup(
            account=account, meter=meter, hour=first + timedelta(hours=h),
            sum_value=MAX_HOUR_SUM, event_count=1, last_value=MAX_HOUR_SUM,
            last_timestamp=first + timedelta(hours=h), last_event_id=h + 1,
        )
        for h in range(9601)
    )  # fmt: skip
    end = start + timedelta(days=400)
    for granularity in ("day", "hour"):
        response = api.summary(
            customer=customer, event_name="data_transfer_gb", granularity=granularity,
            start=start.isoformat(), end=end.isoformat(),
        )  # fmt: skip
        assert response.status_code == 200, response.content[:300]
        assert response.json()["total"] == 9_216_960_000_000_000_000 < 2**63 - 1
