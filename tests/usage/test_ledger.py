"""Rollups equal the ledger, in the same transaction; the summary API reads them."""

import random
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Sum

from usage.models import UsageEvent, UsageRollup
from usage.services import ledger_writes
from usage.services.ingest import usage_events_ingest

pytestmark = pytest.mark.django_db

METERS = ("api_calls", "data_transfer_gb", "seats")


def _ledger_by_hour() -> dict:
    """(account, meter, hour) -> (sum, count, last value): computed by SQL over events."""
    hour = "date_trunc('hour', timestamp)" if connection.vendor == "postgresql" else (
        "strftime('%Y-%m-%d %H:00:00', timestamp)"
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT account_id, meter_id, {hour} AS h, SUM(value), COUNT(*) "
            "FROM usage_usageevent GROUP BY account_id, meter_id, h"
        )
        sums = cursor.fetchall()
        cursor.execute(
            f"SELECT account_id, meter_id, {hour} AS h, value FROM ("
            f"  SELECT account_id, meter_id, timestamp, value, ROW_NUMBER() OVER ("
            f"    PARTITION BY account_id, meter_id, {hour} ORDER BY timestamp DESC, id DESC"
            "  ) AS rn FROM usage_usageevent) ranked WHERE rn = 1"
        )
        lasts = {(a, m, str(h)[:13]): v for a, m, h, v in cursor.fetchall()}
    return {(a, m, str(h)[:13]): (s, c, lasts[(a, m, str(h)[:13])]) for a, m, h, s, c in sums}


def _rollups_by_hour() -> dict:
    rows = UsageRollup.objects.values_list(
        "account_id", "meter_id", "hour", "sum_value", "event_count", "last_value"
    )
    return {
        (a, m, h.astimezone(UTC).strftime("%Y-%m-%d %H")): (s, c, last)
        for a, m, h, s, c, last in rows
    }


def test_rollups_equal_the_ledger_after_random_batches_with_duplicates(make_customers):
    customers = make_customers(4)
    rng = random.Random(7)
    now = int(time.time())
    sent = []
    for batch_no in range(12):
        events = []
        for i in range(150):
            if sent and rng.random() < 0.2:
                events.append(rng.choice(sent))  # duplicate of an earlier event
                continue
            event = {
                "event_name": rng.choice(METERS),
                "customer": rng.choice(customers),
                "value": rng.randint(0, 50),
                # Few distinct seconds, so same-second ties of "last" happen a lot.
                "timestamp": now - rng.choice([0, 1, 3600, 3601, 7200, 86400 * 3]),
                "identifier": f"r{batch_no}-{i}",
            }
            events.append(event)
            sent.append(event)
        result = usage_events_ingest(events=events)
        assert result.rejected == []
    assert UsageEvent.objects.count() == len({e["identifier"] for e in sent})
    ledger, rollups = _ledger_by_hour(), _rollups_by_hour()
    assert ledger == rollups
    assert len(ledger) > 20
    totals = UsageEvent.objects.aggregate(s=Sum("value"), c=Count("id"))
    assert UsageRollup.objects.aggregate(s=Sum("sum_value"), c=Sum("event_count")) == totals


def test_rollups_are_written_in_the_same_transaction_as_the_events(customer, monkeypatch):
    """If the rollup upsert fails, the events are not stored either (and vice versa)."""
    if connection.vendor == "postgresql":
        # The upsert is part of the statement that inserts the events there
        # (ledger_writes.insert_events_with_rollups): make the database refuse every rollup.
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE usage_usagerollup ADD CONSTRAINT test_refuse_all "
                "CHECK (sum_value < 0) NOT VALID"
            )
    else:

        def broken(*args, **kwargs):
            raise RuntimeError("rollup upsert failed")

        monkeypatch.setattr(ledger_writes, "upsert_rollups", broken)
    with pytest.raises((RuntimeError, IntegrityError)):
        usage_events_ingest(
            events=[{"event_name": "api_calls", "customer": customer, "identifier": "t-1"}]
        )
    assert UsageEvent.objects.count() == 0
    assert UsageRollup.objects.count() == 0


def test_rollups_are_visible_as_soon_as_the_ingest_commits(customer):
    with transaction.atomic():
        usage_events_ingest(
            events=[
                {"event_name": "data_transfer_gb", "customer": customer, "value": 9,
                 "identifier": "v-1"},
            ]
        )  # fmt: skip
        assert UsageRollup.objects.get().sum_value == 9


