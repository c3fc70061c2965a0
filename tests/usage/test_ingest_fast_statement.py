"""The ingest path's batch shortcuts (issue 19) give what the event-by-event path gave:
``validate_events`` against ``validate_event`` field by field and error by error, and on
PostgreSQL the one ledger statement (claim identifiers, insert events, upsert the rollups
aggregated by the database) against rollups recomputed from the ledger, within the hour
cap, in one transaction, in fewer round trips."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Count, Max, Sum

from usage.event_validation import (
    MAX_HOUR_SUM,
    MAX_VALUE,
    InvalidEvent,
    validate_event,
    validate_events,
)
from usage.models import EventIdentifier, UsageEvent, UsageRollup
from usage.services import ledger_writes
from usage.services.ingest import oldest_accepted, usage_events_ingest

NOW = datetime(2026, 3, 10, 12, 30, 15, 250_000, tzinfo=UTC)


def _one_by_one(events, now, oldest):
    valid, invalid = [], []
    for index, event in enumerate(events):
        try:
            valid.append(validate_event(index, event, now, oldest=oldest))
        except InvalidEvent as exc:
            invalid.append((index, exc.code, exc.message))
    return valid, invalid


def _odd_events() -> list:
    oldest = oldest_accepted(now=NOW)
    low, high = int(oldest.timestamp()), int((NOW + timedelta(minutes=5)).timestamp())
    base = {"event_name": "api_calls", "customer": "cus_1", "identifier": "id-1", "value": 3}
    fields = {
        "event_name": ["api_calls", "", None, 5, 'a"b', "a\\b", "é", "x\x00", "\ud800", "\t"],
        "customer": ["cus_1", "", None, ["x"], "cus \u2028", "c~ ", "\x7f"],
        "identifier": ["id-1", None, "", "   ", " x ", "x" * 100, "x" * 101, 7, "i\x00d",
                       "idé", "\ud800", 'q"uote', "b\\s", "{,}"],
        "value": [0, 1, MAX_VALUE, MAX_VALUE + 1, -1, None, True, 2.0, "12", "0012", "x",
                  "1" * 30],
        "timestamp": [None, low - 1, low, low + 1, low + 2, high - 1, high, high + 1,
                      int(NOW.timestamp()), True, "2026-03-10T12:00:00Z",
                      "2026-03-10T12:00:00", "2026-03-10T12:00:00.999+01:00", "junk", 1.5,
                      10**30],
    }  # fmt: skip
    events: list = [None, [], "x", 3]
    for name, values in fields.items():
        for value in values:
            events.append({**base, name: value})
    events.append({k: v for k, v in base.items() if k != "value"})
    rng = random.Random(19)
    for _ in range(400):
        events.append({name: rng.choice(values) for name, values in fields.items()})
    return events


def test_validate_events_gives_what_validate_event_gives_for_every_event():
    events = _odd_events()
    oldest = oldest_accepted(now=NOW)
    expected_valid, expected_invalid = _one_by_one(events, NOW, oldest)
    valid, invalid = validate_events(events, NOW, oldest=oldest)
    assert [(i, exc.code, exc.message) for i, _, exc in invalid] == expected_invalid
    assert [i for i, _, _ in invalid] == [i for i, _, _ in expected_invalid]
    assert valid == expected_valid
    assert all(row.epoch == int(row.timestamp.timestamp()) for row in valid)
    # Both kinds were seen: usual events (the shortcut) and odd valid ones.
    assert len(valid) > 20 and len(invalid) > 100


def test_the_window_edges_are_those_of_validate_event():
    """Whole seconds next to both edges, where the shortcut hands over to validate_event."""
    oldest = oldest_accepted(now=NOW)
    low = int(max(oldest, NOW - timedelta(days=35)).timestamp())
    high = int((NOW + timedelta(minutes=5)).timestamp())
    events = [
        {"event_name": "m", "customer": "c", "timestamp": t} for t in range(low - 3, low + 4)
    ] + [{"event_name": "m", "customer": "c", "timestamp": t} for t in range(high - 3, high + 4)]
    valid, invalid = validate_events(events, NOW, oldest=oldest)
    expected_valid, expected_invalid = _one_by_one(events, NOW, oldest)
    assert valid == expected_valid
    assert [(i, e.code) for i, _, e in invalid] == [(i, c) for i, c, _ in expected_invalid]
    # low itself is accepted (oldest has no microseconds); high + 1 is not (now has .25 s).
    assert [e["timestamp"] for e in (events[i] for i, _, _ in invalid)] == [
        low - 3,
        low - 2,
        low - 1,
        high + 1,
        high + 2,
        high + 3,
    ]


# -- the ledger statement ---------------------------------------------------------------
def _recomputed_rollups() -> dict:
    """(account, meter, hour) -> (sum, count, last value, last time, last id) from the
    ledger, in Python."""
    out: dict = {}
    for event in UsageEvent.objects.order_by("timestamp", "id"):
        key = (event.account_id, event.meter_id, event.timestamp.replace(minute=0, second=0))
        total, count, *_ = out.get(key, (0, 0, 0, None, 0))
        out[key] = (total + event.value, count + 1, event.value, event.timestamp, event.id)
    return out


def _stored_rollups() -> dict:
    return {
        (r.account_id, r.meter_id, r.hour): (
            r.sum_value,
            r.event_count,
            r.last_value,
            r.last_timestamp,
            r.last_event_id,
        )
        for r in UsageRollup.objects.all()
    }


@pytest.mark.django_db
def test_rollups_equal_the_ledger_after_batches_that_add_to_stored_hours(make_customers):
    customers = make_customers(3)
    now = datetime.now(UTC).replace(minute=40, second=0, microsecond=0) - timedelta(hours=3)
    rng = random.Random(7)
    for batch in range(4):
        events = [
            {
                "event_name": rng.choice(["api_calls", "data_transfer_gb", "seats"]),
                "customer": rng.choice(customers),
                "value": rng.randint(0, 40),
                # Two hours, and many events on the same second: the last value's tie is
                # broken by id.
                "timestamp": int(now.timestamp()) - rng.choice([0, 1, 2, 3700]),
                "identifier": f"b{batch}-{i}",
            }
            for i in range(300)
        ]
        answer = usage_events_ingest(events=events, now=now).as_dict()
        assert (answer["accepted"], answer["rejected"]) == (300, [])
    assert _stored_rollups() == _recomputed_rollups()
    assert len(_stored_rollups()) > 10
    totals = UsageEvent.objects.aggregate(s=Sum("value"), c=Count("id"))
    assert UsageRollup.objects.aggregate(s=Sum("sum_value"), c=Sum("event_count")) == totals
    assert EventIdentifier.objects.count() == 1200


@pytest.mark.django_db
def test_hours_over_the_cap_keep_what_fits_and_refuse_the_rest(make_customers):
    """One hour already near the cap (its guard refuses the batch's sum), one whose batch
    sum alone is over it (never offered to the upsert), one with room: the careful path
    keeps what fits in batch order; ledger and rollups stay equal."""
    customer, other = make_customers(2)
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=2)
    at = int(now.timestamp())
    first = [
        {"event_name": "data_transfer_gb", "customer": customer, "value": MAX_VALUE,
         "timestamp": at, "identifier": f"fill-{i}"}
        for i in range(9)
    ]  # fmt: skip
    assert usage_events_ingest(events=first, now=now).accepted == 9
    room = MAX_HOUR_SUM - 9 * MAX_VALUE  # 960e12 - 900e12 = 60e12
    events = [
        # Near-full hour: 70e12 does not fit in 60e12, then 50e12 does, then 20e12 not.
        {"event_name": "data_transfer_gb", "customer": customer, "value": 70 * 10**12,
         "timestamp": at + 1, "identifier": "near-a"},
        {"event_name": "data_transfer_gb", "customer": customer, "value": 50 * 10**12,
         "timestamp": at + 2, "identifier": "near-b"},
        {"event_name": "data_transfer_gb", "customer": customer, "value": 20 * 10**12,
         "timestamp": at + 3, "identifier": "near-c"},
    ] + [
        # The other customer's empty hour, 10 x 1e14 = 1,000e12 > 960e12: 9 fit.
        {"event_name": "data_transfer_gb", "customer": other, "value": MAX_VALUE,
         "timestamp": at + i, "identifier": f"over-{i}"}
        for i in range(10)
    ] + [
        {"event_name": "api_calls", "customer": other, "timestamp": at, "identifier": "room"},
    ]  # fmt: skip
    answer = usage_events_ingest(events=events, now=now).as_dict()
    refused = [(r["identifier"], r["code"]) for r in answer["rejected"]]
    assert refused == [
        ("near-a", "hour_limit_exceeded"), ("near-c", "hour_limit_exceeded"),
        ("over-9", "hour_limit_exceeded"),
    ]  # fmt: skip
    assert answer["accepted"] == len(events) - 3
    assert not UsageEvent.objects.filter(identifier__in=["near-a", "near-c", "over-9"]).exists()
    assert not EventIdentifier.objects.filter(identifier__in=["near-a", "over-9"]).exists()
    sums = dict(
        UsageRollup.objects.filter(meter__event_name="data_transfer_gb").values_list(
            "account__djstripe_customers__id", "sum_value"
        )
    )
    assert sums == {customer: 9 * MAX_VALUE + 50 * 10**12, other: 9 * MAX_VALUE}
    assert room == 60 * 10**12  # what near-b (50e12) was kept in
    assert _stored_rollups() == _recomputed_rollups()
    # Refused identifiers may be sent again (their claims were taken back).
    again = usage_events_ingest(events=[{**events[0], "value": 1}], now=now).as_dict()
    assert again["accepted"] == 1


@pytest.mark.django_db
def test_a_failure_after_the_ledger_statement_leaves_nothing_written(customer, monkeypatch):
    """The batch is one transaction: a failure after events, identifiers and rollups were
    written (here the duplicate lookup) takes all of them back."""

    def broken(identifiers):
        raise RuntimeError("lookup failed")

    old = {"event_name": "api_calls", "customer": customer, "identifier": "tx-old"}
    assert usage_events_ingest(events=[old]).accepted == 1
    before = _stored_rollups()
    monkeypatch.setattr(ledger_writes, "stored_hashes", broken)
    events = [old, {"event_name": "api_calls", "customer": customer, "identifier": "tx-1"}]
    with pytest.raises(RuntimeError):
        usage_events_ingest(events=events)
    assert list(UsageEvent.objects.values_list("identifier", flat=True)) == ["tx-old"]
    assert list(EventIdentifier.objects.values_list("identifier", flat=True)) == ["tx-old"]
    assert _stored_rollups() == before


@pytest.mark.django_db
def test_repeats_in_a_batch_are_duplicates_or_conflicts_of_its_first(customer):
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    event = {"event_name": "api_calls", "customer": customer, "identifier": "rep",
             "timestamp": int(now.timestamp())}  # fmt: skip
    answer = usage_events_ingest(
        events=[event, dict(event), {**event, "value": 5}, {**event, "identifier": "two"}],
        now=now,
    ).as_dict()
    assert (answer["accepted"], answer["duplicates"]) == (2, 1)
    assert answer["identifiers"] == ["rep", "rep", None, "two"]
    assert [(r["index"], r["code"]) for r in answer["rejected"]] == [(2, "idempotency_conflict")]
    assert UsageRollup.objects.aggregate(c=Sum("event_count"), m=Max("sum_value")) == {
        "c": 2,
        "m": 2,  # api_calls is a count meter but sums values: 1 + 1 in one hour
    }


@pytest.mark.django_db
def test_a_fresh_batch_is_one_ledger_statement_on_postgresql(
    api, make_customers, django_assert_max_num_queries
):
    """auth, customers, savepoint, the ledger statement, release (SQLite: claim, insert,
    record ids, rollups)."""
    customers = make_customers(5)
    api.post({"event_name": "api_calls", "customer": customers[0]})  # warm the meter cache
    body = {
        "events": [
            {"event_name": "api_calls", "customer": customers[i % 5], "identifier": f"f{i}"}
            for i in range(1000)
        ]
    }
    limit = 5 if connection.vendor == "postgresql" else 8
    with django_assert_max_num_queries(limit):
        assert api.post(body).json()["accepted"] == 1000