def test_last_value_is_the_newest_by_timestamp_not_by_arrival(customer):
    an_hour_ago = int(time.time()) - 3600
    now = an_hour_ago - an_hour_ago % 3600 + 30  # both events in one clock hour
    usage_events_ingest(
        events=[
            {"event_name": "seats", "customer": customer, "value": 5, "timestamp": now - 10,
             "identifier": "s-new"},
        ]
    )  # fmt: skip
    usage_events_ingest(
        events=[
            {"event_name": "seats", "customer": customer, "value": 9, "timestamp": now - 20,
             "identifier": "s-old"},
        ]
    )  # fmt: skip
    rollup = UsageRollup.objects.get()
    assert (rollup.last_value, rollup.event_count, rollup.sum_value) == (5, 2, 14)


# -- the summary API --------------------------------------------------------------------
def test_summary_hour_and_day_buckets_and_totals(api, customer):
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    base = base.replace(hour=10)
    events = []
    # Hand-placed: day 1 10:xx -> 3 + 4, day 1 12:xx -> 5; day 2 09:xx -> 6.
    for ident, value, at in [
        ("h1", 3, base + timedelta(minutes=5)),
        ("h2", 4, base + timedelta(minutes=50)),
        ("h3", 5, base + timedelta(hours=2, minutes=1)),
        ("h4", 6, base + timedelta(hours=23, minutes=30)),
    ]:
        events.append({"event_name": "data_transfer_gb", "customer": customer, "value": value,
                       "timestamp": int(at.timestamp()), "identifier": ident})  # fmt: skip
        events.append({"event_name": "seats", "customer": customer, "value": value,
                       "timestamp": int(at.timestamp()), "identifier": "s" + ident})  # fmt: skip
        events.append({"event_name": "api_calls", "customer": customer,
                       "timestamp": int(at.timestamp()), "identifier": "c" + ident})  # fmt: skip
    assert api.post({"events": events}).json()["accepted"] == 12
    start, end = base.isoformat(), (base + timedelta(days=2)).isoformat()

    hourly = api.summary(customer=customer, event_name="data_transfer_gb", start=start, end=end)
    assert hourly.status_code == 200
    body = hourly.json()
    assert [(b["start"], b["value"], b["events"]) for b in body["buckets"]] == [
        (base.isoformat(), 7, 2),
        ((base + timedelta(hours=2)).isoformat(), 5, 1),
        ((base + timedelta(hours=23)).isoformat(), 6, 1),
    ]
    assert body["total"] == 18

    daily = api.summary(
        customer=customer, event_name="data_transfer_gb", start=start, end=end, granularity="day"
    ).json()
    day1 = base.replace(hour=0)
    assert [(b["start"], b["value"]) for b in daily["buckets"]] == [
        (day1.isoformat(), 12),
        ((day1 + timedelta(days=1)).isoformat(), 6),
    ]
    assert daily["total"] == 18

    seats = api.summary(
        customer=customer, event_name="seats", start=start, end=end, granularity="day"
    ).json()
    assert [b["value"] for b in seats["buckets"]] == [5, 6]  # last of each day
    assert seats["total"] == 6  # last overall, not a sum

    calls = api.summary(customer=customer, event_name="api_calls", start=start, end=end).json()
    assert calls["total"] == 4 and calls["aggregation"] == "count"


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"event_name": "api_calls"}, 400,
         {"code": "missing_parameter", "message": "customer: this parameter is required",
          "field": "customer"}),
        ({"customer": "C", "event_name": "api_calls", "granularity": "week"}, 400,
         {"code": "invalid_parameter", "message": "granularity: must be 'hour' or 'day'",
          "field": "granularity"}),
        ({"customer": "C", "event_name": "nope"}, 404,
         {"code": "unknown_meter", "message": "event_name: no meter named 'nope'",
          "field": "event_name"}),
        ({"customer": "cus_nobody", "event_name": "api_calls"}, 404,
         {"code": "unknown_customer", "message": "customer: no account has 'cus_nobody'",
          "field": "customer"}),
        ({"customer": "C", "event_name": "api_calls", "start": "soon"}, 400,
         {"code": "invalid_parameter", "message": "start: not unix seconds or ISO 8601: 'soon'",
          "field": "start"}),
        ({"customer": "C", "event_name": "api_calls", "start": "1700003600", "end": "1700000000"},
         400, {"code": "invalid_parameter", "message": "end: must be after start",
               "field": "end"}),
    ],
)  # fmt: skip
def test_summary_validation_names_the_field(api, customer, params, status, error):
    params = {k: (customer if v == "C" else v) for k, v in params.items()}
    response = api.summary(**params)
    assert response.status_code == status
    assert response.json() == {"error": error}


def test_summary_needs_the_key(api, customer):
    api.key = "wrong"
    response = api.summary(customer=customer, event_name="api_calls")
    assert response.status_code == 401
